"""Float32-mode add, LeakyReLU, PReLU and concat rescaling == onnxruntime, bit for bit.

Each example takes random formats and feeds every code (every pair of codes for add), so that
the rounding ties where formulas differ are all exercised; onnxruntime runs the exported layer.
"""

import numpy as np
from hypothesis import given, settings, strategies as st

from fpgacnn import golden
from fpgacnn.ir import ops
from fpgacnn.quant import params as P
from fpgacnn.quant.model import QLayer, QModel, TensorFormat
from fpgacnn.quant.to_onnx import run_onnxruntime, to_onnx


@st.composite
def formats(draw, signed, scale=None):
    scale = scale or float(np.float32(draw(st.floats(2e-3, 0.5))))
    lo, hi = (-128, 127) if signed else (0, 255)
    return TensorFormat(8, signed, scale, draw(st.integers(lo, hi)))


def _every_code(fmt, shape):
    codes = np.arange(fmt.lo, fmt.hi + 1)
    return np.resize(codes, int(np.prod(shape))).reshape(shape)


def _compare(qmodel, x):
    expected = run_onnxruntime(to_onnx(qmodel), x)
    got = golden.run(qmodel, x)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value)


@given(st.booleans(), st.booleans(), st.data())
@settings(max_examples=40)
def test_add_equals_qlinearadd(signed, relu, data):
    fa, fb = data.draw(formats(signed)), data.draw(formats(signed))
    near = float(np.float32(fa.scale * data.draw(st.floats(0.3, 3.0))))
    fout = data.draw(formats(signed, scale=data.draw(st.sampled_from([None, near]))))
    lo = max(fout.lo, fout.zero_point) if relu else fout.lo
    layer = QLayer("y", ops.Add(activation=ops.ReLU() if relu else None), ("a", "b"), fout,
                   lo, fout.hi, input_requants=P.add_float32_requants([fa, fb], fout))
    shape = (1, 1, 256, 256)
    a = np.repeat(np.arange(fa.lo, fa.hi + 1), 256).reshape(shape)
    b = np.tile(np.arange(fb.lo, fb.hi + 1), 256).reshape(shape)
    qm = QModel("t", "affine", "float32", "half_up", 32, {"a": shape, "b": shape},
                {"a": fa, "b": fb}, [layer], ["y"])
    _compare(qm, {"a": a, "b": b})


def _unfused_add(a, b, fa, fb, fout):
    """QLinearAdd's formula with every multiply-add rounded twice (not what AVX2 runs)."""
    f = np.float32
    r_a, r_b = f(fa.scale) / f(fout.scale), f(fb.scale) / f(fout.scale)
    fixed = f(fout.zero_point) - (r_a * f(fa.zero_point) + r_b * f(fb.zero_point))
    return np.rint(a.astype(f) * r_a + (b.astype(f) * r_b + fixed))


def test_add_rounds_each_multiply_add_once_as_onnxruntime_does():
    # formats where rounding twice would change some of the 65536 results; onnxruntime decides
    rng = np.random.default_rng(7)
    shape = (1, 1, 256, 256)
    a = np.repeat(np.arange(256), 256).reshape(shape)
    b = np.tile(np.arange(256), 256).reshape(shape)
    found = 0
    for _ in range(3000):
        s = np.float32(rng.uniform(2e-3, 0.5, 3))
        fa, fb, fout = (TensorFormat(8, False, float(v), int(z))
                        for v, z in zip(s, rng.integers(0, 256, 3)))
        layer = QLayer("y", ops.Add(), ("a", "b"), fout, fout.lo, fout.hi,
                       input_requants=P.add_float32_requants([fa, fb], fout))
        qm = QModel("t", "affine", "float32", "half_up", 32, {"a": shape, "b": shape},
                    {"a": fa, "b": fb}, [layer], ["y"])
        got = golden.run(qm, {"a": a, "b": b})["y"]
        if np.array_equal(got, np.clip(_unfused_add(a, b, fa, fb, fout), 0, 255)):
            continue
        _compare(qm, {"a": a, "b": b})
        found += 1
        if found == 3:
            return
    raise AssertionError("no formats found where the two roundings differ")


@given(st.booleans(), st.sampled_from(["leaky", "prelu"]), st.data())
@settings(max_examples=60)
def test_slopes_equal_onnxruntime(signed, kind, data):
    fmt = data.draw(formats(signed))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    if kind == "leaky":
        alpha = data.draw(st.sampled_from([0.1, 0.01, float(rng.uniform(0, 1))]))
        op, slopes = ops.LeakyReLU(alpha), P.activation_slope_float32(ops.LeakyReLU(alpha), {})
    else:
        op = ops.PReLU(4)
        slopes = P.activation_slope_float32(op, {"slope": rng.uniform(-0.5, 1.0, 4)})
    rank = data.draw(st.sampled_from([2, 4]))
    shape = (1, 4, 8, 8) if rank == 4 else (64, 4)
    layer = QLayer("y", op, ("x",), fmt, fmt.lo, fmt.hi, act_slope=slopes)
    qm = QModel("t", "affine", "float32", "half_up", 32, {"x": shape}, {"x": fmt}, [layer],
                ["y"])
    x = _every_code(fmt, shape) if rank == 2 else _every_code(fmt, shape).transpose(0, 1, 3, 2)
    _compare(qm, x)


@given(st.booleans(), st.data())
@settings(max_examples=40)
def test_concat_rescaling_equals_onnxruntime(signed, data):
    fa, fb = data.draw(formats(signed)), data.draw(formats(signed))
    near = float(np.float32(fa.scale * data.draw(st.sampled_from([0.25, 0.5, 2.0, 1.5]))))
    fout = data.draw(formats(signed, scale=data.draw(st.sampled_from([None, near]))))
    pool = QLayer("b", ops.MaxPool(1, 1), ("a",), fa, fa.lo, fa.hi)
    rqs = tuple(P.rescale_requant("float32", "half_up", f, fout, "cat") for f in (fa, fa))
    cat = QLayer("y", ops.Concat(), ("a", "b"), fout, fout.lo, fout.hi, input_requants=rqs)
    shape = (1, 2, 16, 16)
    qm = QModel("t", "affine", "float32", "half_up", 32, {"a": shape}, {"a": fa}, [pool, cat],
                ["y"])
    _compare(qm, _every_code(fa, shape))
