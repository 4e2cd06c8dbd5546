"""The C++ max pool (fpgacnn.golden.pool, maxpool.cpp) against a plain loop over the windows
(kernels 1-4, strides 1-3, asymmetric padding, ceil mode, 1-200 channels, batches 1-3,
strided inputs), with AVX-512 and on the portable path, in 1-3 parts on 1 and 2 threads; and
max-pool models on the fast path (C++, and the torch fallback without the library) against the
numpy definition.
"""

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

from fpgacnn import golden
from fpgacnn.golden import fast, native, pool, workers
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, QModel, TensorFormat

needs_library = pytest.mark.skipif(not pool.available(), reason="no g++: no C++ library")
KERNELS = ["max_pool_rows", "max_pool_rows_portable"]


def _windows_max(x: np.ndarray, op: ops.MaxPool) -> np.ndarray:
    """(N, C, H, W) -> max over each window's input elements, one window at a time."""
    n, c, h, w = x.shape
    _, _, oh, ow = op.output_shape([x.shape])
    (kh, kw), (sh, sw), (t, l) = op.kernel, op.stride, op.padding[:2]
    y = np.empty((n, c, oh, ow), x.dtype)
    for oy in range(oh):
        rows = slice(max(0, oy * sh - t), max(0, oy * sh - t + kh))
        for ox in range(ow):
            columns = slice(max(0, ox * sw - l), max(0, ox * sw - l + kw))
            y[:, :, oy, ox] = x[:, :, rows, columns].max(axis=(2, 3))
    return y


@st.composite
def pools(draw):
    """(op, input shape) whose every window holds an input element."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, kernel[i % 2] - 1)) for i in range(4))
    op = ops.MaxPool(kernel, stride, padding, draw(st.booleans()))
    shape = (draw(st.integers(1, 3)), draw(st.sampled_from([1, 3, 16, 63, 64, 65, 130, 200])),
             draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    try:
        op.output_shape([shape])
    except ValueError:
        assume(False)
    assume(_every_window_holds_input(op, shape))
    return op, shape


def _every_window_holds_input(op: ops.MaxPool, shape) -> bool:
    _, _, oh, ow = op.output_shape([shape])
    return all(min(o * s - before + k, size) > max(o * s - before, 0)
               for out, k, s, before, size in zip((oh, ow), op.kernel, op.stride, op.padding,
                                                  shape[2:])
               for o in range(out))


def _stored_view(rng, shape, strided: bool) -> torch.Tensor:
    """A channels-last int8 tensor of `shape`; if strided, a view with gaps between images,
    rows and columns."""
    n, c, h, w = shape
    if not strided:
        x = torch.from_numpy(rng.integers(-128, 128, shape, dtype=np.int8))
        return x.contiguous(memory_format=torch.channels_last)
    big = torch.from_numpy(rng.integers(-128, 128, (n + 1, c, 2 * h + 1, 2 * w), dtype=np.int8))
    return big.contiguous(memory_format=torch.channels_last)[1:, :, 1::2, ::2]


@needs_library
@given(case=pools(), seed=st.integers(0, 2**32 - 1), kernel=st.sampled_from(KERNELS),
       parts=st.integers(1, 3), threads=st.sampled_from([1, 2]), strided=st.booleans())
@settings(max_examples=300, deadline=None)
def test_max_pool_equals_every_windows_max(case, seed, kernel, parts, threads, strided):
    op, shape = case
    x = _stored_view(np.random.default_rng(seed), shape, strided)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with workers.torch_threads_as_workers():
            y = pool.max_pool(x, op, parts, kernel)
    finally:
        torch.set_num_threads(previous)
    assert y.dtype == torch.int8 and (y.stride(1) == 1 or y.shape[1] == 1)
    np.testing.assert_array_equal(y.numpy(), _windows_max(x.numpy(), op))


@needs_library
@pytest.mark.parametrize("kernel", KERNELS)
def test_max_pool_of_extremes_and_alexnet_shape(kernel):
    """-128 and 127 everywhere win their windows; an empty batch; AlexNet's first pool
    (64 x 55 x 55, 3/2)."""
    op = ops.MaxPool(3, 2, (1, 0, 1, 0), ceil_mode=True)
    for fill in (-128, 127):
        x = torch.full((2, 70, 9, 9), fill, dtype=torch.int8).contiguous(
            memory_format=torch.channels_last)
        assert (pool.max_pool(x, op, 2, kernel) == fill).all()
    for parts in (1, 2):
        empty = torch.empty((0, 3, 4, 4), dtype=torch.int8, memory_format=torch.channels_last)
        assert pool.max_pool(empty, ops.MaxPool(2, 2), parts, kernel).shape == (0, 3, 2, 2)
    x = _stored_view(np.random.default_rng(0), (2, 64, 55, 55), strided=False)
    np.testing.assert_array_equal(pool.max_pool(x, ops.MaxPool(3, 2), 3, kernel).numpy(),
                                  _windows_max(x.numpy(), ops.MaxPool(3, 2)))


def _pool_model(op: ops.MaxPool, shape, fmt: TensorFormat) -> QModel:
    layer = QLayer("pool", op, ("x",), fmt, fmt.lo, fmt.hi)
    return QModel("pool", "affine", "float32", "half_even", 32, {"x": shape}, {"x": fmt},
                  [layer], ["pool"])


def _counting_calls(calls: list):
    original = pool.max_pool

    def max_pool(*args):
        calls.append(args)
        return original(*args)
    return max_pool


@pytest.mark.parametrize("library", ["C++", "torch fallback"])
@pytest.mark.parametrize("shared", [False, True])
@given(case=pools(), signed=st.booleans(), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_fast_max_pool_equals_the_definition(library, shared, case, signed, seed):
    """Uint8 and int8 codes, on one thread and split over two (threshold 0); the C++ path is
    taken where the library is built, the torch path where it is not."""
    if library == "C++" and not pool.available():
        pytest.skip("no g++: no C++ library")
    op, shape = case
    fmt = TensorFormat(8, signed, 0.1, 0 if signed else 128)
    qm = _pool_model(op, shape, fmt)
    x = np.random.default_rng(seed).integers(fmt.lo, fmt.hi + 1, shape)
    calls = []
    previous = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        if library == "torch fallback":
            patch.setattr(native, "built", lambda: None)
        patch.setattr(fast, "_SHARED_POOL_BYTES", 0 if shared else 10**18)
        patch.setattr(pool, "max_pool", _counting_calls(calls))
        torch.set_num_threads(2)
        try:
            got = golden.run(qm, x)["pool"]
        finally:
            torch.set_num_threads(previous)
    assert bool(calls) == (library == "C++")
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, golden.run(qm, x, fast_path=False)["pool"])


@pytest.mark.parametrize("library", ["C++", "torch fallback"])
def test_fast_max_pool_of_a_tensor_that_is_not_channels_last(library, monkeypatch):
    if library == "C++" and not pool.available():
        pytest.skip("no g++: no C++ library")
    if library == "torch fallback":
        monkeypatch.setattr(native, "built", lambda: None)
    op = ops.MaxPool(3, 2, (1, 1, 0, 0))
    fmt = TensorFormat(8, True, 0.1, 0)
    layer = QLayer("pool", op, ("x",), fmt, fmt.lo, fmt.hi)
    x = torch.from_numpy(np.random.default_rng(3).integers(-128, 128, (2, 70, 9, 8), np.int8))
    y = fast.max_pool(layer, [x], [fmt], "half_even")        # x: NCHW memory
    np.testing.assert_array_equal(y.numpy(), _windows_max(x.numpy(), op))
