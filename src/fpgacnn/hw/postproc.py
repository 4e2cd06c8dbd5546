"""The post-processing pipeline: accumulator -> output integer, Q channels per cycle.

Per channel it does exactly what `fpgacnn.golden.requant` does (docs/numerics.md):

1. s = acc + bias
2. requantize: "shift" y = shift_round(s * M, shift, rounding);
   "gemmlowp" y = RoundingDivideByPOT(SRDHM(sat32(sat32(s) << left), M0), right);
   "single_round" y = (sat32(s) * M0 + 2**(30 - shift)) >> (31 - shift)
3. LeakyReLU/PReLU: y < 0 -> shift_round(y * slope, act_shift, act_rounding)
4. + output zero point, saturate to [out_lo, out_hi] (ReLU and Clip are folded in there)
5. optional 2x2 max-pool: the max over 4 consecutive inputs (the sequencer sends each pool
   window's pixels back to back, `first`/`last` marking the window).

Five register stages; no back-pressure (one result per input, `LATENCY` cycles later).
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
LATENCY = 6
PARAM_BITS = 32
_HALF_UP, _HALF_EVEN, _TRUNCATE = 0, 1, 2      # golden.arith.ROUNDINGS order
_SHIFT, _GEMMLOWP, _SINGLE = 0, 1, 2           # hw.program.MODES order


def clamp(value, lo, hi):
    return Mux(value < lo, lo, Mux(value > hi, hi, value))


def shift_round(x, amount, rounding):
    """x / 2**amount rounded (golden.arith.shift_round) for a signed `x`, unsigned `amount`.

    The floor goes up by one on the guard bit (the highest bit shifted out) when rounding half
    up, and on the guard bit with a sticky bit below it or an odd floor when rounding half to
    even: one barrel shifter, not two.
    """
    x = x.as_signed()
    if len(x) <= 1 << len(amount):      # sign bits up to the largest amount, for guard/sticky
        x = Cat(x, x[-1].replicate((1 << len(amount)) + 1 - len(x))).as_signed()
    floor = x >> amount
    guard = Cat(Const(0, 1), x).bit_select(amount, 1)
    mask = (Const(1, 1) << amount) - 1
    half = (Const(1, 1) << amount) >> 1
    remainder = (x.as_unsigned() & mask)[:len(mask)]
    sticky = (remainder & (half - 1)) != 0
    up = Mux(rounding == _HALF_EVEN, guard & (sticky | floor[0]), guard)
    return floor + Mux(rounding == _TRUNCATE, 0, up)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp's RoundingDivideByPOT (ties away from zero) for an unsigned `exponent`."""
    mask = (Const(1, 1) << exponent) - 1
    remainder = (x.as_unsigned() & mask)[:len(mask)]
    threshold = (mask >> 1) + x[-1]
    return (x >> exponent) + (remainder > threshold)


def srdhm_quotient(product):
    """SRDHM's round(ab / 2**31) from ab (the INT32_MIN * INT32_MIN case is handled apart)."""
    nudge = Mux(product >= 0, Const(1 << 30, signed(32)), Const(1 - (1 << 30), signed(32)))
    total = product + nudge
    # C division truncates toward zero: negative totals are rounded up by adding 2**31 - 1
    return Mux(total >= 0, total >> 31, (total + ((1 << 31) - 1)) >> 31)


