"""Worker threads for the fast path: each runs torch single-threaded on whole blocks of work.

Splitting a layer into blocks that threads take independently avoids a thread barrier per
torch op (costly when the machine is shared), and keeps each block's data in its core's cache.
The pool has as many threads as torch uses; each thread keeps its own scratch buffers.
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
    """fn(item) for every item, spread over the workers; exceptions propagate."""
    items = list(items)
    size = thread_count()
    if size == 1 or len(items) <= 1:
        for item in items:
            fn(item)
        return
    key = (size, os.getpid())          # a forked child cannot use its parent's threads
    if key not in _pools:
        _pools[key] = ThreadPoolExecutor(size, "fpgacnn-golden", initializer=_start_worker)
    for _ in _pools[key].map(fn, items):
        pass


def scratch(name: str, numel: int, dtype: torch.dtype) -> torch.Tensor:
    """A flat buffer of at least `numel` elements owned by this thread (contents undefined)."""
    buffers = _local.__dict__.setdefault("buffers", {})
    buf = buffers.get((name, dtype))
    if buf is None or buf.numel() < numel:
        buf = buffers[(name, dtype)] = torch.empty(numel, dtype=dtype)
    return buf[:numel]
