"""Golden model in float32 mode == onnxruntime's integer kernels, bit for bit.

Each example is one random layer with random integer parameters (weights, int32 bias, scales,
zero points), exported as QLinearConv / MaxPool / QLinear*Pool and run by onnxruntime; the
golden output must equal it element for element. The hypothesis sweeps together run well over
1,000 generated layers.
"""

import numpy as np
from hypothesis import given, settings, strategies as st

from fpgacnn import golden
from fpgacnn.ir import ops
from fpgacnn.quant import params as P
from fpgacnn.quant.model import QLayer, QModel, TensorFormat
from fpgacnn.quant.to_onnx import run_onnxruntime, to_onnx


def _fmt(draw, signed=False):
    scale = float(np.float32(draw(st.floats(1e-3, 0.5))))
    lo, hi = (-128, 127) if signed else (0, 255)
    return TensorFormat(8, signed, scale, draw(st.integers(lo, hi)))


def _one_layer_model(layer, in_shape, fin):
    return QModel("gen", "affine", "float32", "half_up", 32, {"x": in_shape}, {"x": fin},
                  [layer], [layer.name])


def _compare(qmodel, x):
    expected = run_onnxruntime(to_onnx(qmodel), x)
    got = golden.run(qmodel, x)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value)


@st.composite
def conv_layers(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3, "depthwise"]))
    cin = draw(st.integers(1, 4)) * (1 if groups == "depthwise" else groups)
    groups = cin if groups == "depthwise" else groups
    cout = groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(1, 9)) + dilation[0] * (kernel[0] - 1)
    w = draw(st.integers(1, 9)) + dilation[1] * (kernel[1] - 1)
    op = ops.Conv2d(cin, cout, kernel, stride, pads, dilation, groups,
                    bias=draw(st.booleans()))
    return op, (draw(st.integers(1, 2)), cin, h, w)


def _weights_and_bias(draw, shape, per_channel, bias):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weight = rng.integers(-127, 128, shape)
    channels = shape[0] if per_channel else 1
    w_scale = np.float32(rng.uniform(1e-3, 0.05, channels)).astype(np.float64)
    b = rng.integers(-20000, 20000, shape[0]) if bias else None
    return rng, weight, w_scale, b


@given(conv_layers(), st.booleans(), st.booleans(), st.data())
@settings(max_examples=650)
def test_conv_equals_onnxruntime(layer, per_channel, signed_out, data):
    op, in_shape = layer
    fin = _fmt(data.draw, signed=signed_out)  # onnxruntime: x and y of one type
    fout = _fmt(data.draw, signed=signed_out)
    w_shape = (op.out_channels, op.in_channels // op.groups) + op.kernel
    rng, weight, w_scale, bias = _weights_and_bias(data.draw, w_shape, per_channel, op.bias)
    rq = P.conv_requant("float32", "half_up", fin, w_scale, None, fout, "gen")
    qlayer = QLayer("y", op, ("x",), fout, fout.lo, fout.hi, weight=weight,
                    weight_scale=w_scale, weight_bits=8, bias=bias, requant=rq)
    x = rng.integers(fin.lo, fin.hi + 1, in_shape)
    _compare(_one_layer_model(qlayer, in_shape, fin), x)


@given(st.integers(1, 40), st.integers(1, 12), st.booleans(), st.booleans(), st.data())
@settings(max_examples=200)
def test_linear_equals_onnxruntime(k, o, per_channel, bias, data):
    signed = data.draw(st.booleans())
    fin, fout = _fmt(data.draw, signed), _fmt(data.draw, signed)
    rng, weight, w_scale, b = _weights_and_bias(data.draw, (o, k), per_channel, bias)
    rq = P.conv_requant("float32", "half_up", fin, w_scale, None, fout, "gen")
    qlayer = QLayer("y", ops.Linear(k, o, bias), ("x",), fout, fout.lo, fout.hi, weight=weight,
                    weight_scale=w_scale, weight_bits=8, bias=b, requant=rq)
    x = rng.integers(fin.lo, fin.hi + 1, (3, k))
    _compare(_one_layer_model(qlayer, (3, k), fin), x)


@st.composite
def pools(draw):
    kind = draw(st.sampled_from(["max", "avg", "global"]))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    h, w = kernel[0] + draw(st.integers(0, 7)), kernel[1] + draw(st.integers(0, 7))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 4)), h, w)
    if kind == "global":
        return ops.GlobalAvgPool(), shape
    if kind == "max":
        pads = tuple(draw(st.integers(0, k // 2)) for k in kernel * 2)
        pads = (pads[0], pads[1], pads[2], pads[3])
        return ops.MaxPool(kernel, stride, pads, draw(st.booleans())), shape
    pads = tuple(draw(st.integers(0, (k - 1) // 2)) for k in kernel * 2)
    return ops.AvgPool(kernel, stride, pads, False, count_include_pad=True), shape


@given(pools(), st.data())
@settings(max_examples=250)
def test_pools_equal_onnxruntime(pool, data):
    op, shape = pool
    signed = data.draw(st.booleans())
    fin = _fmt(data.draw, signed)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    if isinstance(op, ops.MaxPool):
        fout, rq = fin, None
    else:
        # ONNX needs 1/256 <= s_in/s_out < 256 for these kernels
        fout = TensorFormat(8, signed, float(np.float32(fin.scale * data.draw(
            st.floats(0.25, 4.0)))), data.draw(st.integers(-128, 127) if signed
                                               else st.integers(0, 255)))
        count = shape[2] * shape[3] if isinstance(op, ops.GlobalAvgPool) else op.kernel[0] * \
            op.kernel[1]
        rq = P.average_requant("float32", "half_up", fin, fout, count, "gen",
                               global_pool=isinstance(op, ops.GlobalAvgPool))
    qlayer = QLayer("y", op, ("x",), fout, fout.lo, fout.hi, requant=rq)
    x = rng.integers(fin.lo, fin.hi + 1, shape)
    _compare(_one_layer_model(qlayer, shape, fin), x)
