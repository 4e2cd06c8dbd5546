"""The C++ int8 GEMV kernel (fpgacnn.golden.gemv) and the linear path that uses it, against an
int64 matmul: random and extreme inputs, K and output counts that are not multiples of the
kernel's 4-input groups or 64-output tiles, 1 to 16 rows, one and two worker threads; and the
fallback to torch._int_mm when the kernel is not available. The kernel with the float32
requantization fused (RequantizedGemv) against the numpy definition, ties and extremes
included.
"""

import numpy as np
import pytest
import torch

from fpgacnn import golden
from fpgacnn.golden import gemv, int8_gemm, int8conv, workers
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, QModel, Requant, TensorFormat

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


def _linear_model(outputs, k, rows, activation, per_channel, biases, fout, rng, weight=None):
    fin = TensorFormat(8, False, 0.1, 3)
    channels = outputs if per_channel else 1
    lo = max(fout.lo, fout.zero_point) if activation == "relu" else fout.lo
    act = dict(act_multiplier=np.array([6554]), act_shift=16) if activation == "leaky" else {}
    layer = QLayer("fc", ops.Linear(k, outputs), ("x",), fout, lo, fout.hi,
                   weight=rng.integers(-127, 128, (outputs, k)).astype(np.int8)
                   if weight is None else weight,
                   weight_scale=np.ones(1), weight_bits=8, bias=biases,
                   requant=Requant("float32",
                                   np.resize(np.array([0.5, 0.25, 1.0, 3e-10, 1.5e-3, 2e-4,
                                                       7e-5], np.float32), channels),
                                   np.zeros(channels, np.int64)), **act)
    return QModel("t", "affine", "float32", "half_even", 32, {"x": (rows, k)}, {"x": fin},
                  [layer], ["fc"])


def _assert_requantized_kernel_equals_definition(qm, x, monkeypatch, rows):
    monkeypatch.setattr(int8conv, "AMX_LINEAR_ROWS", 10**9)     # the GEMV, not AMX
    calls = []
    kernel_call = gemv.RequantizedGemv.__call__
    monkeypatch.setattr(gemv.RequantizedGemv, "__call__",
                        lambda *args: calls.append(1) or kernel_call(*args))
    with workers.torch_threads_as_workers():
        got = golden.run(qm, x)["fc"]
    assert bool(calls) == (rows <= int8_gemm.GEMV_ROWS)
    np.testing.assert_array_equal(got, golden.run(qm, x, fast_path=False)["fc"])


@needs_kernel
@pytest.mark.parametrize("rows, outputs, k", [(1, 4096, 9216), (3, 1000, 4097), (16, 70, 300),
                                              (17, 70, 300)])
@pytest.mark.parametrize("activation", ["none", "relu", "leaky"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_requantized_gemv_equals_the_definition(rows, outputs, k, activation, per_channel,
                                                monkeypatch):
    """Product and float32 epilogue in one kernel (1-16 rows; 17 take the torch path), in
    parts on two threads where the weights are large, against the numpy definition."""
    rng = np.random.default_rng(rows + outputs + k)
    fout = TensorFormat(8, True, 0.1, -5)
    qm = _linear_model(outputs, k, rows, activation, per_channel,
                       rng.integers(-30000, 30000, outputs), fout, rng)
    _assert_requantized_kernel_equals_definition(qm, rng.integers(0, 256, (rows, k)),
                                                 monkeypatch, rows)


@needs_kernel
@pytest.mark.parametrize("zero_point", [0, 1, 127, 128, 131, 255])
@pytest.mark.parametrize("signed_out", [False, True])
@pytest.mark.parametrize("activation", ["none", "relu", "leaky"])
def test_requantized_gemv_ties_and_extremes_equal_the_definition(zero_point, signed_out,
                                                                  activation, monkeypatch):
    """One input, weight 1: each output is the input plus its bias, so biases around the
    int32 extremes, 2**22 and 1.5 * 2**23 and multipliers 0.5 / 0.25 (exact ties) reach every
    corner of the float32 requantization."""
    biases = np.array([0, 1, -1, 2**22, -2**22, 12582912, -12582912, 2**24 + 1,
                       2**31 - 17000, -2**31 + 17000, 255, -255, 5, -5, 3, -3], np.int64)
    fout = TensorFormat(8, signed_out, 0.1, zero_point - 128 if signed_out else zero_point)
    weight = np.ones((len(biases), 1), np.int8)
    qm = _linear_model(len(biases), 1, 16, activation, True, biases, fout, None, weight)
    x = np.arange(256).reshape(16, 16)[:, :1]
    _assert_requantized_kernel_equals_definition(qm, x, monkeypatch, 16)
