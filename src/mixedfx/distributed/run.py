"""Running the passes: one task per partition, an ordered tree of combines, progress.

Both passes map a function over the partitions and combine the results of
*adjacent* partitions pairwise (``combine(left, right)``), level by level, so
the client only ever receives one small result and order-dependent
quantities (the first bad row, first-appearance order of levels) come out as
they would on the concatenated rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import dask
from dask.delayed import Delayed


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
    on the client as the results arrive, each released from its worker once
    fetched. At most ``window`` items are in flight at once (default: two per
    worker thread), so a worker never holds more than a few partitions'
    results while the client is busy adding: its memory does not grow with
    the number of partitions (the combined result lives on the client, which
    receives it anyway). Otherwise the tree of combines runs on the scheduler.
    """
    client = _default_client()
    if client is None or progress:
        return compute(tree_reduce(items, combine), progress)
    if window is None:
        window = 2 * max(1, sum(client.nthreads().values()))
    pending = list(items)
    futures = deque(client.compute(pending[:window]))
    queued = window
    total: Any = None
    first = True
    while futures:
        future = futures.popleft()
        value = future.result()
        future.release()
        if queued < len(pending):
            futures.append(client.compute(pending[queued]))
            queued += 1
        total = value if first else combine(total, value)
        first = False
    return total
