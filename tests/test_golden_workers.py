"""fpgacnn.golden.workers.for_each against a plain loop: every item exactly once with 1-3
threads, items really run at once, exceptions propagate after the started items finished,
nested calls run inline, a forked child uses its own threads, two callers at once, and the
same with the native library's spin-wait unavailable (waits asleep only). And the fast path
against the numpy definition with small layers shared by the threads as well as kept on one.
"""

import collections
import ctypes
import os
import pickle
import threading
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from test_golden_fast import networks

from fpgacnn import golden
from fpgacnn.golden import fast, int8_gemm, native, workers


@pytest.fixture(params=["spinning", "sleeping only"])
def wait_mode(request, monkeypatch):
    if request.param == "spinning" and not native.can_spin():
        pytest.skip("no g++: the library's spin-wait is not there")
    if request.param == "sleeping only":
        monkeypatch.setattr(native, "can_spin", lambda: False)
    return request.param


@pytest.fixture
def threads():
    """A function that sets torch's thread count (restored afterwards)."""
    previous = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(previous)


def _run_recording(items, count: int) -> list:
    """for_each with `count` workers; the items it ran, in the order they ran."""
    seen, lock = [], threading.Lock()

    def record(item):
        with lock:
            seen.append(item)
    with workers.torch_threads_as_workers():
        workers.for_each(record, items)
    return seen


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("n", [0, 1, 2, 7, 100])
def test_every_item_runs_exactly_once(wait_mode, threads, count, n):
    threads(count)
    for _ in range(20):          # posted again and again to the same helpers
        assert collections.Counter(_run_recording(range(n), count)) == collections.Counter(
            range(n))


def test_items_run_on_two_threads_at_once(wait_mode, threads):
    threads(2)
    both_running = threading.Barrier(2, timeout=30)      # broken if one thread ran both
    idents = set()

    def meet(_):
        both_running.wait()
        idents.add(threading.get_ident())
    with workers.torch_threads_as_workers():
        workers.for_each(meet, range(2))
    assert len(idents) == 2 and threading.get_ident() in idents


def test_workers_run_torch_single_threaded_and_threads_are_restored(wait_mode, threads):
    threads(2)
    counts = []
    workers.for_each(lambda _: counts.append(torch.get_num_threads()), range(4))
    assert counts == [1, 1, 1, 1]
    assert torch.get_num_threads() == 2
    with workers.torch_threads_as_workers():
        assert torch.get_num_threads() == 1 and workers.thread_count() == 2
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("failing", ["caller's item", "helper's item"])
def test_exception_propagates_after_the_started_items_finished(wait_mode, threads, failing):
    threads(2)
    both_running = threading.Barrier(2, timeout=30)
    caller = threading.get_ident()
    finished = []

    def item(_):
        both_running.wait()
        if (threading.get_ident() == caller) == (failing == "caller's item"):
            raise ValueError(failing)
        time.sleep(0.05)
        finished.append(True)
    with workers.torch_threads_as_workers(), pytest.raises(ValueError, match=failing):
        workers.for_each(item, range(2))
    assert finished == [True]
    assert sorted(_run_recording(range(5), 2)) == list(range(5))     # the pool still works


def test_nested_calls_run_inline_on_the_worker(wait_mode, threads):
    threads(2)
    inner = collections.defaultdict(list)

    def outer(item):
        workers.for_each(lambda i: inner[item].append((i, threading.get_ident())), range(3))
        inner[item].append(("outer", threading.get_ident()))
    with workers.torch_threads_as_workers():
        workers.for_each(outer, range(4))
    assert sorted(inner) == [0, 1, 2, 3]
    for calls in inner.values():
        assert [i for i, _ in calls] == [0, 1, 2, "outer"]
        assert len({ident for _, ident in calls}) == 1


def test_two_callers_at_once_each_run_all_their_items(wait_mode, threads):
    threads(2)
    results = {}

    def call(name):
        torch.set_num_threads(2)
        results[name] = [sorted(_run_recording(range(9), 2)) for _ in range(50)]
    callers = [threading.Thread(target=call, args=(name,)) for name in "ab"]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert results == {name: [list(range(9))] * 50 for name in "ab"}


