"""The writer: lays a finished output tile out in DDR as the feature-map convention says.

The staging buffer holds the tile's pixels in raster order, Q values each. For every block of
L channels that has real channels, for every written row of the tile, the writer sends one
DMA write command (the row's pixels are adjacent in "(n cb h w) l" order) and then the row's
words: lanes j*L .. j*L+L-1 of each staged pixel, act_bits each, padding channels as 0.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.memport import command_layout
from fpgacnn.hw.program import descriptor_layout, feature_row_bytes

TILE = data.StructLayout({"out_ddr": 32, "rows": 8, "cols": 8, "channels": 14})
STAGED_BITS = 18


class OutputWriter(wiring.Component):
    """Writes staging bank `bank` (tile `tile`) to DDR after `go`; `busy` until it is in memory.

    >>> OutputWriter(HardwareConfig()).blocks
    2
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        self.blocks = config.tm // config.tn
        depth = config.tr * config.tc
        super().__init__({
            "desc": In(descriptor_layout()),
            "go": In(1), "bank": In(1), "tile": In(TILE),
            "busy": Out(1),
            "r_en": Out(1), "r_bank": Out(1), "r_addr": Out(range(depth)),
            "r_data": In(config.tm * STAGED_BITS),
            "cmd": Out(stream.Signature(command_layout())),
            "data": Out(stream.Signature(config.ddr_width_bits)),
            "dma_busy": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, d = self.config, self.desc
        l, act = cfg.tn, cfg.act_bits
        row_shift = feature_row_bytes(cfg).bit_length() - 1
        tile = Signal(TILE)
        block = Signal(range(self.blocks + 1))
        row = Signal(8)
        block_addr, row_addr = Signal(32), Signal(32)
        pix = Signal.like(self.r_addr)
        to_issue, to_send = Signal(9), Signal(9)
        out_valid = Signal()

        m.d.comb += [self.r_bank.eq(self.bank), self.r_addr.eq(pix)]
        lanes = []
        for lane in range(l):
            chosen = Signal(act, name=f"lane_{lane}")
            for j in range(self.blocks):
                bits = self.r_data[(j * l + lane) * STAGED_BITS:][:act]
                with m.If(block == j):
                    m.d.comb += chosen.eq(bits)
            real = (Cat(block, 0) * l + lane) < tile.channels if self.blocks > 1 else \
                lane < tile.channels
            lanes.append(Mux(real, chosen, 0))
        m.d.comb += [self.data.payload.eq(Cat(*lanes)), self.data.valid.eq(out_valid)]

        advance = ~out_valid | self.data.ready
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.go):
                    m.d.sync += [tile.eq(self.tile), block.eq(0), row.eq(0), pix.eq(0),
                                 block_addr.eq(self.tile.out_ddr), row_addr.eq(self.tile.out_ddr)]
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
                    next_block = block_addr + d.out_plane_bytes
                    m.d.sync += [row.eq(0), pix.eq(0), block.eq(block + 1),
                                 block_addr.eq(next_block), row_addr.eq(next_block)]
                    with m.If((block == self.blocks - 1)
                              | (Cat(block + 1, 0) * l >= tile.channels)):
                        m.next = "FLUSH"
            with m.State("FLUSH"):
                with m.If(~self.dma_busy):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
