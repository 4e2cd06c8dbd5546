"""The C++ int8 GEMV kernel (fpgacnn.golden.gemv) and the linear path that uses it, against an
int64 matmul: random and extreme inputs, K and output counts that are not multiples of the
kernel's 4-input groups or 64-output tiles, 1 to 16 rows, one and two worker threads; and the
fallback to torch._int_mm when the kernel is not available.
"""

import numpy as np
import pytest
import torch

from fpgacnn.golden import gemv, int8_gemm, workers

needs_kernel = pytest.mark.skipif(not gemv.available(),
                                  reason="no g++ or no AVX-512 VNNI: torch._int_mm is used")


def _oracle(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x.astype(np.int64) @ w.astype(np.int64).T


def _kernel(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    packed = gemv.pack(torch.from_numpy(w), w.astype(np.int64).sum(axis=1))
    out = torch.empty((x.shape[0], packed.tiles * gemv.tile_outputs()), dtype=torch.int32)
    gemv.product(torch.from_numpy(x), packed, 0, packed.tiles, out)
    return out[:, :w.shape[0]].numpy()


def _random(rng, rows, outputs, k):
    return (rng.integers(-128, 128, (rows, k)).astype(np.int8),
            rng.integers(-128, 128, (outputs, k)).astype(np.int8))


@needs_kernel
@pytest.mark.parametrize("rows, outputs, k", [
    (0, 5, 9), (1, 1, 1), (1, 4096, 9216), (1, 1000, 4095), (2, 65, 9217), (5, 63, 777),
    (6, 130, 1001), (7, 64, 4), (13, 197, 9213), (16, 10, 3)])
def test_kernel_equals_int64_matmul_on_random_inputs(rows, outputs, k):
    x, w = _random(np.random.default_rng(rows * outputs + k), rows, outputs, k)
    assert np.array_equal(_kernel(x, w), _oracle(x, w))


@needs_kernel
@pytest.mark.parametrize("x_value, w_value", [(-128, -128), (127, 127), (127, -128),
                                              (-128, 127)])
@pytest.mark.parametrize("k", [9216, 9215, int8_gemm.INT32_SAFE_TERMS - 1])
def test_kernel_is_exact_at_the_extremes(x_value, w_value, k):
    """(x + 128) * w sums leave int32 here; the corrected, wrapped sum must still be exact."""
    x = np.full((3, k), x_value, np.int8)
    x[1, ::3] = -1 - x_value
    w = np.full((67, k), w_value, np.int8)
    w[5::7, ::2] = -1 - w_value
    assert np.array_equal(_kernel(x, w), _oracle(x, w))


@needs_kernel
def test_kernel_reads_rows_with_a_stride_and_fills_only_its_tiles():
    rng = np.random.default_rng(1)
    x, w = _random(rng, 4, 300, 515)
    wide = torch.from_numpy(np.concatenate([x, x[:, :9]], axis=1))
    packed = gemv.pack(torch.from_numpy(w), w.astype(np.int64).sum(axis=1))
    out = torch.full((4, packed.tiles * gemv.tile_outputs()), 7, dtype=torch.int32)
    gemv.product(wide[:, :515], packed, 1, 3, out)
    width = gemv.tile_outputs()
    assert np.array_equal(out[:, width:3 * width].numpy(), _oracle(x, w)[:, width:3 * width])
    assert (out[:, :width] == 7).all() and (out[:, 3 * width:] == 7).all()


def _linear_int32(x: np.ndarray, w: np.ndarray, threads: int) -> np.ndarray:
    wm = int8_gemm.weight_matrix(w)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with workers.torch_threads_as_workers():
            return int8_gemm.linear_int32(torch.from_numpy(x), wm, w.shape[0]).numpy()
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows, outputs, k", [(1, 4096, 9216), (3, 1000, 4097),
                                              (16, 333, 2049), (1, 10, 7), (17, 100, 300)])
def test_linear_path_equals_int64_matmul(rows, outputs, k, threads):
    rng = np.random.default_rng(rows + outputs + k)
    x = rng.integers(-128, 128, (rows, k)).astype(np.int8)
    w = rng.integers(-127, 128, (outputs, k)).astype(np.int8)      # the fast path's range
    assert np.array_equal(_linear_int32(x, w, threads), _oracle(x, w))


@needs_kernel
def test_weights_are_packed_once_per_weight_matrix():
    w = np.random.default_rng(2).integers(-127, 128, (70, 90)).astype(np.int8)
    wm = int8_gemm.weight_matrix(w)
    assert int8_gemm.packed_weights(wm) is int8_gemm.packed_weights(wm)


def test_linear_path_falls_back_to_torch_without_the_kernel(monkeypatch):
    monkeypatch.setattr(gemv, "available", lambda: False)
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (2, 1001)).astype(np.int8)
    w = rng.integers(-127, 128, (150, 1001)).astype(np.int8)
    assert np.array_equal(_linear_int32(x, w, 2), _oracle(x, w))
