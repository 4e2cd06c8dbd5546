"""The post-processing pipeline: accumulator -> output integer, Q channels per cycle.

Per channel it does exactly what `fpgacnn.golden.requant` does (docs/numerics.md):

1. s = acc + bias
2. requantize: "shift" y = shift_round(s * M, shift, rounding);
   "gemmlowp" y = RoundingDivideByPOT(SRDHM(sat32(sat32(s) << left), M0), right);
   "single_round" y = (sat32(s) * M0 + 2**(30 - shift)) >> (31 - shift)
3. y clamped to [-reach, 2**18] (`activation_reach`): beyond it every output saturates
4. LeakyReLU/PReLU: y < 0 -> shift_round(y * slope, act_shift, act_rounding)
5. + output zero point, saturate to [out_lo, out_hi] (ReLU and Clip are folded in there)
6. optional 2x2 max-pool: the max over 4 consecutive inputs (the sequencer sends each pool
   window's pixels back to back, `first`/`last` marking the window).

Every intermediate fits in 64 bits (with acc_bits <= 32): the requantization multiplies
magnitudes (32 x 32 bits unsigned, below 2**63 since the compiler keeps |M| and |bias| below
2**31) and applies the sign after, and the clamp of step 3 keeps the slope product within
`CLAMP_BITS + SLOPE_BITS` bits. The clamp changes no output when every non-zero slope m
satisfies |m| >= 2**(act_shift - MAX_EXACT_ACT_SHIFT) (`slope_is_exact`; always true for
act_shift <= 23), which the compiler must check.

With `post_multipliers = False` (power-of-two models) the lanes have no multiplier: step 2
is y = shift_round(s, shift, rounding) ("shift" mode with M = 1, a negative shift shifting
left) and step 4 takes the slope as 0; the compiler refuses any other layer
(docs/engine.md, "Shift-only post-processing").

Five register stages; no back-pressure (one result per input, `LATENCY` cycles later).
"""

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
LATENCY = 6
PARAM_BITS = 32
OUT_BITS = 18                  # out, out_zero, out_lo, out_hi
SLOPE_BITS = 18                # the activation slope (the compiler keeps |m| < 2**17)
CLAMP_BITS = 42                # y before the slope product: 17 + 25 bits, two DSP48E1
MAX_EXACT_ACT_SHIFT = CLAMP_BITS - 1 - OUT_BITS
ACTIVATED_BITS = OUT_BITS + SLOPE_BITS + 1   # |y * m / 2**act_shift| <= 2**35 after the clamp
LEFT_LIMIT = OUT_BITS + 1     # shift-only lanes: a left shift beyond it changes no output
_HALF_UP, _HALF_EVEN, _TRUNCATE = 0, 1, 2      # golden.arith.ROUNDINGS order
_SHIFT, _GEMMLOWP, _SINGLE = 0, 1, 2           # hw.program.MODES order


def slope_is_exact(multiplier: int, act_shift: int) -> bool:
    """Do the lanes compute the slope multiplier / 2**act_shift exactly? (the compiler's check)

    The lanes clamp y at -2**(min(act_shift, 23) + 18); that changes no output when the
    clamped value times the slope already saturates, or when the slope is 0.

    >>> slope_is_exact(6554, 16), slope_is_exact(1, 30), slope_is_exact(1 << 7, 30)
    (True, False, True)
    """
    return multiplier == 0 or abs(multiplier) << MAX_EXACT_ACT_SHIFT >= 1 << act_shift


def clamp(value, lo, hi):
    return Mux(value < lo, lo, Mux(value > hi, hi, value))


def _shifted_out(x, amount):
    """floor(x / 2**amount) for a signed `x` and unsigned `amount`, the guard bit (the highest
    bit shifted out, 0 when amount is 0) and the sticky bit (any 1 below the guard), all
    within len(x) bits."""
    x = x.as_signed()
    width = len(x)
    below = (amount - 1)[:len(amount)]                 # bits under the guard (amount >= 1)
    guard = Mux(amount == 0, 0, (x >> below)[0])
    count = Mux(below > width, width, below)
    mask = Const((1 << width) - 1, width) >> (width - count)[:width.bit_length()]
    sticky = (x.as_unsigned() & mask) != 0
    return x >> amount, guard, sticky


