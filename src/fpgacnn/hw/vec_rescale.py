"""The vector unit's input rescaler: `requantize(x - zp, rq)` per lane, to a 32-bit result.

The same requantization as stages 1 to 3 of `hw.postproc.PostProcessor` (and its rounding
functions), without bias, activation or output saturation: the results of an add's inputs are
summed before the final requantization, so they keep their full width (golden.ops.add).

    mode "shift":        shift_round(x * M, shift, rounding)          (shift >= 0; the compiler
                                                                      folds a left shift into M)
    mode "gemmlowp":     RoundingDivideByPOT(SRDHM(sat32(x << left), M0), right)
    mode "single_round": (x * M0 + 2**(30 - shift)) >> (31 - shift)

Three register stages, no back-pressure: `out` is valid `LATENCY` cycles after `valid`.
"""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.hw.postproc import (INT32_MAX, INT32_MIN, PARAM_BITS, clamp, rounding_divide_by_pot,
                                 shift_round, srdhm_quotient)

LATENCY = 3
_HALF_UP = 0                                    # golden.arith.ROUNDINGS order
_SHIFT, _GEMMLOWP, _SINGLE = 0, 1, 2            # hw.program.MODES order


class LaneRescaler(wiring.Component):
    """`lanes` lanes of `x` (signed `in_bits`) times a per-lane requantization -> int32."""

    def __init__(self, lanes, in_bits=18):
        self.lanes = lanes
        array = lambda shape: data.ArrayLayout(shape, lanes)  # noqa: E731
        super().__init__({
            "valid": In(1),
            "x": In(array(signed(in_bits))),
            "multiplier": In(array(signed(PARAM_BITS))),
            "shift": In(array(signed(PARAM_BITS))),
            "mode": In(2),
            "rounding": In(2),
            "out_valid": Out(1),
            "out": Out(array(signed(32))),
        })

    def elaborate(self, platform):
        m = Module()
        valid = [self.valid] + [Signal(name=f"valid_{i}") for i in range(1, LATENCY + 1)]
        for i in range(1, LATENCY + 1):
            m.d.sync += valid[i].eq(valid[i - 1])
        m.d.comb += self.out_valid.eq(valid[LATENCY])
        mode = [self.mode] + [Signal(2, name=f"mode_{i}") for i in range(1, LATENCY)]
        for i in range(1, LATENCY):
            m.d.sync += mode[i].eq(mode[i - 1])
        for lane in range(self.lanes):
            m.d.comb += self.out[lane].eq(self._lane(m, lane, mode))
        return m

    def _lane(self, m, lane, mode):
        def reg(shape, name):
            return Signal(shape, name=f"{name}_{lane}")

        x, shift = self.x[lane], self.shift[lane]
        # stage 1: the multiplier's operand (gemmlowp shifts left first, saturating to int32)
        operand, mult = reg(signed(PARAM_BITS), "operand"), reg(signed(PARAM_BITS), "mult")
        shift1, right = reg(signed(8), "shift_1"), reg(unsigned(6), "right")
        left = Mux(shift > 0, shift, 0)[:5]
        m.d.sync += [operand.eq(Mux(mode[0] == _GEMMLOWP, clamp(x << left, INT32_MIN, INT32_MAX),
                                    x)),
                     mult.eq(self.multiplier[lane]), shift1.eq(shift),
                     right.eq(Mux(shift < 0, -shift, 0))]
        # stage 2: the product
        product = reg(signed(2 * PARAM_BITS), "product")
        shift2, right2 = reg(signed(8), "shift_2"), reg(unsigned(6), "right_2")
        m.d.sync += [product.eq(operand * mult), shift2.eq(shift1), right2.eq(right)]
        # stage 3: the rounding shift, saturated to int32 (the compiler keeps results inside)
        single = mode[2] == _SINGLE
        amount = Mux(single, (31 - shift2)[:6], shift2[:6])
        rounding = Mux(single, _HALF_UP, self.rounding)
        y = Mux(mode[2] == _GEMMLOWP, rounding_divide_by_pot(srdhm_quotient(product), right2),
                shift_round(product, amount, rounding))
        out = reg(signed(32), "rescaled")
        m.d.sync += out.eq(clamp(y, INT32_MIN, INT32_MAX))
        return out
