"""The golden model's C++ library (fpgacnn.golden.native): built once into the cache, no
library (nor a half-built directory) where the compiler or its flags fail; and `run_parts`,
whose parts threads spinning in `spin_while_equal` share (checked by the exact output of a
kernel that writes one block of outputs per part, against an int64 matmul); a forked child
forgets its parent's spinning threads.
"""

import ctypes
import os
import subprocess
import threading

import numpy as np
import pytest
import torch

from fpgacnn.golden import native


@pytest.mark.parametrize("change", [("COMPILER", "no-such-compiler-fpgacnn"),
                                    ("FLAGS", ("-shared", "--no-such-flag-fpgacnn"))])
def test_no_kernel_where_it_cannot_be_built(monkeypatch, tmp_path, change):
    monkeypatch.setenv("FPGACNN_CACHE", str(tmp_path))
    monkeypatch.setattr(native, *change)
    assert native.built.__wrapped__() is None
    assert not list(tmp_path.glob("kernels/*/*"))          # no half-built directory left


def test_kernel_is_built_into_the_cache_once(monkeypatch, tmp_path):
    try:
        subprocess.run([native.COMPILER, "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no g++")
    monkeypatch.setenv("FPGACNN_CACHE", str(tmp_path))
    native._load()
    built = list((tmp_path / "kernels").glob(f"*/{native.LIBRARY}"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    native._load()
    assert list((tmp_path / "kernels").glob(f"*/{native.LIBRARY}")) == built
    assert built[0].stat().st_mtime_ns == stamp


def _gemv_case(rng):
    from fpgacnn.golden import gemv
    w = rng.integers(-128, 128, (64 * 12, 300)).astype(np.int8)
    x = rng.integers(-128, 128, (3, 300)).astype(np.int8)
    packed = gemv.pack(torch.from_numpy(w), w.astype(np.int64).sum(axis=1))
    return x, w, packed


def _run_parts_of_gemv(x, packed, bounds) -> np.ndarray:
    """The int8gemv kernel's tiles in parts through native.run_parts; out starts as garbage."""
    from fpgacnn.golden import gemv
    out = torch.full((x.shape[0], packed.tiles * gemv.tile_outputs()), -7, dtype=torch.int32)
    arguments = gemv._arguments(torch.from_numpy(x), packed, out.data_ptr(), out.shape[1])
    native.run_parts(gemv._kernel(), ctypes.byref(arguments), bounds)
    return out.numpy()


@pytest.mark.skipif(native.library() is None, reason="no g++ or no AVX-512 VNNI")
@pytest.mark.parametrize("spinners", [0, 1, 2])
def test_run_parts_runs_every_part_once_with_and_without_spinning_threads(spinners):
    """Threads spinning in spin_while_equal take parts; every tile must come out exact."""
    x, w, packed = _gemv_case(np.random.default_rng(spinners))
    expected = x.astype(np.int64) @ w.astype(np.int64).T
    word = ctypes.c_int64(0)
    outcomes = []

    def spin():
        while (outcome := native.spin_while_equal(word, 0, 10**9)) != native.CHANGED:
            outcomes.append(outcome)
        outcomes.append(outcome)
    threads = [threading.Thread(target=spin) for _ in range(spinners)]
    for thread in threads:
        thread.start()
    try:
        for bounds in ([0, 12], [0, 1, 2, 12], list(range(13)), [0, 5, 5, 12]):
            for _ in range(20):
                got = _run_parts_of_gemv(x, packed, bounds)
                assert np.array_equal(got[:, :w.shape[0]], expected)
    finally:
        word.value = 1
        for thread in threads:
            thread.join()
    assert outcomes.count(native.CHANGED) == spinners


@pytest.mark.skipif(native.built() is None, reason="no g++")
def test_a_forked_child_counts_none_of_its_parents_spinning_threads():
    """Else the child's run_parts would wait for helpers that it does not have."""
    word = ctypes.c_int64(0)
    spinner = threading.Thread(target=lambda: native.spin_while_equal(word, 0, 10**10))
    spinner.start()
    try:
        while native.spinning_threads() == 0:
            pass
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            os.write(write, bytes([native.spinning_threads()]))
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            counted_in_child = pipe.read()[0]
        os.waitpid(child, 0)
    finally:
        word.value = 1
        spinner.join()
    assert counted_in_child == 0
