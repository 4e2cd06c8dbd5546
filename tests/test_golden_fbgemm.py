"""The second oracle: PyTorch's fbgemm quantized conv and linear equal the golden float32 mode."""

import warnings

import numpy as np
import pytest
import torch
import torch.ao.nn.quantized.functional as qF
from hypothesis import given, settings, strategies as st

from fpgacnn import golden
from fpgacnn.ir import ops
from fpgacnn.quant import params as P
from fpgacnn.quant.model import QLayer, QModel, TensorFormat

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True, scope="module")
def fbgemm_engine():
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = "fbgemm"
    yield
    torch.backends.quantized.engine = old


def _q_input(x, fmt):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch._make_per_tensor_quantized_tensor(torch.tensor(x, dtype=torch.uint8),
                                                       fmt.scale, fmt.zero_point)


def _q_weight(w, scales):
    w = torch.tensor(w, dtype=torch.int8)
    if scales.size > 1:
        return torch._make_per_channel_quantized_tensor(
            w, torch.tensor(scales), torch.zeros(scales.size, dtype=torch.long), 0)
    return torch._make_per_tensor_quantized_tensor(w, float(scales[0]), 0)


def _case(data, w_shape, per_channel, rng):
    fin = TensorFormat(8, False, float(np.float32(data.draw(st.floats(1e-3, 0.2)))),
                       data.draw(st.integers(0, 255)))
    fout = TensorFormat(8, False, float(np.float32(data.draw(st.floats(1e-2, 1.0)))),
                        data.draw(st.integers(0, 255)))
    weight = rng.integers(-127, 128, w_shape)
    w_scale = np.float32(rng.uniform(1e-3, 0.03, w_shape[0] if per_channel else 1))
    bias = rng.integers(-5000, 5000, w_shape[0])
    return fin, fout, weight, w_scale.astype(np.float64), bias


def _golden(op, in_shape, fin, fout, weight, w_scale, bias, x):
    rq = P.conv_requant("float32", "half_up", fin, w_scale, None, fout, "gen")
    layer = QLayer("y", op, ("x",), fout, fout.lo, fout.hi, weight=weight, weight_scale=w_scale,
                   weight_bits=8, bias=bias, requant=rq)
    qm = QModel("gen", "affine", "float32", "half_up", 32, {"x": in_shape}, {"x": fin}, [layer],
                ["y"])
    return golden.run(qm, x)["y"]


def _float_bias(bias, fin, w_scale):
    # fbgemm takes a float bias and rounds it back to int32 at s_in * s_w
    return torch.tensor(bias * (np.float32(fin.scale) * w_scale.astype(np.float32)),
                        dtype=torch.float32)


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 2),
       st.integers(0, 2), st.booleans(), st.data())
@settings(max_examples=150)
def test_conv_equals_fbgemm(cin, cout, k, stride, pad, per_channel, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    h = k + data.draw(st.integers(0, 6))
    fin, fout, weight, w_scale, bias = _case(data, (cout, cin, k, k), per_channel, rng)
    x = rng.integers(0, 256, (2, cin, h, h))
    y = qF.conv2d(_q_input(x, fin), _q_weight(weight, w_scale), _float_bias(bias, fin, w_scale),
                  stride=stride, padding=pad, scale=fout.scale, zero_point=fout.zero_point)
    op = ops.Conv2d(cin, cout, k, stride, pad)
    got = _golden(op, x.shape, fin, fout, weight, w_scale, bias, x)
    np.testing.assert_array_equal(got, y.int_repr().numpy())


@given(st.integers(1, 64), st.integers(1, 16), st.booleans(), st.data())
@settings(max_examples=100)
def test_linear_equals_fbgemm(k, o, per_channel, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    fin, fout, weight, w_scale, bias = _case(data, (o, k), per_channel, rng)
    x = rng.integers(0, 256, (3, k))
    packed = torch.ops.quantized.linear_prepack(_q_weight(weight, w_scale),
                                                _float_bias(bias, fin, w_scale))
    y = torch.ops.quantized.linear(_q_input(x, fin), packed, fout.scale, fout.zero_point)
    got = _golden(ops.Linear(k, o), x.shape, fin, fout, weight, w_scale, bias, x)
    np.testing.assert_array_equal(got, y.int_repr().numpy())
