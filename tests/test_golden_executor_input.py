"""Inputs of the golden executor in any integer dtype: the stored form (`to_stored`) against
code - offset computed in int64, `to_codes` back to the same int64 codes; whole runs on uint8,
int8, int16, uint16, int32, big-endian and strided inputs equal to runs on int64 inputs (fast
path and numpy definition, `keep=True` tensors int64 and copies); range, dtype and shape
errors with their messages; the range check looks at the given array without copying it.
"""

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from test_golden_fast import networks

from fpgacnn import golden
from fpgacnn.errors import UserError
from fpgacnn.golden import executor
from fpgacnn.golden.stored import to_codes, to_stored
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, QModel, Requant, TensorFormat

DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
          np.dtype(">i8"), np.dtype(">u2")]


def _holding(fmt: TensorFormat) -> list[np.dtype]:
    """The dtypes in DTYPES that hold every code of fmt."""
    return [np.dtype(d) for d in DTYPES
            if np.iinfo(d).min <= fmt.lo and fmt.hi <= np.iinfo(d).max]


@st.composite
def formats(draw):
    bits, signed = draw(st.integers(2, 8)), draw(st.booleans())
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return TensorFormat(bits, signed, 0.5, draw(st.integers(lo, hi)))


@given(fmt=formats(), data=st.data(), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=200, deadline=None)
def test_stored_form_is_code_minus_offset_and_converts_back(fmt, data, seed):
    shape = data.draw(st.sampled_from([(3, 7), (2, 1, 3, 4), (2, 3, 5, 2), (1, 7, 2, 3),
                                       (2, 8, 3, 3), (1, 20, 2, 5), (0, 3, 2, 2)]))
    dtype = data.draw(st.sampled_from(_holding(fmt)))
    codes = np.random.default_rng(seed).integers(fmt.lo, fmt.hi + 1, shape)
    x = codes.astype(dtype)
    if data.draw(st.booleans()) and x.ndim == 4:        # a strided view of the same codes
        x = np.repeat(x, 2, axis=3)[..., ::2]
    stored = to_stored(x, fmt)
    expected = codes - (0 if fmt.signed else 128)
    assert stored.dtype == torch.int8 and stored.shape == shape
    np.testing.assert_array_equal(stored.numpy().astype(np.int64), expected)
    if stored.ndim == 4:
        assert stored.is_contiguous(memory_format=torch.channels_last)
    back = to_codes(stored, fmt)
    assert back.dtype == np.int64 and back.flags.c_contiguous
    np.testing.assert_array_equal(back, codes)
    np.testing.assert_array_equal(x.astype(np.int64), codes)      # the input is untouched


def _linear_model(fin: TensorFormat, batch: int) -> QModel:
    rng = np.random.default_rng(0)
    fout = TensorFormat(8, True, 0.1, 0)
    fc = QLayer("fc", ops.Linear(20, 5), ("x",), fout, fout.lo, fout.hi,
                weight=rng.integers(-127, 128, (5, 20)).astype(np.int8),
                weight_scale=np.ones(1), weight_bits=8,
                requant=Requant("float32", np.full(5, 0.01, np.float32), np.zeros(5, np.int64)))
    return QModel("t", "affine", "float32", "half_even", 32, {"x": (batch, 20)}, {"x": fin},
                  [fc], ["fc"])


def _assert_same_runs(qm: QModel, x: np.ndarray, codes: np.ndarray) -> None:
    """Runs on x equal runs on its int64 codes, fast and not; keep=True gives int64 copies."""
    reference = golden.run(qm, codes, keep=True, fast_path=False)
    for fast_path in (True, False):
        got = golden.run(qm, x, keep=True, fast_path=fast_path)
        assert got.keys() == reference.keys()
        for name, value in reference.items():
            assert got[name].dtype == np.int64, name
            np.testing.assert_array_equal(got[name], value, err_msg=name)
        assert not np.shares_memory(got["x"], x)
    np.testing.assert_array_equal(x.astype(np.int64), codes)     # the input is untouched


@given(case=networks(), data=st.data())
@settings(max_examples=60, deadline=None)
def test_runs_on_any_integer_dtype_equal_runs_on_int64(case, data):
    qm, codes = case
    dtype = data.draw(st.sampled_from(_holding(qm.input_formats["x"])))
    x = codes.astype(dtype)
    if data.draw(st.booleans()):                       # a strided view of the same codes
        x = np.repeat(x, 2, axis=0)[::2]
    _assert_same_runs(qm, x, codes)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_runs_on_any_integer_dtype(signed, dtype):
    """Codes from the format's range that the dtype holds, both ends included."""
    fin = TensorFormat(8, signed, 0.1, 0 if signed else 128)
    lo, hi = max(fin.lo, np.iinfo(dtype).min), min(fin.hi, np.iinfo(dtype).max)
    codes = np.random.default_rng(1).integers(lo, hi + 1, (3, 20))
    codes[0, :2] = lo, hi
    _assert_same_runs(_linear_model(fin, 3), codes.astype(dtype), codes)


@pytest.mark.parametrize("fmt, dtype, value", [
    (TensorFormat(8, True, 0.1, 0), np.uint8, 128),
    (TensorFormat(8, True, 0.1, 0), np.int16, -129),
    (TensorFormat(8, False, 0.1, 128), np.int8, -1),
    (TensorFormat(8, False, 0.1, 128), np.int16, 256),
    (TensorFormat(8, False, 0.1, 128), np.uint64, 2**64 - 1),
    (TensorFormat(4, True, 0.1, 0), np.int8, 8),
    (TensorFormat(4, False, 0.1, 0), np.uint8, 16),
    (TensorFormat(8, False, 0.1, 128), np.int64, -2**63),
])
def test_values_outside_the_format_are_refused_in_any_dtype(fmt, dtype, value):
    qm = _linear_model(fmt, 2)
    x = np.full((2, 20), max(fmt.lo, 0), dtype)
    x[1, 7] = value
    message = f"input 'x' has values outside [{fmt.lo}, {fmt.hi}]"
    with pytest.raises(UserError, match=re.escape(message)):
        golden.run(qm, x)
    x[1, 7] = min(fmt.hi, np.iinfo(dtype).max)       # the largest code the dtype holds
    golden.run(qm, x)


def test_dtype_and_shape_errors_keep_their_messages():
    qm = _linear_model(TensorFormat(8, False, 0.1, 128), 2)
    with pytest.raises(UserError, match=re.escape(
            "input 'x' has dtype float32; the golden model takes integers (use quantize_input)")):
        golden.run(qm, np.zeros((2, 20), np.float32))
    with pytest.raises(UserError, match=re.escape(
            "input 'x' has shape (2, 21), expected (N,) + (20,)")):
        golden.run(qm, np.zeros((2, 21), np.uint8))
    with pytest.raises(UserError, match=re.escape("input 'x' is not given")):
        golden.run(qm, {"y": np.zeros((2, 20), np.uint8)})


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64])
def test_the_range_check_returns_the_given_array_itself(dtype):
    qm = _linear_model(TensorFormat(8, False, 0.1, 128), 2)
    x = np.arange(40, dtype=dtype).reshape(2, 20)
    assert executor._check_input(qm, "x", x) is x
