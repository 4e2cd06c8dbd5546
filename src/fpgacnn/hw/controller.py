"""The controller: fetches layer descriptors and sequences a layer's steps.

A step is one (output tile, output block of Q channels, input block of L channels), in the
planner's loop order (docs/planning.md): tile rows, tile columns, output blocks, input blocks
(innermost). `StepSequencer` turns the decoded descriptor into one `STEP` record per step with
everything the loader, the datapath and the writer need; all of it by counters and adders
(the descriptor carries the products), so the controller costs no DSP.
"""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.expand import small_mul
from fpgacnn.hw.program import descriptor_layout, feature_row_bytes

STEP = data.StructLayout({
    "th": 8, "tw": 8,                      # conv output pixels of this tile
    "iy0": signed(14), "ix0": signed(14),  # input coordinate of the tile's first window
    "iy_lo": 12, "ix_lo": 12,              # first input row/column loaded (inside the image)
    "lh": 13, "lw": 13,                    # rows/columns loaded
    "first_pass": 1, "last_pass": 1,       # first/last input block of this output block
    "in_ddr": 32,                          # byte address of the first loaded input row
    "w_ddr": 32, "p_ddr": 32,              # weights of (mb, nb); parameters of mb
    "out_ddr": 32,                         # first written pixel of this tile in block mb
    "channels": 14,                        # real channels left in this output block
})


def _min(a, b):
    return Mux(a < b, a, b)


class StepSequencer(wiring.Component):
    """Walks a layer's steps: `step` is valid from `start` on; `next` moves on; `done` at the end.

    >>> seq = StepSequencer(HardwareConfig())
    >>> seq.step.shape() is STEP
    True
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        super().__init__({
            "desc": In(descriptor_layout()),
            "start": In(1),
            "next": In(1),
            "valid": Out(1),
            "step": Out(STEP),
            "tile_r": Out(12), "tile_c": Out(12), "mb": Out(10), "nb": Out(10),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.desc
        row_shift = feature_row_bytes(self.config).bit_length() - 1
        q = self.config.tm
        running = Signal()
        ty0, tx0 = Signal(12), Signal(12)
        iy0, ix0 = Signal(signed(14)), Signal(signed(14))
        iy0_bytes = Signal(signed(34))
        out_tile_row, out_tile = Signal(32), Signal(32)
        mb, nb = Signal(10), Signal(10)
        in_block, w_ddr, p_ddr, out_block = Signal(32), Signal(32), Signal(32), Signal(32)
        channels = Signal(signed(15))

        th = _min(d.tile_h, d.out_h - ty0)[:8]
        tw = _min(d.tile_w, d.out_w - tx0)[:8]
        ih = small_mul(th - 1, d.stride_h) + d.kernel_h
        iw = small_mul(tw - 1, d.stride_w) + d.kernel_w
        iy_lo = Mux(iy0 < 0, 0, iy0)
        ix_lo = Mux(ix0 < 0, 0, ix0)
        iy_hi = _min(iy0 + ih, d.in_h)
        ix_hi = _min(ix0 + iw, d.in_w)
        s = self.step
        m.d.comb += [
            self.valid.eq(running),
            s.th.eq(th), s.tw.eq(tw), s.iy0.eq(iy0), s.ix0.eq(ix0),
            s.iy_lo.eq(iy_lo), s.ix_lo.eq(ix_lo),
            s.lh.eq(Mux(iy_hi > iy_lo, iy_hi - iy_lo, 0)),
            s.lw.eq(Mux(ix_hi > ix_lo, ix_hi - ix_lo, 0)),
            s.first_pass.eq(nb == 0), s.last_pass.eq(nb == d.in_blocks - 1),
            s.in_ddr.eq(in_block + Mux(iy0 < 0, 0, iy0_bytes) + (ix_lo << row_shift)),
            s.w_ddr.eq(w_ddr), s.p_ddr.eq(p_ddr), s.out_ddr.eq(out_block),
            s.channels.eq(channels),
            self.tile_r.eq(ty0), self.tile_c.eq(tx0), self.mb.eq(mb), self.nb.eq(nb),
        ]

        def start_tile(out_tile_addr):
            return [mb.eq(0), nb.eq(0), in_block.eq(d.in_addr), w_ddr.eq(d.weight_addr),
                    p_ddr.eq(d.param_addr), out_block.eq(out_tile_addr),
                    channels.eq(d.out_channels)]

        with m.If(self.start):
            m.d.sync += [running.eq(1), ty0.eq(0), tx0.eq(0), iy0.eq(-d.pad_top),
                         ix0.eq(-d.pad_left), iy0_bytes.eq(-d.pad_top_bytes),
                         out_tile_row.eq(d.out_addr), out_tile.eq(d.out_addr)]
            m.d.sync += start_tile(d.out_addr)
        with m.Elif(self.next & running):
            m.d.sync += [nb.eq(nb + 1), in_block.eq(in_block + d.in_plane_bytes),
                         w_ddr.eq(w_ddr + d.weight_block_bytes)]
            with m.If(nb == d.in_blocks - 1):
                m.d.sync += [nb.eq(0), in_block.eq(d.in_addr), mb.eq(mb + 1),
                             p_ddr.eq(p_ddr + q * 16), out_block.eq(out_block + d.out_block_bytes),
                             channels.eq(channels - q)]
                with m.If(mb == d.out_blocks - 1):
                    self._next_tile(m, locals(), start_tile, row_shift)
        return m

    def _next_tile(self, m, v, start_tile, row_shift):
        d = self.desc
        written_w = Mux(d.pool, d.tile_w >> 1, d.tile_w)
        next_col = v["out_tile"] + (written_w << row_shift)
        m.d.sync += [v["tx0"].eq(v["tx0"] + d.tile_w), v["ix0"].eq(v["ix0"] + d.in_tile_col_step),
                     v["out_tile"].eq(next_col)]
        m.d.sync += start_tile(next_col)
        with m.If(v["tx0"] + d.tile_w >= d.out_w):
            next_row = v["out_tile_row"] + d.out_tile_row_bytes
            m.d.sync += [v["tx0"].eq(0), v["ix0"].eq(-d.pad_left),
                         v["ty0"].eq(v["ty0"] + d.tile_h), v["iy0"].eq(v["iy0"] + d.in_tile_row_step),
                         v["iy0_bytes"].eq(v["iy0_bytes"] + d.in_tile_row_bytes),
                         v["out_tile_row"].eq(next_row), v["out_tile"].eq(next_row)]
            m.d.sync += start_tile(next_row)
            with m.If(v["ty0"] + d.tile_h >= d.out_h):
                m.d.sync += v["running"].eq(0)
