"""The golden ops against a plain nested-loop model of docs/numerics.md written here.

The naive model works on Python integers with exact Fractions for every rounding, so it shares
no code with fpgacnn.golden; layers get random integer parameters in every requantization mode.
"""

import math
from fractions import Fraction

import numpy as np
from hypothesis import example, given, settings, strategies as st

from fpgacnn import golden
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, QModel, Requant, TensorFormat

MODES = ["shift", "gemmlowp", "single_round", "float32"]


def round_fraction(q: Fraction, rounding: str) -> int:
    if rounding == "truncate":
        return math.floor(q)
    if rounding == "half_up":
        return math.floor(q + Fraction(1, 2))
    return round(q)  # half to even


def naive_requant(acc: int, mode: str, m, s, rounding: str) -> int:
    if mode == "shift":
        return round_fraction(Fraction(acc * int(m)) / Fraction(2) ** int(s), rounding)
    if mode == "float32":
        return int(np.rint(np.float32(acc) * np.float32(m)))
    acc = max(-2**31, min(2**31 - 1, acc))
    if mode == "single_round":
        return math.floor(Fraction(acc * int(m), 2 ** (31 - int(s))) + Fraction(1, 2))
    left, right = max(int(s), 0), max(-int(s), 0)
    x = max(-2**31, min(2**31 - 1, acc * 2 ** left))
    high = 2**31 - 1 if x == int(m) == -2**31 else \
        math.floor(Fraction(x * int(m), 2 ** 31) + Fraction(1, 2))
    mag = math.floor(Fraction(abs(high), 2 ** right) + Fraction(1, 2))
    return mag if high >= 0 else -mag


def naive_finish(y, layer, c, rounding):
    if layer.act_multiplier is not None and y < 0:
        m = int(layer.act_multiplier[c if layer.act_multiplier.size > 1 else 0])
        y = round_fraction(Fraction(y * m, 2 ** layer.act_shift), rounding)
    return min(max(y + layer.output.zero_point, layer.out_lo), layer.out_hi)


def naive_conv(x, layer, fin, rounding):
    op, w = layer.op, layer.weight
    n_, cin, h, wd = x.shape
    t, l, b, r = op.padding
    _, _, oh, ow = op.output_shape([x.shape])
    cg, og = cin // op.groups, op.out_channels // op.groups
    out = np.zeros((n_, op.out_channels, oh, ow), np.int64)
    rq = layer.requant
    for n in range(n_):
        for o in range(op.out_channels):
            g = o // og
            for i in range(oh):
                for j in range(ow):
                    acc = int(layer.bias[o]) if layer.bias is not None else 0
                    for c in range(cg):
                        for u in range(op.kernel[0]):
                            for v in range(op.kernel[1]):
                                hi = i * op.stride[0] + u * op.dilation[0] - t
                                wi = j * op.stride[1] + v * op.dilation[1] - l
                                inside = 0 <= hi < h and 0 <= wi < wd
                                xv = int(x[n, g * cg + c, hi, wi]) if inside else fin.zero_point
                                acc += (xv - fin.zero_point) * int(w[o, c, u, v])
                    k = o if rq.multiplier.size > 1 else 0
                    y = naive_requant(acc, rq.mode, rq.multiplier[k], rq.shift[k], rq.rounding)
                    out[n, o, i, j] = naive_finish(y, layer, o, rounding)
    return out


def _requant(draw, mode, channels, rounding):
    if mode == "shift":
        return Requant("shift", np.ones(channels, np.int64),
                       draw(st.lists(st.integers(-2, 12), min_size=channels,
                                     max_size=channels)), rounding)
    if mode == "float32":
        return Requant("float32", np.float32(draw(st.lists(st.floats(1e-4, 0.05),
                                                           min_size=channels,
                                                           max_size=channels))), [0] * channels)
    m0 = draw(st.lists(st.integers(1 << 30, 2**31 - 1), min_size=channels, max_size=channels))
    shift = draw(st.lists(st.integers(-14, 1), min_size=channels, max_size=channels))
    return Requant(mode, m0, shift, rounding)


def _format(draw):
    bits = draw(st.integers(2, 16))
    signed = draw(st.booleans())
    fmt = TensorFormat(bits, signed, 1.0, 0)
    return TensorFormat(bits, signed, 0.1, draw(st.integers(fmt.lo, fmt.hi)))


