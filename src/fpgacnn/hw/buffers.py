"""On-chip buffers: ping-pong banks (input tiles, weights, output staging) and accumulators.

A `PingPongBuffer` holds two banks of `depth` words in one memory: a loader fills one bank
while the datapath reads the other, and they swap per step. Reads are synchronous (data one
cycle after the address, held while `r_en` is low), as block RAM is.
"""

from amaranth import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.program import input_buffer_words, weight_buffer_words
from fpgacnn.hw.writer import STAGED_BITS

# yosys (memory_libmap) and Vivado put these memories in block RAM however small they are,
# as the planner counts them; left alone, yosys takes LUT RAM for shallow ones
BLOCK_RAM = {"ram_style": "block"}


class PingPongBuffer(wiring.Component):
    """Two banks of `depth` words of `width` bits; bank `b` word `a` is memory word b*depth+a.

    >>> buf = PingPongBuffer(64, 100)
    >>> buf.r_data.shape().width
    64
    """

    def __init__(self, width: int, depth: int):
        if depth < 1 or width < 1:
            raise ValueError(f"buffer needs a positive width and depth, not {width} x {depth}")
        self.width, self.depth = width, depth
        super().__init__({
            "w_en": In(1), "w_bank": In(1), "w_addr": In(range(depth)), "w_data": In(width),
            "r_en": In(1), "r_bank": In(1), "r_addr": In(range(depth)), "r_data": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self.width, depth=2 * self.depth, init=[],
                                         attrs=BLOCK_RAM)
        wp = mem.write_port()
        rp = mem.read_port()
        m.d.comb += [
            wp.en.eq(self.w_en),
            wp.addr.eq(Mux(self.w_bank, self.w_addr + self.depth, self.w_addr)),
            wp.data.eq(self.w_data),
            rp.en.eq(self.r_en),
            rp.addr.eq(Mux(self.r_bank, self.r_addr + self.depth, self.r_addr)),
            self.r_data.eq(rp.data),
        ]
        return m


class AccumulatorBuffer(wiring.Component):
    """Partial sums of one output tile: tr * tc words of Q accumulators.

    The read port is transparent to the write port, so a word written in a cycle is what a
    read of the same address returns in that cycle (read-add-write back to back).
    """

    def __init__(self, config: HardwareConfig):
        self.width, self.depth = config.tm * config.acc_bits, config.tr * config.tc
        super().__init__({
            "w_en": In(1), "w_addr": In(range(self.depth)), "w_data": In(self.width),
            "r_addr": In(range(self.depth)), "r_data": Out(self.width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self.width, depth=self.depth, init=[], attrs=BLOCK_RAM)
        wp = mem.write_port()
        rp = mem.read_port(transparent_for=(wp,))
        m.d.comb += [wp.en.eq(self.w_en), wp.addr.eq(self.w_addr), wp.data.eq(self.w_data),
                     rp.addr.eq(self.r_addr), self.r_data.eq(rp.data)]
        return m


def input_buffer(config: HardwareConfig) -> PingPongBuffer:
    """Input tiles of L channels, one feature row (L values) per word."""
    return PingPongBuffer(config.tn * config.act_bits, input_buffer_words(config))


def weight_buffer(config: HardwareConfig) -> PingPongBuffer:
    """Weights of one (output block, input block): one Q x L matrix per kernel position."""
    return PingPongBuffer(config.tm * config.tn * config.weight_bits, weight_buffer_words(config))


def staging_buffer(config: HardwareConfig) -> PingPongBuffer:
    """Finished outputs of one tile (Q values of STAGED_BITS per pixel) waiting for the writer."""
    return PingPongBuffer(config.tm * STAGED_BITS, config.tr * config.tc)
