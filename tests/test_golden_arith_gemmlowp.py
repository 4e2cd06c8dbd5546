"""gemmlowp/TFLite requantization against reference formulas in exact rational arithmetic.

The references are written here from the definitions (gemmlowp fixedpoint.h and TFLite's
MultiplyByQuantizedMultiplier), using Python integers and Fractions, not the code under test:
- SaturatingRoundingDoublingHighMul(a, b) = floor(a*b / 2**31 + 1/2), except that
  INT32_MIN * INT32_MIN saturates to INT32_MAX;
- RoundingDivideByPOT(x, e) = x / 2**e rounded half away from zero;
- MultiplyByQuantizedMultiplier(x, M0, s) = RDBPOT(SRDHM(x * 2**max(s,0), M0), max(-s,0)).
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fpgacnn.golden.arith import (INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier,
                                  multiply_by_quantized_multiplier_single_round,
                                  quantize_multiplier, rounding_divide_by_pot,
                                  saturating_rounding_doubling_high_mul)

int32 = st.integers(INT32_MIN, INT32_MAX)


def srdhm_ref(a, b):
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    return math.floor(Fraction(a * b, 2 ** 31) + Fraction(1, 2))


def rdbpot_ref(x, e):
    q = Fraction(abs(x), 2 ** e)
    magnitude = math.floor(q + Fraction(1, 2))
    return magnitude if x >= 0 else -magnitude


def mbqm_ref(x, m0, shift):
    left, right = max(shift, 0), max(-shift, 0)
    return rdbpot_ref(srdhm_ref(x * 2 ** left, m0), right)


EDGES = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, 1 << 30, INT32_MAX - 1,
         INT32_MAX]


@pytest.mark.parametrize("a", EDGES)
@pytest.mark.parametrize("b", EDGES)
def test_srdhm_edges(a, b):
    assert int(saturating_rounding_doubling_high_mul(a, b)) == srdhm_ref(a, b)


def test_srdhm_int32_min_squared_saturates():
    assert int(saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN)) == INT32_MAX


def test_srdhm_ties_round_up():
    # a*b / 2**31 == k + 1/2 exactly: gemmlowp's nudge rounds these toward +infinity
    half = 1 << 30
    assert int(saturating_rounding_doubling_high_mul(half, 1)) == 1     # +0.5 -> 1
    assert int(saturating_rounding_doubling_high_mul(-half, 1)) == 0    # -0.5 -> 0
    assert int(saturating_rounding_doubling_high_mul(3 * half, 1)) == 2  # +1.5 -> 2
    assert int(saturating_rounding_doubling_high_mul(-3 * half, 1)) == -1  # -1.5 -> -1


@given(int32, int32)
@settings(max_examples=400)
def test_srdhm_random(a, b):
    assert int(saturating_rounding_doubling_high_mul(a, b)) == srdhm_ref(a, b)


@pytest.mark.parametrize("exponent", range(0, 32))
def test_rdbpot_every_shift_on_edges_and_ties(exponent):
    values = list(EDGES)
    if exponent > 0:
        half = 1 << (exponent - 1)
        values += [half, -half, 3 * half, -3 * half, half - 1, -half + 1, half + 1, -half - 1]
    values = [v for v in values if INT32_MIN <= v <= INT32_MAX]
    got = rounding_divide_by_pot(np.array(values, np.int64), exponent)
    assert got.tolist() == [rdbpot_ref(v, exponent) for v in values]


def test_rdbpot_ties_away_from_zero():
    assert rounding_divide_by_pot(np.array([1, -1, 3, -3, 5, -5]), 1).tolist() == \
        [1, -1, 2, -2, 3, -3]


@given(int32, st.integers(0, 31))
@settings(max_examples=400)
def test_rdbpot_random(x, e):
    assert int(rounding_divide_by_pot(x, e)) == rdbpot_ref(x, e)


@given(st.integers(-(1 << 20), 1 << 20), st.integers(1 << 30, INT32_MAX), st.integers(-31, 0))
@settings(max_examples=400)
def test_multiply_by_quantized_multiplier_right_shifts(x, m0, shift):
    assert int(multiply_by_quantized_multiplier(x, m0, shift)) == mbqm_ref(x, m0, shift)


@given(st.integers(-1000, 1000), st.integers(1 << 30, INT32_MAX), st.integers(0, 20))
@settings(max_examples=200)
def test_multiply_by_quantized_multiplier_left_shifts(x, m0, shift):
    assert int(multiply_by_quantized_multiplier(x, m0, shift)) == mbqm_ref(x, m0, shift)


@given(st.integers(-(1 << 31), (1 << 31) - 1), st.integers(1 << 30, INT32_MAX),
       st.integers(-31, 0))
@settings(max_examples=300)
def test_single_round_is_one_half_up_rounding(x, m0, shift):
    exact = Fraction(x * m0, 2 ** (31 - shift))
    expected = math.floor(exact + Fraction(1, 2))
    assert int(multiply_by_quantized_multiplier_single_round(x, m0, shift)) == expected


@given(st.floats(1e-9, 1e4, allow_nan=False))
@settings(max_examples=300)
def test_quantize_multiplier_represents_the_real(real):
    m0, shift = quantize_multiplier(real)
    assert (1 << 30) <= m0 < (1 << 31)
    approx = Fraction(m0) * Fraction(2) ** (shift - 31)
    # M0 is the real's mantissa rounded to 31 bits: relative error at most 2**-31
    assert abs(approx - Fraction(real)) <= Fraction(real) * Fraction(1, 2 ** 31)


def test_quantize_multiplier_known_values():
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.0) == (0, 0)
    # 0.75 = 0.75 * 2**0: M0 = 0.75 * 2**31
    assert quantize_multiplier(0.75) == (3 << 29, 0)
