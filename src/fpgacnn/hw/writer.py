"""The writer: lays a finished output tile out in DDR as the feature-map convention says.

The staging buffer holds the tile's pixels in raster order, Q values each: channels m0 ..
m0+Q-1 of the output block. Feature maps are planes of L channels ("(n cb h w) l"); the
block's first channel m0 is lane `lane0` = m0 mod L of its plane, so when Q is not a multiple
of L a tile covers its first and last planes in part. For every plane the tile touches (up to
the layer's last), for every written row, the writer sends one DMA write command (the row's
pixels are adjacent) and then the row's words: lane i of a word holds tile channel
first + i (`first` = the plane's first channel less m0), lanes beyond the layer's real
channels hold 0, and the byte strobes `strb` enable exactly those lanes, so the lanes of the
neighbouring blocks in a shared plane keep what their own tiles wrote.
"""

from math import gcd

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.memport import command_layout
from fpgacnn.hw.program import descriptor_layout, feature_row_bytes

TILE = data.StructLayout({"out_ddr": 32, "lane0": 10, "rows": 8, "cols": 8, "channels": 14})
STAGED_BITS = 18


class OutputWriter(wiring.Component):
    """Writes staging bank `bank` (tile `tile`) to DDR after `go`; `busy` until it is in memory.
    `strb` holds the byte enables of the word on `data`.

    >>> OutputWriter(HardwareConfig(tm=12, tn=8, ddr_width_bits=64)).plane_starts
    [-4, 0, 4, 8]
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        self.plane_starts = plane_starts(config.tm, config.tn)
        depth = config.tr * config.tc
        super().__init__({
            "desc": In(descriptor_layout()),
            "go": In(1), "bank": In(1), "tile": In(TILE),
            "busy": Out(1),
            "r_en": Out(1), "r_bank": Out(1), "r_addr": Out(range(depth)),
            "r_data": In(config.tm * STAGED_BITS),
            "cmd": Out(stream.Signature(command_layout())),
            "data": Out(stream.Signature(config.ddr_width_bits)),
            "strb": Out(config.ddr_width_bits // 8),
            "dma_busy": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, d = self.config, self.desc
        q, l = cfg.tm, cfg.tn
        row_shift = feature_row_bytes(cfg).bit_length() - 1
        tile = Signal(TILE)
        first = Signal(signed(max(q, l).bit_length() + 2))  # tile channel of the plane's lane 0
        row = Signal(8)
        plane_addr, row_addr = Signal(32), Signal(32)
        pix = Signal.like(self.r_addr)
        to_issue, to_send = Signal(9), Signal(9)
        out_valid = Signal()

        m.d.comb += [self.r_bank.eq(self.bank), self.r_addr.eq(pix)]
        m.d.comb += [self.data.payload.eq(Cat(*self._lanes(m, first, tile.channels))),
                     self.data.valid.eq(out_valid),
                     self.strb.eq(self._strobes(first, tile.channels))]

        advance = ~out_valid | self.data.ready
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.sync += [tile.eq(self.tile), first.eq(-self.tile.lane0), row.eq(0),
                                 pix.eq(0), plane_addr.eq(self.tile.out_ddr),
                                 row_addr.eq(self.tile.out_ddr)]
                    m.next = "CMD"
            with m.State("CMD"):
                m.d.comb += [self.cmd.valid.eq(1), self.cmd.payload.addr.eq(row_addr),
                             self.cmd.payload.length.eq(tile.cols << row_shift)]
                with m.If(self.cmd.ready):
                    m.d.sync += [to_issue.eq(tile.cols), to_send.eq(tile.cols)]
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += self.r_en.eq(advance)
                with m.If(advance):
                    m.d.sync += out_valid.eq(to_issue != 0)
                    with m.If(to_issue != 0):
                        m.d.sync += [pix.eq(pix + 1), to_issue.eq(to_issue - 1)]
                with m.If(self.data.valid & self.data.ready):
                    m.d.sync += to_send.eq(to_send - 1)
                    with m.If(to_send == 1):
                        m.next = "NEXT"
            with m.State("NEXT"):
                m.d.sync += [row.eq(row + 1), row_addr.eq(row_addr + d.out_row_bytes)]
                m.next = "CMD"
                with m.If(row == tile.rows - 1):
                    next_plane = plane_addr + d.out_plane_bytes
                    next_first = first + l
                    m.d.sync += [row.eq(0), pix.eq(0), first.eq(next_first),
                                 plane_addr.eq(next_plane), row_addr.eq(next_plane)]
                    with m.If((next_first >= q) | (next_first >= tile.channels)):
                        m.next = "FLUSH"
            with m.State("FLUSH"):
                with m.If(~self.dma_busy):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m

    def _lanes(self, m, first, channels):
        """The L values of a word: tile channel first + i in lane i, 0 outside the tile and
        beyond the real channels."""
        q, l, act = self.config.tm, self.config.tn, self.config.act_bits
        lanes = []
        for lane in range(l):
            chosen = Signal(act, name=f"lane_{lane}")
            with m.Switch(first):
                for start in self.plane_starts:
                    if 0 <= start + lane < q:
                        with m.Case(start):
                            m.d.comb += chosen.eq(self.r_data[(start + lane) * STAGED_BITS:][:act])
            lanes.append(Mux(first + lane < channels, chosen, 0))
        return lanes

    def _strobes(self, first, channels):
        """Byte enables: the bytes of lanes inside the tile or beyond the real channels (every
        byte when Q is a multiple of L: a tile then covers whole planes)."""
        q, l, act = self.config.tm, self.config.tn, self.config.act_bits
        word_bytes = self.config.ddr_width_bits // 8
        if q % l == 0:
            return Const((1 << word_bytes) - 1, word_bytes)
        lanes = [(first + lane >= 0) & ((first + lane < q) | (first + lane >= channels))
                 for lane in range(l)]
        return Cat(*(lanes[byte * 8 // act] for byte in range(word_bytes)))


def plane_starts(q: int, l: int) -> list[int]:
    """Every value of `first` (a plane's first channel less the tile's first channel) for
    Q-channel output blocks on L-channel planes: planes start at multiples of L, blocks at
    multiples of Q, so a block's first channel sits at a lane that is a multiple of gcd(Q, L).

    >>> plane_starts(16, 8), plane_starts(48, 32)
    ([0, 8], [-16, 0, 16, 32])
    """
    lanes = range(0, l, gcd(q, l))
    return sorted({plane * l - lane for lane in lanes for plane in range(-(-(q + lane) // l))})
