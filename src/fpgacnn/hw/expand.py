"""The data-expansion unit: im2col on chip, as a walk over the input buffer.

For one step (an output tile of th x tw pixels and one block of L input channels) it sends,
one per cycle, for each output pixel and each kernel position (ky, kx) the input-buffer
address of input (iy, ix) = (iy0 + r*sh + ky, ix0 + c*sw + kx), the weight-buffer address
ky*kw + kx, and whether (iy, ix) lies in the padding (then the datapath uses the input zero
point, i.e. 0 after subtracting it). The buffer holds only the part of the tile inside the
image: rows iy_lo.., columns ix_lo.., `lw` words per row, so address = (iy-iy_lo)*lw + ix-ix_lo.

Pixels go in raster order, or, when pooling, in 2x2 windows (each window's four pixels back
to back, windows in raster order) so the post-processor can take their maximum on the fly.
`seq` numbers the pixels in that order; the accumulator buffer is addressed by it.
"""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.program import input_buffer_words, weight_buffer_words


def small_mul(x, s):
    """x * s for a narrow unsigned `s`, as shifts and adds (so yosys spends no DSP on it)."""
    return sum(Mux(s[i], x << i, 0) for i in range(len(s)))


class Expander(wiring.Component):
    """Address generator of the input and weight buffers for one step; see the module doc.

    Geometry inputs must hold still from `start` until `done`.
    >>> exp = Expander(HardwareConfig(tm=4, tn=4, tr=4, tc=4))
    >>> exp.seq.shape().width
    4
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        coord = signed(14)
        super().__init__({
            "start": In(1),
            "th": In(8), "tw": In(8), "kh": In(4), "kw": In(4), "sh": In(3), "sw": In(3),
            "pool": In(1), "lw": In(12), "iy0": In(coord), "ix0": In(coord),
            "iy_lo": In(12), "ix_lo": In(12), "in_h": In(12), "in_w": In(12),
            "valid": Out(1),
            "addr": Out(range(input_buffer_words(config))),
            "kk": Out(range(weight_buffer_words(config))),
            "pad": Out(1),
            "first": Out(1),            # first kernel position of a pixel
            "last": Out(1),             # last kernel position of a pixel
            "seq": Out(range(config.tr * config.tc)),
            "pool_first": Out(1),
            "pool_last": Out(1),
            "busy": Out(1),
            "ending": Out(1),           # this is the step's last output
        })

    def elaborate(self, platform):
        m = Module()
        wide = signed(26)
        running = Signal()
        ky, kx, kk = Signal(4), Signal(4), Signal.like(self.kk)
        ky_off = Signal(wide)
        dr, dc = Signal(), Signal()
        group_r, group_c = Signal(8), Signal(8)
        iy_r, ix_c = Signal(signed(16)), Signal(signed(16))
        a_r, a_rc = Signal(wide), Signal(wide)
        sh_lw = Signal(wide)
        seq = Signal.like(self.seq)

        g = Mux(self.pool, 2, 1)
        groups_h = Mux(self.pool, self.th >> 1, self.th)
        groups_w = Mux(self.pool, self.tw >> 1, self.tw)
        step_c = Mux(self.pool, self.sw << 1, self.sw)
        step_r_rows = Mux(self.pool, self.sh << 1, self.sh)
        step_r_addr = Mux(self.pool, sh_lw << 1, sh_lw)

        iy_p = iy_r + Mux(dr, self.sh, 0)
        ix_p = ix_c + Mux(dc, self.sw, 0)
        a_p = a_rc + Mux(dr, sh_lw, 0) + Mux(dc, self.sw, 0)
        iy, ix = iy_p + ky, ix_p + kx
        m.d.comb += [
            self.valid.eq(running),
            self.busy.eq(running),
            self.ending.eq(running & self.last & self.pool_last
                           & (group_c == groups_w - 1) & (group_r == groups_h - 1)),
            self.addr.eq(Mux(self.pad, 0, (a_p + ky_off + kx)[:len(self.addr)])),
            self.kk.eq(kk),
            self.pad.eq((iy < 0) | (iy >= self.in_h) | (ix < 0) | (ix >= self.in_w)),
            self.first.eq((ky == 0) & (kx == 0)),
            self.last.eq((ky == self.kh - 1) & (kx == self.kw - 1)),
            self.seq.eq(seq),
            self.pool_first.eq(~dr & ~dc),
            self.pool_last.eq((dr == (g - 1)) & (dc == (g - 1))),
        ]

        with m.If(self.start):
            start_a = (self.ix0 - self.ix_lo) - small_mul(self.lw, (self.iy_lo - self.iy0)[:4])
            m.d.sync += [running.eq(1), ky.eq(0), kx.eq(0), kk.eq(0), ky_off.eq(0),
                         dr.eq(0), dc.eq(0), group_r.eq(0), group_c.eq(0), seq.eq(0),
                         iy_r.eq(self.iy0), ix_c.eq(self.ix0), a_r.eq(start_a),
                         a_rc.eq(start_a), sh_lw.eq(small_mul(self.lw, self.sh))]
        with m.Elif(running):
            m.d.sync += [kx.eq(kx + 1), kk.eq(kk + 1)]
            with m.If(kx == self.kw - 1):
                m.d.sync += [kx.eq(0), ky.eq(ky + 1), ky_off.eq(ky_off + self.lw)]
                with m.If(ky == self.kh - 1):
                    m.d.sync += [ky.eq(0), ky_off.eq(0), kk.eq(0), seq.eq(seq + 1)]
                    # next pixel: inside a pool window, then windows in raster order
                    m.d.sync += dc.eq(~dc & self.pool)
                    with m.If(~self.pool | dc):
                        m.d.sync += dr.eq(~dr & self.pool)
                        with m.If(~self.pool | dr):
                            m.d.sync += [group_c.eq(group_c + 1), ix_c.eq(ix_c + step_c),
                                         a_rc.eq(a_rc + step_c)]
                            with m.If(group_c == groups_w - 1):
                                new_a_r = a_r + step_r_addr
                                m.d.sync += [group_c.eq(0), group_r.eq(group_r + 1),
                                             ix_c.eq(self.ix0), iy_r.eq(iy_r + step_r_rows),
                                             a_r.eq(new_a_r), a_rc.eq(new_a_r)]
                                with m.If(group_r == groups_h - 1):
                                    m.d.sync += running.eq(0)
        return m
