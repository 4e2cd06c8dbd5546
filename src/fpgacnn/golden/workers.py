"""Worker threads for the fast path: each runs torch single-threaded on whole blocks of work.

Splitting a layer into blocks that threads take independently avoids a thread barrier per
torch op (costly when the machine is shared), and keeps each block's data in its core's cache.
The calling thread takes blocks too, beside one helper thread less than torch has threads;
each thread keeps its own scratch buffers.
"""

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

_local = threading.local()
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _start_worker() -> None:
    torch.set_num_threads(1)
    _local.worker = True


def thread_count() -> int:
    """How many blocks run at once (1 inside a worker: no nested pools)."""
    if getattr(_local, "worker", False):
        return 1
    return max(1, getattr(_local, "size", None) or torch.get_num_threads())


@contextlib.contextmanager
def torch_threads_as_workers():
    """Within: this thread's torch ops run single-threaded, and `for_each` spreads blocks over
    as many workers as torch had threads (small ops then wait for no other thread)."""
    size = torch.get_num_threads()
    _local.size = size
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(size)
        _local.size = None


def for_each(fn, items) -> None:
    """fn(item) for every item, spread over this thread and the helpers; exceptions propagate
    (after every started item has finished)."""
    items = list(items)
    helpers = min(thread_count(), len(items)) - 1
    if helpers <= 0:
        for item in items:
            fn(item)
        return
    key = (helpers, os.getpid())       # a forked child cannot use its parent's threads
    if key not in _pools:
        _pools[key] = ThreadPoolExecutor(helpers, "fpgacnn-golden", initializer=_start_worker)
    take = _Taker(items)
    futures = [_pools[key].submit(_drain, take, fn) for _ in range(helpers)]
    torch_threads = torch.get_num_threads()
    if torch_threads != 1:            # called outside `torch_threads_as_workers`
        torch.set_num_threads(1)
    _local.worker = True
    try:
        _drain(take, fn)
    finally:
        _local.worker = False
        if torch_threads != 1:
            torch.set_num_threads(torch_threads)
        for future in futures:
            future.exception()         # wait, whatever happens here
    for future in futures:
        future.result()


class _Taker:
    """Hands out the items one at a time, to whichever thread asks first."""

    def __init__(self, items):
        self._items = iter(items)
        self._lock = threading.Lock()

    def next(self):
        with self._lock:
            return next(self._items, _Taker)


def _drain(take: _Taker, fn) -> None:
    item = take.next()
    while item is not _Taker:
        fn(item)
        item = take.next()


def scratch(name: str, numel: int, dtype: torch.dtype) -> torch.Tensor:
    """A flat buffer of at least `numel` elements owned by this thread (contents undefined)."""
    buffers = _local.__dict__.setdefault("buffers", {})
    buf = buffers.get((name, dtype))
    if buf is None or buf.numel() < numel:
        buf = buffers[(name, dtype)] = torch.empty(numel, dtype=dtype)
    return buf[:numel]
