"""Extreme requantization and activation parameters: exact results or a named error, never a
wrapped int64. Expected values are computed here with Python integers and Fractions."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fpgacnn import golden
from fpgacnn.errors import UserError
from fpgacnn.golden.requant import finish, requantize
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, QModel, Requant, TensorFormat

ROUNDINGS = ["half_up", "half_even", "truncate"]


def exact_round(q: Fraction, rounding: str) -> int:
    if rounding == "truncate":
        return math.floor(q)
    if rounding == "half_up":
        return math.floor(q + Fraction(1, 2))
    return round(q)


def exact_single_round(acc: int, m0: int, shift: int) -> int:
    acc = max(-2**31, min(2**31 - 1, acc))
    return math.floor(Fraction(acc * m0, 2 ** (31 - shift)) + Fraction(1, 2))


def exact_finish(y: int, slope, act_shift, fmt, lo, hi, rounding) -> int:
    if slope is not None and y < 0:
        y = exact_round(Fraction(y * slope, 2 ** act_shift), rounding)
    return min(max(y + fmt.zero_point, lo), hi)


def _conv_model(requant, slope, mode, rounding, fout=TensorFormat(8, False, 0.1, 7)):
    layer = QLayer("big", ops.Conv2d(1, 1, 1), ("x",), fout, fout.lo, fout.hi,
                   weight=np.array([[[[1 << 22]]]]), weight_scale=np.ones(1), weight_bits=24,
                   bias=np.array([-100]), requant=requant,
                   act_multiplier=None if slope is None else np.array([slope]), act_shift=16)
    fin = TensorFormat(8, True, 0.1, 0)
    return QModel("t", "affine", mode, rounding, 32, {"x": (1, 1, 2, 8)}, {"x": fin}, [layer],
                  ["big"]), layer


def test_single_round_shift_24_with_a_steep_slope_does_not_wrap():
    # the RTL engineer's case: acc * M0 >> 7 reaches 2**53; times a slope of 30000 it would
    # wrap an int64 (and a negative input could come out positive)
    x = np.arange(-128, 128, 16).reshape(1, 1, 2, 8)
    m0 = (1 << 31) - 1
    qm, layer = _conv_model(Requant("single_round", [m0], [24]), 30000, "single_round",
                            "half_up")
    got = golden.run(qm, x)["big"]
    accs = [(int(v) << 22) - 100 for v in x.ravel()]
    expected = [exact_finish(exact_single_round(a, m0, 24), 30000, 16, layer.output,
                             layer.out_lo, layer.out_hi, "half_up") for a in accs]
    assert got.ravel().tolist() == expected
    assert expected.count(layer.out_lo) > 0 and expected.count(layer.out_hi) > 0


@given(st.lists(st.integers(-2**62, 2**62), min_size=1, max_size=6),
       st.integers(1, 2**20), st.integers(-3, 40), st.sampled_from(ROUNDINGS),
       st.integers(-2**20, 2**20), st.integers(0, 40), st.sampled_from(ROUNDINGS))
@settings(max_examples=300)
def test_shift_mode_and_slopes_are_exact_for_any_accumulator(accs, mult, shift, rounding,
                                                               slope, act_shift, act_rounding):
    fout = TensorFormat(16, True, 1.0, 100)
    layer = QLayer("y", ops.LeakyReLU(0.1), ("x",), fout, fout.lo, fout.hi,
                   act_multiplier=np.array([slope]), act_shift=act_shift)
    rq = Requant("shift", [mult], [shift], rounding)
    values = [exact_round(Fraction(a * mult, 2 ** shift) if shift >= 0 else
                          Fraction(a * mult * 2 ** -shift), rounding) for a in accs]
    acc = np.array(accs, np.int64).reshape(1, -1)
    if any(abs(v) >= 2**63 for v in values):
        with pytest.raises(UserError, match="64 bits"):
            requantize(acc, rq)
        return
    y = requantize(acc, rq)
    assert y.ravel().tolist() == values
    got = finish(y, layer, rounding=act_rounding)
    assert got.ravel().tolist() == [exact_finish(v, slope, act_shift, fout, fout.lo, fout.hi,
                                                 act_rounding) for v in values]


def test_gemmlowp_shifts_beyond_the_word_saturate_or_vanish_instead_of_wrapping():
    acc = np.array([[5, -5, 0, 2**31 - 1, -2**31]])
    left = requantize(acc, Requant("gemmlowp", [1 << 30], [40]))       # x 2**39: saturates
    assert left.ravel().tolist() == [2**30, -2**30, 0, 2**30, -2**30]
    right = requantize(acc, Requant("gemmlowp", [1 << 30], [-70]))     # / 2**71: rounds to 0
    assert right.ravel().tolist() == [0, 0, 0, 0, 0]


def test_parameters_no_hardware_holds_name_the_layer():
    x = np.zeros((1, 1, 2, 8), np.int64)
    qm, _ = _conv_model(Requant("single_round", [1 << 30], [31]), None, "single_round",
                        "half_up")
    with pytest.raises(UserError, match="layer 'big'.*shift"):
        golden.run(qm, x)
    qm, _ = _conv_model(Requant("gemmlowp", [1 << 33], [0]), None, "gemmlowp", "half_up")
    with pytest.raises(UserError, match="layer 'big'.*int32"):
        golden.run(qm, x)
