"""Worker threads for the fast path: each runs torch single-threaded on whole blocks of work.

Splitting a layer into blocks that threads take independently avoids a thread barrier per
torch op (costly when the machine is shared), and keeps each block's data in its core's cache.
The calling thread takes blocks too, beside one helper thread less than torch has threads;
each thread keeps its own scratch buffers. Work too small to share runs on the calling thread
alone (`on_this_thread`); so does a call made while another thread's call holds the helpers.
"""

import contextlib
import ctypes
import os
import threading
import time

import torch

from fpgacnn.golden import native

SPIN_NS = 2_000_000     # an idle thread spins this long for the next hand-over, then sleeps
SPIN_PAUSE_S = 0.005    # after a spinning thread lost its core (a busy machine?): no spinning

_local = threading.local()
_pools: dict[tuple[int, int], "_Pool"] = {}
_spinning_paused_until = 0.0


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


@contextlib.contextmanager
def on_this_thread():
    """Within: `for_each` runs every item on this thread (work too small to share)."""
    was_worker = getattr(_local, "worker", False)
    _local.worker = True
    try:
        yield
    finally:
        _local.worker = was_worker


def for_each(fn, items) -> None:
    """fn(item) for every item, spread over this thread and the helpers; exceptions propagate
    (after every started item has finished)."""
    items = list(items)
    helpers = min(thread_count(), len(items)) - 1
    pool = _pool(helpers) if helpers > 0 else None
    if pool is None or not pool.claim():       # no helpers, or another thread's call uses them
        for item in items:
            fn(item)
        return
    try:
        job = _Job(_Taker(items), fn)
        pool.post(job)
        try:
            _drain_as_worker(job)
        finally:
            pool.wait_for_helpers()
    finally:
        pool.release()
    job.raise_first_error()


def run_parts(part, arguments, bounds: list[int]) -> None:
    """part(arguments, bounds[i], bounds[i + 1]) for each i, `part` a function of the native
    library: with helpers spinning, one call that they join without the GIL
    (`native.run_parts`); else through `for_each` (which wakes them)."""
    parts = len(bounds) - 1
    if parts > 1 and thread_count() > 1 and native.can_spin() and native.spinning_threads():
        return native.run_parts(part, arguments, bounds)
    for_each(lambda i: part(arguments, bounds[i], bounds[i + 1]), range(parts))


def _pool(helpers: int) -> "_Pool":
    key = (helpers, os.getpid())       # a forked child cannot use its parent's threads
    if key not in _pools:
        _pools[key] = _Pool(helpers)
    return _pools[key]


def _drain_as_worker(job: "_Job") -> None:
    torch_threads = torch.get_num_threads()
    if torch_threads != 1:            # called outside `torch_threads_as_workers`
        torch.set_num_threads(1)
    _local.worker = True
    try:
        _drain(job.take, job.fn)
    finally:
        _local.worker = False
        if torch_threads != 1:
            torch.set_num_threads(torch_threads)


def _may_spin() -> bool:
    return native.can_spin() and time.monotonic() >= _spinning_paused_until


def _saw_change(outcome: int) -> bool:
    """Whether a spin ended on its change. One that lost its core pauses spinning: on a busy
    machine a spinner takes the core from work, and waking a thread is cheap there."""
    global _spinning_paused_until
    if outcome == native.PREEMPTED:
        _spinning_paused_until = time.monotonic() + SPIN_PAUSE_S
    return outcome == native.CHANGED


def _spin_while_equal(word: ctypes.c_int64, seen: int) -> bool:
    return _may_spin() and _saw_change(native.spin_while_equal(word, seen, SPIN_NS))


def _sleep_while_equal(word: ctypes.c_int64, seen: int, condition: threading.Condition) -> None:
    """Asleep on condition, which is notified (its lock held) after each change of word."""
    with condition:
        condition.wait_for(lambda: word.value != seen)


class _Job:
    """One `for_each` call as the helpers see it; the exceptions their items raised."""

    def __init__(self, take: "_Taker", fn):
        self.take, self.fn = take, fn
        self.errors: list[BaseException] = []

    def drain(self) -> None:
        try:
            _drain(self.take, self.fn)
        except BaseException as error:      # noqa: BLE001 (re-raised in the caller)
            self.errors.append(error)

    def raise_first_error(self) -> None:
        if self.errors:
            raise self.errors[0]


class _Pool:
    """Persistent helper threads, each draining every posted job once. Waiting threads (idle
    helpers, and the caller for the helpers' last items) spin a while before they sleep, the
    way OpenMP's threads do: waking a sleeping thread costs up to 90 us on an idle core. A
    helper counts its drain done from C, the GIL released, so that the caller spinning on the
    count finds the GIL free: waiting for the GIL also means sleeping."""

    def __init__(self, helpers: int):
        self._helpers = helpers
        self._lock = threading.Lock()
        self._posted = threading.Condition(self._lock)
        self._finished = threading.Condition(self._lock)
        self._generation = ctypes.c_int64(0)     # jobs posted
        self._done = ctypes.c_int64(0)           # helpers' drains finished, over all jobs
        self._caller_asleep = ctypes.c_int64(0)
        self._job: _Job | None = None
        self._in_use = threading.Lock()
        for _ in range(helpers):
            threading.Thread(target=self._serve, name="fpgacnn-golden", daemon=True).start()

    def claim(self) -> bool:
        return self._in_use.acquire(blocking=False)

    def release(self) -> None:
        self._in_use.release()

    def post(self, job: _Job) -> None:
        with self._lock:
            self._job = job
            self._generation.value += 1
            self._posted.notify_all()

    def wait_for_helpers(self) -> None:
        target = self._generation.value * self._helpers
        while (done := self._done.value) != target:
            if not _spin_while_equal(self._done, done):
                self._sleep_until_done_changes(done)
        self._job = None             # nor keep what fn refers to alive

    def _sleep_until_done_changes(self, done: int) -> None:
        with self._lock:
            if native.can_spin() and native.announce_sleep(self._caller_asleep, self._done, done):
                self._caller_asleep.value = 0
                return
            self._finished.wait_for(lambda: self._done.value != done)
            self._caller_asleep.value = 0

    def _serve(self) -> None:
        _start_worker()
        seen, posted = 0, _spin_while_equal(self._generation, 0)
        while True:
            if not posted:
                _sleep_while_equal(self._generation, seen, self._posted)
            seen += 1                 # the caller waits for every helper: no job is skipped
            self._job.drain()
            posted = self._count_done_and_spin(seen)

    def _count_done_and_spin(self, seen: int) -> bool:
        """Counts this helper's drain done; then whether the next job came while it spun."""
        if not _may_spin():
            with self._lock:
                self._done.value += 1
                self._finished.notify()
            return False
        outcome = native.count_and_spin(self._done, self._caller_asleep, self._generation, seen,
                                      SPIN_NS)
        if outcome == native.SLEEPER_WAITS:
            with self._lock:
                self._finished.notify()
            return _spin_while_equal(self._generation, seen)
        return _saw_change(outcome)


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
