"""Rounding shifts against exact rational arithmetic (Python's fractions)."""

from fractions import Fraction
import math

import numpy as np
from hypothesis import given, strategies as st

from fpgacnn.golden.arith import shift_round


def exact(x, s, rounding):
    q = Fraction(x, 2 ** s)
    if rounding == "truncate":
        return math.floor(q)
    if rounding == "half_up":
        return math.floor(q + Fraction(1, 2))
    return round(q)  # Python rounds Fractions half to even


@given(st.integers(-2**40, 2**40), st.integers(0, 20),
       st.sampled_from(["half_up", "half_even", "truncate"]))
def test_shift_round_is_exact(x, s, rounding):
    assert int(shift_round(np.int64(x), s, rounding)) == exact(x, s, rounding)
