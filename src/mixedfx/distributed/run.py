"""Running the passes: one task per partition, an ordered tree of combines, progress.

Both passes map a function over the partitions and combine the results of
*adjacent* partitions pairwise (``combine(left, right)``), level by level, so
the client only ever receives one small result and order-dependent
quantities (the first bad row, first-appearance order of levels) come out as
they would on the concatenated rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask
import pandas as pd
from dask.delayed import Delayed


def per_partition(
    ddf: Any, func: Callable[[pd.DataFrame, Any], Any], arg: Delayed
) -> list[Delayed]:
    """``func(partition, arg)`` for each partition of ``ddf``: one task each, memory freed after.

    Worker memory must not grow with the number of partitions.
    ``dask.delayed(func)(p, arg) for p in ddf.to_delayed()`` makes reading a
    partition (``read_parquet``) a task of its own whose frame then waits in
    worker memory for ``func``'s task. Reads are root tasks and run ahead
    (one worker read all 8 partitions of an 8M-row frame before surveying
    any). ``map_partitions`` fuses the read into ``func``'s task, so a
    partition exists only while its task runs. Its results are not frames:
    hence ``meta`` of object dtype and no metadata check.

    The partition is freed by reference counting when the task ends: the
    per-partition work makes no reference cycles (``tests/distributed``
    checks that it leaves no garbage for the cycle collector), so no task
    pays for a full collection (formerly ~0.3 s per task in a worker's
    large heap, a quarter of pass 2's work per partition).
    """
    mapped = ddf.map_partitions(func, arg, meta=pd.Series(dtype=object), enforce_metadata=False)
    return list(mapped.to_delayed())


def tree_reduce(items: Sequence[Delayed], combine: Callable[[Any, Any], Any]) -> Delayed:
    """Combine delayed values pairwise, neighbours first, keeping their order."""
    level = list(items)
    if not level:
        raise ValueError("nothing to combine: the frame has no partitions")
    while len(level) > 1:
        nxt = [dask.delayed(combine)(a, b) for a, b in zip(level[::2], level[1::2], strict=False)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _default_client() -> Any:
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - the dask extra installs distributed
        return None
    try:
        return default_client()
    except ValueError:
        return None


def compute(obj: Any, progress: bool = False) -> Any:
    """Compute one Dask object on the current scheduler, with a progress bar if asked.

    With a ``distributed`` client the bar is ``distributed.progress`` (a
    widget in notebooks, text in a terminal); with the local schedulers it is
    ``dask.diagnostics.ProgressBar``.
    """
    if not progress:
        return dask.compute(obj)[0]
    client = _default_client()
    if client is None:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return dask.compute(obj)[0]
    from distributed import progress as show

    future = client.compute(obj)
    show(future)
    return future.result()


def fold(
    items: Sequence[Delayed],
    combine: Callable[[Any, Any], Any],
    progress: bool = False,
    window: int | None = None,
) -> Any:
    """The items' values combined in order, as :func:`tree_reduce` would, computed.

    With a ``distributed`` client (and no progress bar) the combining is done
    on the client: the combined result lives there, which receives it anyway.
    Each result is fetched as soon as its task ends, in whatever order, and
    released from its worker; the client combines them in order. A worker
    thus never holds a finished result while it runs its next task (fetched
    in order, a result finished early waited on its worker for the earlier
    ones, next to the next partition's blocks being formed). At most
    ``window`` items (default: two per worker thread) are in flight or
    fetched and waiting for an earlier one, which bounds the client's memory
    too; the client combines them pairwise as they come (:class:`Runs`).
    Otherwise the tree of combines runs on the scheduler.
    """
    client = _default_client()
    if client is None or progress:
        return compute(tree_reduce(items, combine), progress)
    from distributed import as_completed

    if window is None:
        window = 2 * max(1, sum(client.nthreads().values()))
    pending = list(items)
    index: dict[Any, int] = {}  # key of a future -> position of its item

    def submit(i: int) -> Any:
        future = client.compute(pending[i])
        index[future.key] = i
        return future

    queued = min(window, len(pending))
    running = as_completed([submit(i) for i in range(queued)])
    arrived: dict[int, Any] = {}  # fetched values waiting for an earlier one
    runs = Runs(combine)
    done = 0  # items taken in order
    for future in running:
        arrived[index.pop(future.key)] = future.result()
        future.release()
        while done in arrived:
            runs.push(arrived.pop(done))
            done += 1
        while queued < len(pending) and queued - done < window:
            running.add(submit(queued))
            queued += 1
    return runs.total()


class Runs:
    """Values combined in order as they come, pairwise like :func:`tree_reduce`.

    A stack of runs of adjacent items, the combined value of each; two
    runs of equal length are combined as soon as both are there (a binary
    counter). Combining the total with each new item in turn costs the size
    of the growing total every time: for the blocks of crossed factors,
    whose A21 fills up with the rows, that was 16 sums of up to 13M entries
    for 16 partitions; pairwise, each entry takes part in ``log2`` of the
    number of items. At most ``log2(n) + 1`` runs are held.
    """

    def __init__(self, combine: Callable[[Any, Any], Any]) -> None:
        self.combine = combine
        self.stack: list[tuple[int, Any]] = []  # (items, their combined value), in order

    def push(self, value: Any) -> None:
        """Append the next item."""
        self.stack.append((1, value))
        while len(self.stack) > 1 and self.stack[-2][0] == self.stack[-1][0]:
            (k, left), (_, right) = self.stack[-2], self.stack[-1]
            self.stack[-2:] = [(2 * k, self.combine(left, right))]

    def total(self) -> Any:
        """All items combined, in order (None when there were none)."""
        if not self.stack:
            return None
        value = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            value = self.combine(left, value)
        return value
