"""BLAS threads for the dense factorizations: 1 against 2, quiet and next to a busy process.

The evidence behind :data:`mixedfx.threads.PARALLEL_MIN`. For each size the
Cholesky factorization (``dpotrf``) and the inverse from it (``dpotri``) of a
random SPD matrix, the two dense operations of a large fit's evaluation and
gradient, are timed with 1 and with 2 BLAS threads (threadpoolctl), best of
``--repeats`` runs (median), first on the machine as it is and then while one
CPU-bound process runs. Prints one line per size and load with the times in
ms and the speed-up of 2 threads (above 1: 2 threads faster).

    python bench/threads.py
    python bench/threads.py --sizes 300 600 1200 2400 --repeats 9
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import timeit
from collections.abc import Iterator

import numpy as np
from scipy.linalg import lapack
from threadpoolctl import threadpool_info, threadpool_limits


def spin() -> None:
    """A CPU-bound process: another user's work."""
    while True:
        pass


@contextlib.contextmanager
def busy(on: bool) -> Iterator[None]:
    """One CPU-bound process running inside the block (when ``on``)."""
    if not on:
        yield
        return
    proc = multiprocessing.Process(target=spin, daemon=True)
    proc.start()
    try:
        yield
    finally:
        proc.terminate()
        proc.join()


def median(fn: object, repeats: int) -> float:
    """Median of ``repeats`` single runs of ``fn``, in ms (a busy core hits some runs only)."""
    return 1e3 * float(np.median(timeit.repeat(fn, number=1, repeat=repeats)))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 600, 1159, 2000, 3000])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    arch = {lib.get("architecture") for lib in threadpool_info() if lib["user_api"] == "blas"}
    print(f"BLAS kernels: {', '.join(sorted(str(a) for a in arch))}")
    rng = np.random.default_rng(0)
    for load in (False, True):
        with busy(load):
            for n in args.sizes:
                A = rng.standard_normal((n, n))
                S = np.asfortranarray(A @ A.T + n * np.eye(n))
                L = lapack.dpotrf(S, lower=1, clean=0)[0]
                times = {}
                for threads in (1, 2):
                    with threadpool_limits(threads, user_api="blas"):
                        times[threads] = (
                            median(lambda S=S: lapack.dpotrf(S, lower=1, clean=0), args.repeats),
                            median(lambda L=L: lapack.dpotri(L, lower=1), args.repeats),
                        )
                (f1, i1), (f2, i2) = times[1], times[2]
                print(
                    f"{'busy ' if load else 'quiet'} n={n:5d}  dpotrf {f1:8.2f} / {f2:8.2f} ms "
                    f"(x{f1 / f2:.2f})  dpotri {i1:8.2f} / {i2:8.2f} ms (x{i1 / i2:.2f})"
                )


if __name__ == "__main__":
    main()
