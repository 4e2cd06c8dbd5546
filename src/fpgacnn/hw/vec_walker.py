"""The vector unit's address walk: one read command per window row, and the tag of its words.

For each channel block: one command for the block's parameter record, then for each output
pixel (oy, ox) and each input row iy of its window (clipped to the input), and each input k
(two for an add), a command for the window's columns of that row. The window of (oy, ox) starts
at input row `by` and column `bx`: both begin at minus the padding and move by `step` every
`repeat` outputs (pools: step = stride, repeat 1; upsample: step 1, repeat = scale).

A copy (activation, upsample, concat input) reads whole input rows instead: one command per
output row, each word a window of its own (`each`), which the unit repeats `repeat_w` times.
Each command carries a tag (`param`, `first`/`last` of its window, `each`, input `k`, its word
count) that the unit keeps in a FIFO beside the read data, which comes back in command order.
"""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.memport import ADDR_WIDTH
from fpgacnn.hw.program import feature_row_bytes
from fpgacnn.hw.vector_program import COPY, record_bytes, vector_layout

TAG = data.StructLayout({"param": 1, "first": 1, "last": 1, "each": 1, "k": 1, "beats": 13})
COMMAND = data.StructLayout({"addr": ADDR_WIDTH, "length": 17, "tag": TAG})


def _max(a, b):
    return Mux(a > b, a, b)


def _min(a, b):
    return Mux(a < b, a, b)


class _Axis:
    """One dimension of the walk: output index, window start, repeat counter."""

    def __init__(self, name):
        self.out = Signal(12, name=f"o{name}")
        self.base = Signal(signed(14), name=f"b{name}")
        self.rep = Signal(4, name=f"rep_{name}")

    def reset(self, m, pad):
        m.d.sync += [self.out.eq(0), self.base.eq(-pad), self.rep.eq(0)]

    def advance(self, m, step, repeat):
        m.d.sync += self.out.eq(self.out + 1)
        with m.If(self.rep == repeat - 1):
            m.d.sync += [self.rep.eq(0), self.base.eq(self.base + step)]
        with m.Else():
            m.d.sync += self.rep.eq(self.rep + 1)

    def window(self, kernel, size):
        """The clipped window [lo, hi) of input indices."""
        return _max(self.base, 0), _min(self.base + kernel, size)


class WindowWalker(wiring.Component):
    """Issues the read commands of one descriptor (`desc`) after a `start` pulse."""

    def __init__(self, config: HardwareConfig):
        self.config = config
        super().__init__({
            "desc": In(vector_layout()),
            "start": In(1),
            "busy": Out(1),
            "block": Out(10),
            "row": Out(12),
            "cmd": Out(stream.Signature(COMMAND)),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.desc
        word_shift = feature_row_bytes(self.config).bit_length() - 1
        y, x = _Axis("y"), _Axis("x")
        ky, k = Signal(12), Signal()
        plane, param = Signal(32), Signal(32)
        r0, r1 = y.window(d.kernel_h, d.in_h)
        rows = d.op == COPY
        x_lo, x_hi = x.window(d.kernel_w, d.in_w)
        c0, c1 = Mux(rows, 0, x_lo), Mux(rows, d.in_w, x_hi)
        iy = (r0 + ky)[:12]
        words = (c1 - c0)[:13]
        last_row = iy == r1 - 1
        block = Signal(10)
        m.d.comb += [self.block.eq(block), self.row.eq(y.out)]
        data_cmd = Signal(COMMAND)
        m.d.comb += [
            data_cmd.addr.eq(Mux(k, d.in_addr1, d.in_addr0) + plane + iy * d.in_row_bytes
                             + (c0.as_unsigned()[:12] << word_shift)),
            data_cmd.length.eq(words << word_shift),
            data_cmd.tag.first.eq((ky == 0) & (k == 0)),
            data_cmd.tag.last.eq(last_row & (k == d.two_inputs)),
            data_cmd.tag.each.eq(rows), data_cmd.tag.k.eq(k), data_cmd.tag.beats.eq(words)]
        param_cmd = Signal(COMMAND)
        param_bytes = record_bytes(self.config)
        m.d.comb += [param_cmd.addr.eq(param), param_cmd.length.eq(param_bytes),
                     param_cmd.tag.param.eq(1), param_cmd.tag.beats.eq(param_bytes >> word_shift)]
        accepted = self.cmd.valid & self.cmd.ready
        walk = (y, x, ky, k, block, plane, param, rows)
        idle = self._loops(m, walk, param_cmd, data_cmd, accepted, last_row)
        m.d.comb += self.busy.eq(~idle)
        return m

    def _loops(self, m, walk, param_cmd, data_cmd, accepted, last_row):
        """The loops (block, oy, ox, ky, k) as a state machine; returns its idle flag."""
        walker, d = self, self.desc
        y, x, ky, k, block, plane, param, _ = walk
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(walker.start):
                    y.reset(m, d.pad_top)
                    x.reset(m, d.pad_left)
                    m.d.sync += [ky.eq(0), k.eq(0), block.eq(0), plane.eq(0),
                                 param.eq(d.param_addr)]
                    m.next = "PARAMS"
            with m.State("PARAMS"):
                m.d.comb += [walker.cmd.valid.eq(1), walker.cmd.payload.eq(param_cmd)]
                with m.If(accepted):
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += [walker.cmd.valid.eq(1), walker.cmd.payload.eq(data_cmd)]
                with m.If(accepted):
                    with m.If(k != d.two_inputs):
                        m.d.sync += k.eq(1)
                    with m.Elif(~last_row):
                        m.d.sync += [k.eq(0), ky.eq(ky + 1)]
                    with m.Else():
                        m.d.sync += [k.eq(0), ky.eq(0)]
                        _next_window(m, d, walk)
        return fsm.ongoing("IDLE")


def _next_window(m, d, walk):
    y, x, _, _, block, plane, param, rows = walk
    with m.If((x.out != d.out_w - 1) & ~rows):
        x.advance(m, d.step_w, d.repeat_w)
    with m.Else():
        x.reset(m, d.pad_left)
        with m.If(y.out != d.out_h - 1):
            y.advance(m, d.step_h, d.repeat_h)
        with m.Else():
            y.reset(m, d.pad_top)
            m.next = "IDLE"
            with m.If(block != d.blocks - 1):
                m.d.sync += [block.eq(block + 1), plane.eq(plane + d.in_plane_bytes),
                             param.eq(param + d.param_step)]
                m.next = "PARAMS"