def shift_round(x, amount, rounding):
    """x / 2**amount rounded (golden.arith.shift_round) for a signed `x`, unsigned `amount`,
    as a value of len(x) bits.

    The floor goes up by one on the guard bit when rounding half up, and on the guard bit
    with a sticky bit below it or an odd floor when rounding half to even: one barrel shifter.
    """
    floor, guard, sticky = _shifted_out(x, amount)
    up = Mux(rounding == _HALF_EVEN, guard & (sticky | floor[0]), guard)
    up = Mux(rounding == _TRUNCATE, 0, up)
    narrow = floor[:len(floor) - 1].as_signed()         # amount >= 1: one sign bit fewer
    return Mux(amount == 0, x.as_signed(), narrow + up)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp's RoundingDivideByPOT (ties away from zero) for an unsigned `exponent`."""
    floor, guard, sticky = _shifted_out(x, exponent)
    return floor + (guard & (sticky | ~x.as_signed()[-1]))


def srdhm_quotient(product):
    """SRDHM's round(ab / 2**31) from ab (the INT32_MIN * INT32_MIN case is handled apart).

    gemmlowp's nudge (2**30, or 1 - 2**30 for a negative product) and division truncating
    toward zero make floor((ab + 2**30) / 2**31), computed here without widening ab."""
    return (product.as_signed().shift_right(30) + 1).shift_right(1)


