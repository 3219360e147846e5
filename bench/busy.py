"""mixedfx next to a busy core, interleaved with quiet runs in one process.

``run.py --load`` times the busy case in a run of its own, minutes after the
1-thread run it is compared with; on a shared VM the machine's own speed
drifted by half between such runs (the 125k-group fit: 93 ms in one run,
118 ms in the next, with the same code and threads). Here each repeat
times the case in three windows of about half a second each: quiet, quiet
with one BLAS thread (the yardstick of issue 16), and with a CPU-bound
process running (started before, killed after), so drift hits all alike.
A window holds as many back-to-back runs as fit in it: a 2 ms fit timed
once right after the busy process started paid 1.2 ms for its caches on
the other core, a cost no steady load has. The process runs with BLAS's
own thread count (all cores unless ``OPENBLAS_NUM_THREADS`` says
otherwise): mixedfx's policy decides.

    python bench/busy.py                                  # the cases below, 7 repeats
    python bench/busy.py --cases big predict_1m --repeats 11

Prints per case the medians, busy / quiet and busy / 1-thread; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cases import CASES, Context
from peers import InProcess
from threadpoolctl import threadpool_limits

WINDOW = 0.5  # seconds of back-to-back runs per quiet or busy window
DEFAULT = [
    "sleepstudy",
    "insteval",
    "big",
    "big_strings",
    "singular",
    "midsize",
    "predict_1m",
    "confidence_100k",
]


def timed(run: InProcess) -> float:
    t = time.perf_counter()
    run.run()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT, choices=sorted(CASES))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mixedfx-busy-") as tmp:
        ctx = Context(peers=("mixedfx",), workdir=Path(tmp))
        for name in args.cases:
            task = CASES[name].build(ctx)["mixedfx"]
            assert isinstance(task, InProcess)
            inner = max(1, int(WINDOW / timed(task)))  # (the first run: a warm-up)
            quiet: list[float] = []
            one: list[float] = []
            busy: list[float] = []
            for _ in range(args.repeats):
                quiet += [timed(task) for _ in range(inner)]
                with threadpool_limits(1, user_api="blas"):
                    one += [timed(task) for _ in range(inner)]
                spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                time.sleep(0.2)  # let it take its core
                busy += [timed(task) for _ in range(inner)]
                spinner.kill()
                spinner.wait()
            q, o, b = (statistics.median(t) * 1e3 for t in (quiet, one, busy))
            line = f"{name:16s} quiet {q:9.2f} ms  1 thread {o:9.2f} ms  busy {b:9.2f} ms"
            print(f"{line}  busy/quiet x{b / q:.2f}  busy/1-thread x{b / o:.2f}")


if __name__ == "__main__":
    main()