@given(st.sampled_from(MODES), st.sampled_from(["half_up", "half_even", "truncate"]),
       st.sampled_from([None, "relu", "leaky", "prelu"]), st.booleans(), st.data())
@settings(max_examples=80)
def test_conv_matches_nested_loops(mode, rounding, act, per_channel, data):
    draw = data.draw
    groups = draw(st.sampled_from([1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    op = ops.Conv2d(cin, cout, (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                    (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                    tuple(draw(st.integers(0, 2)) for _ in range(4)),
                    (draw(st.integers(1, 2)), 1), groups)
    fin, fout = _format(draw), _format(draw)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w_bits = draw(st.integers(2, 16))
    top = (1 << (w_bits - 1)) - 1
    weight = rng.integers(-top, top + 1, (cout, cin // groups) + op.kernel)
    lo, hi = (max(fout.lo, fout.zero_point), fout.hi) if act == "relu" else (fout.lo, fout.hi)
    slopes = {None: None, "relu": None, "leaky": np.array([6554]),
              "prelu": rng.integers(-70000, 70000, cout)}[act]
    layer = QLayer("y", op, ("x",), fout, lo, hi, weight=weight,
                   weight_scale=np.ones(1), weight_bits=w_bits,
                   bias=rng.integers(-5000, 5000, cout),
                   requant=_requant(draw, mode, cout if per_channel else 1, rounding),
                   act_multiplier=slopes, act_shift=16)
    shape = (1, cin, draw(st.integers(1, 4)) + op.dilation[0] * (op.kernel[0] - 1),
             draw(st.integers(1, 4)) + op.kernel[1] - 1)
    x = rng.integers(fin.lo, fin.hi + 1, shape)
    qm = QModel("t", "affine", mode, rounding, 64, {"x": shape}, {"x": fin}, [layer], ["y"])
    np.testing.assert_array_equal(golden.run(qm, x)["y"], naive_conv(x, layer, fin, rounding))


def _model(layers, shape, fin, rounding="half_up"):
    return QModel("t", "pow2", "shift", rounding, 32, {"x": shape}, {"x": fin}, layers,
                  [layers[-1].name])


def test_concat_requantizes_each_input_to_the_output_format():
    # seed 002: the route layer's inputs are brought to the output scale and zero point first
    fa = TensorFormat(8, False, 0.5, 10)
    fb = TensorFormat(8, False, 0.25, 3)
    fout = TensorFormat(8, False, 0.5, 4)
    rq_b = Requant("gemmlowp", [1 << 30], [0])  # real multiplier 0.25 / 0.5 = 0.5
    layers = [QLayer("b", ops.ReLU(), ("x",), fb, fb.lo, fb.hi,
                     input_requants=(Requant("shift", [1], [0]),)),
              QLayer("cat", ops.Concat(), ("x", "b"), fout, fout.lo, fout.hi,
                     input_requants=(Requant("shift", [1], [0]), rq_b))]
    x = np.array([[[[10, 11]], [[200, 255]]]])
    qm = QModel("t", "affine", "gemmlowp", "half_up", 32, {"x": x.shape}, {"x": fa}, layers,
                ["cat"])
    got = golden.run(qm, x, keep=True)
    # "b" rescales x - 10 to zero point 3 with the same step (a shift of 0)
    np.testing.assert_array_equal(got["b"], np.clip(x - 10 + 3, 0, 255))
    bq = got["b"]
    expected_b = [[naive_requant(int(v) - 3, "gemmlowp", 1 << 30, 0, "") + 4 for v in row]
                  for row in bq.reshape(-1, 2)]
    expected = np.concatenate([np.clip(x - 10 + 4, 0, 255),
                               np.clip(np.array(expected_b).reshape(bq.shape), 0, 255)], axis=1)
    np.testing.assert_array_equal(got["cat"], expected)


def test_add_rescales_both_inputs_then_shifts_out_the_guard_bits():
    fin = TensorFormat(8, True, 2 ** -4, 0, 4)
    fout = TensorFormat(8, True, 2 ** -3, 0, 3)
    rq_in = Requant("shift", [1], [4 - 3 - 8])        # to s_out / 2**8: a left shift by 7
    add = QLayer("sum", ops.Add(), ("x", "x"), fout, fout.lo, fout.hi,
                 input_requants=(rq_in, rq_in), requant=Requant("shift", [1], [8], "half_even"))
    x = np.arange(-128, 128).reshape(1, 1, 16, 16)
    got = golden.run(_model([add], x.shape, fin, "half_even"), x)["sum"]
    expected = [[min(127, max(-128, round(Fraction(2 * int(v) * 2 ** 7, 2 ** 8))))
                 for v in row] for row in x[0, 0]]
    np.testing.assert_array_equal(got[0, 0], expected)


def test_maxpool_upsample_flatten_on_integers():
    fin = TensorFormat(8, False, 0.1, 7)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 3, 5, 5))
    layers = [QLayer("p", ops.MaxPool(2, 2, (0, 0, 1, 1)), ("x",), fin, fin.lo, fin.hi),
              QLayer("u", ops.Upsample(2), ("p",), fin, fin.lo, fin.hi),
              QLayer("f", ops.Flatten(), ("u",), fin, fin.lo, fin.hi)]
    got = golden.run(_model(layers, x.shape, fin), x, keep=True)
    pooled = np.zeros((2, 3, 3, 3), np.int64)
    for n in range(2):
        for c in range(3):
            for i in range(3):
                for j in range(3):
                    pooled[n, c, i, j] = max(int(x[n, c, u, v])
                                             for u in range(2 * i, min(2 * i + 2, 5))
                                             for v in range(2 * j, min(2 * j + 2, 5)))
    np.testing.assert_array_equal(got["p"], pooled)
    up = np.array([[[[pooled[n, c, i // 2, j // 2] for j in range(6)] for i in range(6)]
                    for c in range(3)] for n in range(2)])
    np.testing.assert_array_equal(got["u"], up)
    np.testing.assert_array_equal(got["f"], up.reshape(2, -1))


def test_pow2_average_pool_is_sum_times_reciprocal_then_shift():
    fin = TensorFormat(8, True, 2 ** -5, 0, 5)
    count = 9
    rq = Requant("shift", [round(2 ** 15 / count)], [15], "half_up")
    layer = QLayer("avg", ops.AvgPool(3, 3), ("x",), fin, fin.lo, fin.hi, requant=rq)
    x = np.random.default_rng(1).integers(-128, 128, (1, 2, 6, 6))
    got = golden.run(_model([layer], x.shape, fin), x)["avg"]
    for c in range(2):
        for i in range(2):
            for j in range(2):
                s = int(x[0, c, 3 * i:3 * i + 3, 3 * j:3 * j + 3].sum())
                assert got[0, c, i, j] == math.floor(Fraction(s * 3641, 2 ** 15) + Fraction(1, 2))


def test_run_rejects_values_outside_the_input_format():
    import pytest
    from fpgacnn.errors import UserError
    fin = TensorFormat(4, False, 0.1, 0)
    layer = QLayer("p", ops.MaxPool(1, 1), ("x",), fin, fin.lo, fin.hi)
    with pytest.raises(UserError, match="outside"):
        golden.run(_model([layer], (1, 1, 2, 2), fin), np.full((1, 1, 2, 2), 16))


@given(st.lists(st.floats(-1e6, 1e6, width=32), min_size=3, max_size=3),
       st.integers(-30, 30))
@example([1 + 2**-12, 1 + 2**-12, 2**-80], 0)  # a*b is a float32 tie; c decides, far below
@settings(max_examples=300)
def test_fma_float32_rounds_the_exact_result_once(values, exponent):
    from fpgacnn.golden.ops import fma_float32
    a, b, c = (np.float32(v) for v in values)
    c = np.float32(c * np.float32(2.0 ** exponent))
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    got = fma_float32(a, b, c)
    # the correctly rounded float32: no float32 is nearer, and ties go to the even mantissa
    below, above = np.nextafter(got, np.float32(-np.inf)), np.nextafter(got, np.float32(np.inf))
    err = abs(Fraction(float(got)) - exact)
    assert err <= abs(Fraction(float(below)) - exact)
    assert err <= abs(Fraction(float(above)) - exact)
    if err in (abs(Fraction(float(below)) - exact), abs(Fraction(float(above)) - exact)):
        assert int(np.float32(got).view(np.int32)) % 2 == 0
