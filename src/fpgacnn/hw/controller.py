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
from fpgacnn.hw.program import PARAMS_PER_CHANNEL, descriptor_layout, feature_row_bytes

STEP = data.StructLayout({
    "th": 8, "tw": 8,                      # conv output pixels of this tile
    "iy0": signed(14), "ix0": signed(14),  # input coordinate of the tile's first window
    "iy_lo": 12, "ix_lo": 12,              # first input row/column loaded (inside the image)
    "lh": 13, "lw": 13,                    # rows/columns loaded
    "first_pass": 1, "last_pass": 1,       # first/last input block of this output block
    "in_ddr": 32,                          # byte address of the first loaded input row
    "w_ddr": 32, "p_ddr": 32,              # weights of (mb, nb); parameters of mb
    "out_ddr": 32,                         # first written pixel of this tile, in the plane
                                           # of block mb's first channel
    "lane0": 10,                           # that channel's lane in its plane
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
        w = _Walk()
        th = _min(d.tile_h, d.out_h - w.ty0)[:8]
        tw = _min(d.tile_w, d.out_w - w.tx0)[:8]
        ih = small_mul(th - 1, d.stride_h) + d.kernel_h
        iw = small_mul(tw - 1, d.stride_w) + d.kernel_w
        iy_lo = Mux(w.iy0 < 0, 0, w.iy0)
        ix_lo = Mux(w.ix0 < 0, 0, w.ix0)
        iy_hi = _min(w.iy0 + ih, d.in_h)
        ix_hi = _min(w.ix0 + iw, d.in_w)
        s = self.step
        m.d.comb += [
            self.valid.eq(w.running),
            s.th.eq(th), s.tw.eq(tw), s.iy0.eq(w.iy0), s.ix0.eq(w.ix0),
            s.iy_lo.eq(iy_lo), s.ix_lo.eq(ix_lo),
            s.lh.eq(Mux(iy_hi > iy_lo, iy_hi - iy_lo, 0)),
            s.lw.eq(Mux(ix_hi > ix_lo, ix_hi - ix_lo, 0)),
            s.first_pass.eq(w.nb == 0), s.last_pass.eq(w.nb == d.in_blocks - 1),
            s.in_ddr.eq(w.in_block + Mux(w.iy0 < 0, 0, w.iy0_bytes) + (ix_lo << row_shift)),
            s.w_ddr.eq(w.w_ddr), s.p_ddr.eq(w.p_ddr), s.out_ddr.eq(w.out_block),
            s.lane0.eq(w.lane0), s.channels.eq(w.channels),
            self.tile_r.eq(w.ty0), self.tile_c.eq(w.tx0), self.mb.eq(w.mb), self.nb.eq(w.nb),
        ]
        with m.If(self.start):
            m.d.sync += [w.running.eq(1), w.ty0.eq(0), w.tx0.eq(0), w.iy0.eq(-d.pad_top),
                         w.ix0.eq(-d.pad_left), w.iy0_bytes.eq(-d.pad_top_bytes),
                         w.out_tile_row.eq(d.out_addr), w.out_tile.eq(d.out_addr)]
            m.d.sync += self._start_tile(w, d.out_addr)
        with m.Elif(self.next & w.running):
            m.d.sync += [w.nb.eq(w.nb + 1), w.in_block.eq(w.in_block + d.in_plane_bytes),
                         w.w_ddr.eq(w.w_ddr + d.weight_block_bytes)]
            with m.If(w.nb == d.in_blocks - 1):
                m.d.sync += [w.nb.eq(0), w.in_block.eq(d.in_addr), w.mb.eq(w.mb + 1),
                             w.p_ddr.eq(w.p_ddr + q * PARAMS_PER_CHANNEL * 4),
                             w.channels.eq(w.channels - q)]
                m.d.sync += self._next_block_plane(w)
                with m.If(w.mb == d.out_blocks - 1):
                    self._next_tile(m, w, row_shift)
        return m

    def _next_block_plane(self, w):
        """The next output block's first channel: Q // L planes on, and one more when its
        lane passes the plane's end (Q not a multiple of L: docs/engine.md, the writer)."""
        d, q, l = self.desc, self.config.tm, self.config.tn
        if q % l == 0:
            return [w.out_block.eq(w.out_block + d.out_block_bytes)]
        lane = w.lane0 + q % l
        carry = lane >= l
        return [w.lane0.eq(Mux(carry, lane - l, lane)),
                w.out_block.eq(w.out_block + d.out_block_bytes
                               + Mux(carry, d.out_plane_bytes, 0))]

    def _start_tile(self, w, out_tile_addr):
        """Back to the first output and input block, at the tile written at `out_tile_addr`."""
        d = self.desc
        return [w.mb.eq(0), w.nb.eq(0), w.in_block.eq(d.in_addr), w.w_ddr.eq(d.weight_addr),
                w.p_ddr.eq(d.param_addr), w.out_block.eq(out_tile_addr), w.lane0.eq(0),
                w.channels.eq(d.out_channels)]

    def _next_tile(self, m, w, row_shift):
        """The next tile in raster order, or the end of the layer."""
        d = self.desc
        written_w = Mux(d.pool, d.tile_w >> 1, d.tile_w)
        next_col = w.out_tile + (written_w << row_shift)
        m.d.sync += [w.tx0.eq(w.tx0 + d.tile_w), w.ix0.eq(w.ix0 + d.in_tile_col_step),
                     w.out_tile.eq(next_col)]
        m.d.sync += self._start_tile(w, next_col)
        with m.If(w.tx0 + d.tile_w >= d.out_w):
            next_row = w.out_tile_row + d.out_tile_row_bytes
            m.d.sync += [w.tx0.eq(0), w.ix0.eq(-d.pad_left), w.ty0.eq(w.ty0 + d.tile_h),
                         w.iy0.eq(w.iy0 + d.in_tile_row_step),
                         w.iy0_bytes.eq(w.iy0_bytes + d.in_tile_row_bytes),
                         w.out_tile_row.eq(next_row), w.out_tile.eq(next_row)]
            m.d.sync += self._start_tile(w, next_row)
            with m.If(w.ty0 + d.tile_h >= d.out_h):
                m.d.sync += w.running.eq(0)


class _Walk:
    """The sequencer's registers: where the walk over tiles and blocks is."""

    def __init__(self):
        self.running = Signal()
        self.ty0, self.tx0 = Signal(12), Signal(12)             # first output row/column
        self.iy0, self.ix0 = Signal(signed(14)), Signal(signed(14))
        self.iy0_bytes = Signal(signed(34))
        self.out_tile_row, self.out_tile = Signal(32), Signal(32)
        self.mb, self.nb = Signal(10), Signal(10)
        self.in_block, self.out_block = Signal(32, name="in_block"), Signal(32, name="out_block")
        self.w_ddr, self.p_ddr = Signal(32, name="w_ddr"), Signal(32, name="p_ddr")
        self.lane0 = Signal(10)                                 # lane of block mb's first channel
        self.channels = Signal(signed(15))                      # real channels left