def magnitude(value):
    return Mux(value < 0, -value, value)


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
        reach = Signal(unsigned(CLAMP_BITS), name="reach")
        m.d.comb += reach.eq(activation_reach(self.act_shift))
        for lane in range(self.config.tm):
            out = self._lane(m, lane, reach, valid)
            best = Signal(signed(OUT_BITS), name=f"pool_max_{lane}")
            with m.If(valid[LATENCY - 1]):
                m.d.sync += best.eq(Mux(first[LATENCY - 1] | (out > best), out, best))
            m.d.comb += self.out[lane].eq(best)
        m.d.sync += valid[LATENCY].eq(valid[LATENCY - 1] & last[LATENCY - 1])
        m.d.comb += self.out_valid.eq(valid[LATENCY])
        return m

    def _lane(self, m, lane, reach, valid):
        """Stages 1 to 5 for one channel; returns the saturated value (before pooling)."""
        stages = _Stages(m, lane, valid)
        if self.config.post_multipliers:
            y, slope = self._requantize_with_multiplier(stages, lane, reach)
        else:
            y, slope = self._requantize_by_shift(stages, lane, reach), None
        activated = self._activate(stages, y, slope)
        # stage 5: zero point, saturation
        out = stages.reg(signed(OUT_BITS), "saturated")
        stages.load(5, out.eq(clamp(activated + self.out_zero, self.out_lo, self.out_hi)))
        return out

    def _requantize_with_multiplier(self, stages, lane, reach):
        """Stages 1 to 3 in every mode: the clamped requantized y and the slope register
        travelling beside it."""
        reg, load = stages.reg, stages.load
        operand_bits = max(self.config.acc_bits, PARAM_BITS)    # |acc + bias| < 2**32
        # stage 1: bias, the operand of the multiplier (gemmlowp and single round: int32),
        # both as magnitude and sign
        left = Mux(self.shift[lane] > 0, self.shift[lane], 0)[:5]
        s = self.acc[lane] + self.bias[lane]
        s32 = clamp(s, INT32_MIN, INT32_MAX)[:32].as_signed()
        shifted = clamp(s32 << left, INT32_MIN, INT32_MAX)[:32].as_signed()
        operand = Mux(self.mode == _SHIFT, s, Mux(self.mode == _GEMMLOWP, shifted, s32))
        mult = self.multiplier[lane]
        operand_mag, mult_mag = reg(operand_bits, "operand"), reg(PARAM_BITS, "mult")
        negative, both_min, right = reg(1, "negative"), reg(1, "both_min"), reg(6, "right")
        shift1, slope1 = reg(signed(8), "shift_1"), reg(signed(SLOPE_BITS), "slope_1")
        load(1, [
            operand_mag.eq(magnitude(operand)), mult_mag.eq(magnitude(mult)),
            negative.eq(operand[-1] ^ mult[-1]),
            both_min.eq((operand == INT32_MIN) & (mult == INT32_MIN)),
            right.eq(Mux(self.shift[lane] < 0, -self.shift[lane], 0)),
            shift1.eq(self.shift[lane]), slope1.eq(self.slope[lane]),
        ])
        # stage 2: the product of magnitudes (DSP multipliers with a registered output);
        # parameters travel down the pipeline with their pixel, so they may change from one
        # pixel to the next
        product_mag = reg(operand_bits + PARAM_BITS, "product")
        negative2, both_min2, right2 = reg(1, "negative_2"), reg(1, "both_min_2"), \
            reg(6, "right_2")
        shift2, slope2 = reg(signed(8), "shift_2"), reg(signed(SLOPE_BITS), "slope_2")
        load(2, [product_mag.eq(operand_mag * mult_mag), negative2.eq(negative),
                 both_min2.eq(both_min), right2.eq(right), shift2.eq(shift1),
                 slope2.eq(slope1)])
        # stage 3: the sign, the rounding shift of the requantization, the clamp
        below_top = product_mag[:len(product_mag) - 1]        # |s| < 2**32, |M| <= 2**31
        product = Mux(negative2, -below_top, below_top)
        quotient = Mux(both_min2, INT32_MAX, srdhm_quotient(product))
        single = self.mode == _SINGLE
        amount = Mux(single, (31 - shift2)[:6], shift2[:6])
        rounding = Mux(single, _HALF_UP, self.rq_rounding)
        y_full = Mux(self.mode == _GEMMLOWP, rounding_divide_by_pot(quotient, right2),
                     shift_round(product, amount, rounding))
        y = reg(signed(CLAMP_BITS), "requantized")
        slope3 = reg(signed(SLOPE_BITS), "slope_3")
        load(3, [y.eq(clamp(y_full, -reach, 1 << OUT_BITS)), slope3.eq(slope2)])
        return y, slope3

    def _requantize_by_shift(self, stages, lane, reach):
        """Stages 1 to 3 of "shift" mode with M = 1, no multiplier: the clamped y.

        A left shift of LEFT_LIMIT already takes any non-zero sum to 2**19 or more in
        magnitude, beyond every output (|out_zero|, |out_lo|, |out_hi| <= 2**17) as the clamp
        would, so larger ones are cut to it."""
        reg, load = stages.reg, stages.load
        shift = self.shift[lane]
        # stage 1: bias, the left and right shift amounts
        s = reg(signed(max(self.config.acc_bits, PARAM_BITS) + 1), "sum")
        left, right = reg(range(LEFT_LIMIT + 1), "left"), reg(6, "right")
        load(1, [s.eq(self.acc[lane] + self.bias[lane]),
                 left.eq(clamp(-shift, 0, LEFT_LIMIT)), right.eq(clamp(shift, 0, 63))])
        # stage 2: the left shift (where the other lanes multiply)
        shifted, right2 = reg(signed(len(s) + LEFT_LIMIT), "shifted"), reg(6, "right_2")
        load(2, [shifted.eq(s << left), right2.eq(right)])
        # stage 3: the rounding right shift, the clamp
        y = reg(signed(CLAMP_BITS), "requantized")
        y_full = shift_round(shifted, right2, self.rq_rounding)
        load(3, y.eq(clamp(y_full, -reach, 1 << OUT_BITS)))
        return y

    def _activate(self, stages, y, slope):
        """Stage 4 and the activation of stage 5: LeakyReLU/PReLU on y < 0 when `act`; with
        no `slope` (shift-only lanes) the slope is 0, so a negative y becomes 0."""
        y2 = stages.reg(signed(CLAMP_BITS), "requantized_d")
        stages.load(4, y2.eq(y))
        negative = Const(0)
        if slope is not None:
            scaled = stages.reg(signed(CLAMP_BITS + SLOPE_BITS), "scaled")
            stages.load(4, scaled.eq(y * slope))
            sloped = shift_round(scaled, self.act_shift, self.act_rounding)[:ACTIVATED_BITS]
            negative = sloped.as_signed()
        return Mux(self.act & (y2 < 0), negative, y2)


class _Stages:
    """The registers of one lane: named after the lane; stage k loads only with a valid pixel
    (valid[k - 1]), so idle lanes cost the simulator nothing, and registers of idle stages
    are never read."""

    def __init__(self, m, lane, valid):
        self.m, self.lane, self.valid = m, lane, valid

    def reg(self, shape, name):
        return Signal(shape, name=f"{name}_{self.lane}")

    def load(self, stage, assignments):
        with self.m.If(self.valid[stage - 1]):
            self.m.d.sync += assignments


def activation_reach(act_shift):
    """2**(min(act_shift, MAX_EXACT_ACT_SHIFT) + OUT_BITS): y below minus this saturates the
    output whatever the slope (a slope of at least 2**-MAX_EXACT_ACT_SHIFT), y above 2**18
    too (|out_zero|, |out_lo|, |out_hi| <= 2**17)."""
    top = Const(1 << (CLAMP_BITS - 1), CLAMP_BITS)
    return top >> Mux(act_shift >= MAX_EXACT_ACT_SHIFT, 0, MAX_EXACT_ACT_SHIFT - act_shift)[:5]