def test_a_forked_child_uses_its_own_threads(wait_mode, threads):
    threads(2)
    assert sorted(_run_recording(range(6), 2)) == list(range(6))     # the parent's pool
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            ran = sorted(_run_recording(range(6), 2))
            pids = sorted({pid for _, pid in workers._pools})
            os.write(write, pickle.dumps((ran, pids, os.getpid())))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        ran, pids, child_pid = pickle.loads(pipe.read())
    os.waitpid(child, 0)
    assert ran == list(range(6))
    assert child_pid in pids and os.getpid() in pids


def test_scratch_is_reused_within_a_thread_and_separate_between_threads(threads):
    threads(2)
    a = workers.scratch("test", 10, torch.int32)
    assert workers.scratch("test", 5, torch.int32).data_ptr() == a.data_ptr()
    assert workers.scratch("test", 5, torch.int8).data_ptr() != a.data_ptr()
    pointers = {}
    both_running = threading.Barrier(2, timeout=30)

    def take(_):
        both_running.wait()
        pointers[threading.get_ident()] = workers.scratch("test", 10, torch.int32).data_ptr()
    with workers.torch_threads_as_workers():
        workers.for_each(take, range(2))
    assert len(set(pointers.values())) == 2


def test_spin_wait_returns_on_a_change_or_after_its_limit():
    if not native.can_spin():
        pytest.skip("no g++")
    word = ctypes.c_int64(3)
    assert native.spin_while_equal(word, 2, 10**9) == native.CHANGED            # differs already
    assert native.spin_while_equal(word, 3, 1000) in (native.GAVE_UP, native.PREEMPTED)
    threading.Timer(0.01, lambda: setattr(word, "value", 4)).start()
    while (outcome := native.spin_while_equal(word, 3, 10 * 10**9)) == native.PREEMPTED:
        pass
    assert outcome == native.CHANGED and word.value == 4


def test_a_preempted_spin_pauses_spinning_and_the_items_still_run_once(threads, monkeypatch):
    if not native.can_spin():
        pytest.skip("no g++")
    monkeypatch.setattr(workers, "_spinning_paused_until", 0.0)
    monkeypatch.setattr(native, "spin_while_equal", lambda *_: native.PREEMPTED)
    threads(2)
    for n in range(10):
        assert sorted(_run_recording(range(n), 2)) == list(range(n))
    assert not workers._may_spin()


@pytest.mark.parametrize("count", [2, 3])
def test_threads_that_spun_out_fall_asleep_and_are_woken(wait_mode, threads, monkeypatch, count):
    """A spin limit of 1 us: the caller sleeps until the helpers' slow items finish, the
    helpers sleep between calls that come 10 ms apart; nothing is lost or run twice."""
    monkeypatch.setattr(workers, "SPIN_NS", 1000)
    threads(count)
    caller = threading.get_ident()
    seen, lock = [], threading.Lock()

    def slow_on_helpers(item):
        if threading.get_ident() != caller:
            time.sleep(0.01)
        with lock:
            seen.append(item)
    with workers.torch_threads_as_workers():
        for call in range(10):
            workers.for_each(slow_on_helpers, range(call, call + 5))
            time.sleep(0.01)
    assert sorted(seen) == sorted(i for call in range(10) for i in range(call, call + 5))


@pytest.mark.parametrize("kept_on_one_thread", [True, False])
@given(case=networks())
@settings(max_examples=25, deadline=None)
def test_fast_path_equals_the_definition_on_one_thread_and_shared(case, kept_on_one_thread):
    """The networks' layers are all small: by default kept on the calling thread; with the
    thresholds at 0 (or past any layer) the same layers are split across two threads."""
    qm, x = case
    limit = 10**18 if kept_on_one_thread else 0
    previous = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(int8_gemm, "SHARED_CONV_MACS", limit)
        patch.setattr(fast, "_SHARED_POOL_BYTES", limit)
        torch.set_num_threads(2)
        try:
            got = golden.run(qm, x, keep=True)
        finally:
            torch.set_num_threads(previous)
    expected = golden.run(qm, x, keep=True, fast_path=False)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