class PostProcessor(wiring.Component):
    """Q lanes of bias, requantization, activation, saturation and 2x2 max-pool.

    >>> pp = PostProcessor(HardwareConfig(tm=4, tn=4))
    >>> len(pp.acc), pp.acc[0].shape()
    (4, signed(32))
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        q, act = config.tm, config.act_bits
        lanes = lambda shape: data.ArrayLayout(shape, q)  # noqa: E731
        super().__init__({
            "valid": In(1),
            "acc": In(lanes(signed(config.acc_bits))),
            "pool_first": In(1),          # first pixel of a pool window (1 if not pooling)
            "pool_last": In(1),           # last pixel of a pool window (1 if not pooling)
            "bias": In(lanes(signed(PARAM_BITS))),
            "multiplier": In(lanes(signed(PARAM_BITS))),
            "shift": In(lanes(signed(PARAM_BITS))),
            "slope": In(lanes(signed(PARAM_BITS))),
            "mode": In(2),
            "rq_rounding": In(2),
            "act_rounding": In(2),
            "act": In(1),
            "act_shift": In(6),
            "out_zero": In(signed(18)),
            "out_lo": In(signed(18)),
            "out_hi": In(signed(18)),
            "out_valid": Out(1),
            "out": Out(lanes(signed(18))),
        })

    def elaborate(self, platform):
        m = Module()
        valid = [self.valid] + [Signal(name=f"valid_{i}") for i in range(1, LATENCY + 1)]
        first = [self.pool_first] + [Signal(name=f"first_{i}") for i in range(1, LATENCY)]
        last = [self.pool_last] + [Signal(name=f"last_{i}") for i in range(1, LATENCY)]
        for i in range(1, LATENCY):
            m.d.sync += [valid[i].eq(valid[i - 1]), first[i].eq(first[i - 1]),
                         last[i].eq(last[i - 1])]
        for lane in range(self.config.tm):
            out = self._lane(m, lane)
            best = Signal(signed(18), name=f"pool_max_{lane}")
            with m.If(valid[LATENCY - 1]):
                m.d.sync += best.eq(Mux(first[LATENCY - 1] | (out > best), out, best))
            m.d.comb += self.out[lane].eq(best)
        m.d.sync += valid[LATENCY].eq(valid[LATENCY - 1] & last[LATENCY - 1])
        m.d.comb += self.out_valid.eq(valid[LATENCY])
        return m

    def _lane(self, m, lane):
        """Stages 1 to 5 for one channel; returns the saturated value (before pooling)."""
        def reg(shape, name):
            return Signal(shape, name=f"{name}_{lane}")

        acc_bits = self.config.acc_bits
        # stage 1: bias, and the int32 operand of the gemmlowp / single-round multiplier
        operand = reg(signed(max(acc_bits, PARAM_BITS) + 2), "operand")
        left = Mux(self.shift[lane] > 0, self.shift[lane], 0)[:5]
        right = reg(unsigned(6), "right")
        s = self.acc[lane] + self.bias[lane]
        s32 = clamp(s, INT32_MIN, INT32_MAX)
        shifted = clamp(s32 << left, INT32_MIN, INT32_MAX)
        m.d.sync += [
            operand.eq(Mux(self.mode == _SHIFT, s, Mux(self.mode == _GEMMLOWP, shifted, s32))),
            right.eq(Mux(self.shift[lane] < 0, -self.shift[lane], 0)),
        ]
        # stage 2: the product (a DSP multiplier with a registered output); parameters travel
        # down the pipeline with their pixel, so they may change from one pixel to the next
        mult, shift1, slope1 = (reg(signed(PARAM_BITS), "mult"), reg(signed(8), "shift_1"),
                                reg(signed(18), "slope_1"))
        m.d.sync += [mult.eq(self.multiplier[lane]), shift1.eq(self.shift[lane]),
                     slope1.eq(self.slope[lane])]
        product = reg(signed(len(operand) + PARAM_BITS), "product")
        both_min = reg(1, "both_min")
        right2, shift2, slope2 = reg(unsigned(6), "right_2"), reg(signed(8), "shift_2"), \
            reg(signed(18), "slope_2")
        m.d.sync += [product.eq(operand * mult),
                     both_min.eq((operand == INT32_MIN) & (mult == INT32_MIN)),
                     right2.eq(right), shift2.eq(shift1), slope2.eq(slope1)]
        # stage 3: the rounding shift of the requantization
        y = reg(signed(len(product)), "requantized")
        slope3 = reg(signed(18), "slope_3")
        # (single round: the product over 2**(31 - shift), rounded half up)
        quotient = Mux(both_min, INT32_MAX, srdhm_quotient(product))
        single = self.mode == _SINGLE
        amount = Mux(single, (31 - shift2)[:6], shift2[:6])
        rounding = Mux(single, _HALF_UP, self.rq_rounding)
        m.d.sync += slope3.eq(slope2)
        m.d.sync += y.eq(Mux(self.mode == _GEMMLOWP, rounding_divide_by_pot(quotient, right2),
                             shift_round(product, amount, rounding)))
        # stage 4: the activation slope product
        scaled = reg(signed(len(y) + 18), "scaled")
        y2 = reg(signed(len(y)), "requantized_d")
        m.d.sync += [scaled.eq(y * slope3), y2.eq(y)]
        # stage 5: activation rounding, zero point, saturation
        activated = Mux(self.act & (y2 < 0),
                        shift_round(scaled, self.act_shift, self.act_rounding), y2)
        out = reg(signed(18), "saturated")
        m.d.sync += out.eq(clamp(activated + self.out_zero, self.out_lo, self.out_hi))
        return out
