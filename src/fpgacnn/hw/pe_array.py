"""The Q x L MAC array: Q dot products of two L-long vectors per cycle, accumulated.

Row q multiplies the shared input vector x[0..L) by its weights w[q][0..L) and adds the L
products to its accumulator. Operands and products are registered, so yosys maps each
multiplier onto one DSP48E1 (A/B registers, M register); the adder tree and the accumulator
follow. `first` starts a new accumulation, `last` emits it on `psum` with `tag` beside it.
"""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig

LATENCY = 4        # cycles from an input to the accumulator holding it


def adder_tree(values):
    """Sum `values` in a balanced tree of combinational adders."""
    while len(values) > 1:
        pairs = [values[i] + values[i + 1] for i in range(0, len(values) - 1, 2)]
        values = pairs + ([values[-1]] if len(values) % 2 else [])
    return values[0]


class MacArray(wiring.Component):
    """Q rows of L multiply-accumulates (Q = config.tm, L = config.tn).

    `x` holds L signed values of act_bits + 1 bits (the input minus its zero point), `w` Q x L
    signed weight_bits values (row q at lanes q*L .. q*L+L-1), `psum` Q accumulators of
    acc_bits, valid `LATENCY` cycles after the input marked `last`.

    >>> mac = MacArray(HardwareConfig(tm=2, tn=4))
    >>> len(mac.x), len(mac.w), len(mac.psum)
    (4, 8, 2)
    """

    def __init__(self, config: HardwareConfig, tag_bits: int = 1):
        self.config = config
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
        q, l = self.config.tm, self.config.tn
        flags = [(self.valid, self.first, self.last, self.tag)]
        for stage in range(1, LATENCY):
            prev = flags[-1]
            now = tuple(Signal.like(s, name=f"{n}_{stage}")
                        for s, n in zip(prev, ("valid", "first", "last", "tag")))
            m.d.sync += [a.eq(b) for a, b in zip(now, prev)]
            flags.append(now)
        x = [Signal.like(self.x[i], name=f"x_reg_{i}") for i in range(l)]
        w = [Signal.like(self.w[i], name=f"w_reg_{i}") for i in range(q * l)]
        m.d.sync += [a.eq(b) for a, b in zip(x, self.x)]
        m.d.sync += [a.eq(b) for a, b in zip(w, self.w)]
        valid3, first3, last3, tag3 = flags[3]
        for row in range(q):
            products = []
            for i in range(l):
                p = Signal(signed(len(x[i]) + len(w[row * l + i])), name=f"p_{row}_{i}")
                m.d.sync += p.eq(x[i] * w[row * l + i])
                products.append(p)
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
