"""The Q x L MAC array: Q dot products of two L-long vectors per cycle, accumulated.

Row q multiplies the shared input vector x[0..L) by its weights w[q][0..L) and adds the L
products to its accumulator. Operands and products are registered, so yosys maps each
multiplier onto one DSP (A/B registers, M register); the adder tree and the accumulator
follow. `first` starts a new accumulation, `last` emits it on `psum` with `tag` beside it.

Where the widths fit the device's DSP (`fpgacnn.plan.dsp.packs_two_macs`: INT8 on a DSP48E1),
rows 2k and 2k + 1 share one multiplier per input: it computes P = A * x[i] with the packed
weights A = w[2k+1][i] * 2**p + w[2k][i], p = act_bits + weight_bits, and LUTs unpack
lo = w[2k][i] x[i] and hi = w[2k+1][i] x[i] from P (an odd last row keeps its own multiplier).
Exact: |x| <= 2**act_bits - 1, so |lo| < 2**(p-1) and lo is P[0:p] read as signed;
P - lo = hi * 2**p, so hi = (P >> p) + P[p-1] (the borrow a negative lo took from hi).
"""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig
from fpgacnn.plan.devices import load_device
from fpgacnn.plan.dsp import packs_two_macs

LATENCY = 4        # cycles from an input to the accumulator holding it


def adder_tree(values):
    """Sum `values` in a balanced tree of combinational adders."""
    while len(values) > 1:
        pairs = [values[i] + values[i + 1] for i in range(0, len(values) - 1, 2)]
        values = pairs + ([values[-1]] if len(values) % 2 else [])
    return values[0]


def pack_weights(w_low, w_high, shift):
    """w_high * 2**shift + w_low as one signed value of shift + len(w_high) + 1 bits: w_low
    sign-extended to `shift` bits, under w_high less w_low's sign (a small add, no carry
    through the low field)."""
    sign = w_low[-1]
    return Cat(w_low, sign.replicate(shift - len(w_low)), w_high - sign).as_signed()


def unpack_products(product, shift):
    """(lo, hi) of a packed product P = hi * 2**shift + lo, |lo| < 2**(shift - 1)."""
    return product[:shift].as_signed(), (product >> shift) + product[shift - 1]


class MacArray(wiring.Component):
    """Q rows of L multiply-accumulates (Q = config.tm, L = config.tn).

    `x` holds L signed values of act_bits + 1 bits (the input minus its zero point: at most
    2**act_bits - 1 in magnitude), `w` Q x L signed weight_bits values (row q at lanes
    q*L .. q*L+L-1), `psum` Q accumulators of acc_bits, valid `LATENCY` cycles after the input
    marked `last`. `packed` says whether row pairs share a DSP (the config's device decides).

    >>> mac = MacArray(HardwareConfig(tm=2, tn=4))
    >>> len(mac.x), len(mac.w), len(mac.psum), mac.packed
    (4, 8, 2, True)
    """

    def __init__(self, config: HardwareConfig, tag_bits: int = 1):
        self.config = config
        self.packed = packs_two_macs(config.act_bits, config.weight_bits,
                                     load_device(config.device).dsp_type)
        q, l = config.tm, config.tn
        super().__init__({
            "valid": In(1),
            "first": In(1),
            "last": In(1),
            "tag": In(tag_bits),
            "x": In(data.ArrayLayout(signed(config.act_bits + 1), l)),
            "w": In(data.ArrayLayout(signed(config.weight_bits), q * l)),
            "psum_valid": Out(1),
            "psum_tag": Out(tag_bits),
            "psum": Out(data.ArrayLayout(signed(config.acc_bits), q)),
        })

    def elaborate(self, platform):
        m = Module()
        flags = [(self.valid, self.first, self.last, self.tag)]
        for stage in range(1, LATENCY):
            prev = flags[-1]
            now = tuple(Signal.like(s, name=f"{n}_{stage}")
                        for s, n in zip(prev, ("valid", "first", "last", "tag")))
            m.d.sync += [a.eq(b) for a, b in zip(now, prev)]
            flags.append(now)
        x = [Signal.like(self.x[i], name=f"x_reg_{i}") for i in range(self.config.tn)]
        m.d.sync += [a.eq(b) for a, b in zip(x, self.x)]
        valid3, first3, last3, tag3 = flags[3]
        for row, products in enumerate(self._products(m, x)):
            total = Signal(signed(self.config.acc_bits), name=f"sum_{row}")
            m.d.sync += total.eq(adder_tree(products))
            acc = Signal(signed(self.config.acc_bits), name=f"acc_{row}")
            with m.If(valid3):
                m.d.sync += acc.eq(Mux(first3, total, acc + total))
            m.d.comb += self.psum[row].eq(acc)
        out_valid = Signal()
        out_tag = Signal.like(self.tag)
        m.d.sync += [out_valid.eq(valid3 & last3), out_tag.eq(tag3)]
        m.d.comb += [self.psum_valid.eq(out_valid), self.psum_tag.eq(out_tag)]
        return m

    def _products(self, m, x):
        """Q lists of L products, each two cycles after its operands arrived."""
        q, l = self.config.tm, self.config.tn
        paired = q // 2 * 2 if self.packed else 0
        rows = []
        for row in range(0, paired, 2):
            pairs = [self._packed_product(m, x[i], self.w[row * l + i],
                                          self.w[(row + 1) * l + i], f"{row}_{i}")
                     for i in range(l)]
            rows += [[lo for lo, _ in pairs], [hi for _, hi in pairs]]
        for row in range(paired, q):
            rows.append([self._product(m, x[i], self.w[row * l + i], f"{row}_{i}")
                         for i in range(l)])
        return rows

    def _product(self, m, x, w, name):
        """x * w: the weight register (A), the product register (M)."""
        w_reg = Signal.like(w, name=f"w_reg_{name}")
        p = Signal(signed(len(x) + len(w)), name=f"p_{name}")
        m.d.sync += [w_reg.eq(w), p.eq(x * w_reg)]
        return p

    def _packed_product(self, m, x, w_low, w_high, name):
        """(x * w_low, x * w_high) from one multiplier: packed weights packed in LUTs before
        their register (A), the product register (M), unpacked in LUTs after it."""
        shift = self.config.act_bits + self.config.weight_bits
        packed = pack_weights(w_low, w_high, shift)
        a_reg = Signal(signed(len(packed)), name=f"a_reg_{name}")
        p = Signal(signed(len(a_reg) + len(x)), name=f"p_{name}")
        m.d.sync += [a_reg.eq(packed), p.eq(a_reg * x)]
        return unpack_products(p, shift)
