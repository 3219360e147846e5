"""How many BLAS threads a fit uses, pinned with threadpoolctl while it runs.

OpenBLAS threads wait for each other by spinning. When another process
holds one of the cores, every parallel BLAS call waits for a thread that is
not running: InstEval fits (a 1159 x 1159 factorization per evaluation)
took 3.3, 42, 46, 66 and 170 s with 2 threads next to one busy process,
against 2.8 s with one thread. Measured on 2 shared cores
(``bench/threads.py``), 2 threads were slower than 1 for ``dpotrf`` and
``dpotri`` of size 1159 to 4500 whenever the machine had other work (x0.5
to x0.97 on an AMD EPYC, 2026-12-01). On a quiet machine they pay: there
x1.6 (dpotrf) and x1.9 (dpotri) at size 1159, x1.3 and x1.75 at 300; on
the Intel machine of the first measurement, only from about 2000 rows.
Between the two, :data:`PARALLEL_MIN` is 1000 (InstEval's 1159-row
factor: its fit 1.09 s with one thread, 0.82 s with two).

So a fit uses one BLAS thread unless its dense factorization has at least
:data:`PARALLEL_MIN` rows and cores are idle right now; then as many as are
idle (at most the cores it may run on, and never more than the BLAS
threads the process allows: :func:`allowed`). A core counts as idle when less than
half of it is used elsewhere: the 1-minute load average still holds this
process's own work of the last minute (a benchmark's previous fit: 1.04,
which truncated to no idle core at all). ``threads=`` overrides the choice.
The limit holds for the whole fit, from the first evaluation to the model;
concurrent fits in one process share the limit of the first to start, which
is restored when the last one ends.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from typing import Any

from .engine.blocks import Blocks

PARALLEL_MIN = 1000  # rows of the dense factor below which one thread is used

_lock = threading.Lock()
_active = 0
_limiter: Any = None


def usable_cpus() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def busy_elsewhere() -> float:
    """Tasks competing for the cores: the larger of those runnable right now (Linux) and
    the 1-minute load average, less this process; every core counts as busy where neither
    is known (Windows).

    The instantaneous count sees a process that started a second ago; the average
    sees the load that comes and goes between two samples.
    """
    signals = []
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            signals.append(float(f.read().split()[3].split("/")[0]))
    except (OSError, IndexError, ValueError):
        pass
    try:
        signals.append(os.getloadavg()[0])
    except (AttributeError, OSError):
        pass
    return max(signals) - 1.0 if signals else float(usable_cpus())


def choose(blocks: Blocks | int, threads: int | None = None) -> int:
    """The number of BLAS threads for a fit over ``blocks`` (see module docstring).

    Parameters
    ----------
    blocks : Blocks or int
        The blocks, or the number of rows ``m`` of their dense factor.
    threads : int, optional
        The user's choice; None for the policy.

    Raises
    ------
    ValueError
        When ``threads`` is not None or a positive integer.
    """
    chosen = checked(threads)
    if chosen is not None:
        return chosen
    if (blocks if isinstance(blocks, int) else blocks.m) < PARALLEL_MIN:
        return 1
    return max(1, min(usable_cpus(), idle_cores(), allowed()))


def idle_cores() -> int:
    """Cores not in use elsewhere; a core less than half used counts as idle."""
    return int(usable_cpus() - max(0.0, busy_elsewhere()) + 0.5)


def allowed() -> int:
    """The BLAS threads this process allows now: the fewest of any BLAS library loaded.

    ``OPENBLAS_NUM_THREADS=1``, joblib's workers (which limit BLAS to their
    share of the cores) and a user's ``threadpool_limits`` all set it; a fit
    never raises it (threadpoolctl could: OpenBLAS allows up to its
    compiled maximum), or workers that were given one core each would each
    run two threads.
    """
    counts = [lib.num_threads for lib in _controller().lib_controllers if lib.user_api == "blas"]
    return min(counts, default=1)


READING_MIN = 50_000  # rows below which the products over them are too short to limit


def reading(threads: int | None = None, rows: int = READING_MIN) -> int | None:
    """The limit while a fit reads its ``rows`` and forms its blocks, before :func:`choose`.

    The user's ``threads`` when given; else one thread when a core is busy
    elsewhere (the rule of :func:`choose`), and None (BLAS's own count) on an
    idle machine, where the products over many rows gain from every core.
    Forming the blocks of 500k rows next to a busy process with two
    OpenBLAS threads took 1.4 times as long as with one. Below
    :data:`READING_MIN` rows, whose products take microseconds, nothing is
    limited and the load is not read (11 us, half a percent of a small fit).
    """
    chosen = checked(threads)
    if chosen is not None or rows < READING_MIN:
        return chosen
    return None if idle_cores() >= usable_cpus() else 1


def checked(threads: int | None) -> int | None:
    """``threads`` if it is None or a positive integer, else a ValueError naming it."""
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ValueError(f"threads must be None or a positive integer, got {threads!r}")
    return threads


@functools.cache
def _controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def pinned(threads: int | None) -> Iterator[None]:
    """Limit the BLAS libraries to ``threads`` threads inside the block (None: no limit).

    Reentrant and shared: the first block to enter sets the limit, the last
    to leave restores the original one; blocks entered meanwhile (nested,
    or a concurrent fit in another thread) keep the limit already set. When
    every BLAS library already runs ``threads`` threads (a small fit's one,
    under ``OPENBLAS_NUM_THREADS=1``), nothing is set or restored.
    """
    global _active, _limiter
    if threads is None:
        yield
        return
    with _lock:
        if _active == 0 and not _running(threads):
            _limiter = _controller().limit(limits=threads, user_api="blas")
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None


def _running(threads: int) -> bool:
    """Whether every BLAS library loaded runs ``threads`` threads now."""
    blas = [lib for lib in _controller().lib_controllers if lib.user_api == "blas"]
    return all(lib.num_threads == threads for lib in blas)
