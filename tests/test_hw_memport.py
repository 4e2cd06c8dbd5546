"""DMA reader/writer and read arbiter in Amaranth's simulator, against the Python DDR model.

The oracle is the memory itself: what the reader delivers must be the bytes at the addresses
asked for (sliced here with plain Python), and after the writer the memory must hold the data
written, no byte outside the range touched.
"""

import random

import pytest
from amaranth import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator
from hypothesis import given, settings, strategies as st

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.memport import (DMAReader, DMAWriter, ReadArbiter, ReadPortSignature,
                                WritePortSignature)
from fpgacnn.sim.ddr import DDRModel, add_ddr_process

MAX_CYCLES = 5000


class LoggingDDR(DDRModel):
    """Records every burst request, to check the burst rules."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bursts = []

    def clock(self, inp):
        out = self.outputs()
        if out.ar_ready and inp.ar_valid:
            self.bursts.append(("r", inp.ar_addr, inp.ar_len + 1))
        if out.aw_ready and inp.aw_valid:
            self.bursts.append(("w", inp.aw_addr, inp.aw_len + 1))
        super().clock(inp)


def words_of(memory, addr, length, word_bytes):
    """Plain slicing: the little-endian words covering `length` bytes at `addr`."""
    n = -(-length // word_bytes)
    return [int.from_bytes(memory[addr + i * word_bytes: addr + (i + 1) * word_bytes], "little")
            for i in range(n)]


async def send_commands(ctx, cmd, commands):
    for addr, length in commands:
        ctx.set(cmd.payload.addr, addr)
        ctx.set(cmd.payload.length, length)
        ctx.set(cmd.valid, 1)
        await ctx.tick().until(cmd.ready)
        ctx.set(cmd.valid, 0)


def sink_process(stream_, received, ready_prob, rng):
    async def process(ctx):
        while True:
            ready = rng.random() < ready_prob
            ctx.set(stream_.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(stream_.valid, stream_.payload)
            if valid and ready:
                received.append(payload)
    return process


def source_process(stream_, words, valid_prob, rng):
    async def process(ctx):
        i = 0
        while i < len(words):
            if rng.random() < valid_prob:
                ctx.set(stream_.valid, 1)
                ctx.set(stream_.payload, words[i])
                _, _, ready = await ctx.tick().sample(stream_.ready)
                if ready:
                    i += 1
            else:
                ctx.set(stream_.valid, 0)
                await ctx.tick()
        ctx.set(stream_.valid, 0)
    return process


def run_reader(memory, commands, data_width=64, burst_len=4, latency=5, bpc=8.0,
               ready_prob=1.0, seed=0):
    dut = DMAReader(data_width, burst_len)
    ddr = LoggingDDR(memory, data_width // 8, latency, bpc)
    received, cycles = [], []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    add_ddr_process(sim, ddr, rd=dut.mem)
    sim.add_process(sink_process(dut.data, received, ready_prob, random.Random(seed)))

    async def testbench(ctx):
        await send_commands(ctx, dut.cmd, commands)
        for _ in range(MAX_CYCLES):
            _, _, busy = await ctx.tick().sample(dut.busy)
            if not busy:
                break
        cycles.append(ddr.cycle)
    sim.add_testbench(testbench)
    sim.run()
    return received, ddr, cycles[0]


def run_writer(memory, commands, words, data_width=64, burst_len=4, latency=5, bpc=8.0,
               valid_prob=1.0, seed=0):
    dut = DMAWriter(data_width, burst_len)
    ddr = LoggingDDR(memory, data_width // 8, latency, bpc)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    add_ddr_process(sim, ddr, wr=dut.mem)
    sim.add_process(source_process(dut.data, words, valid_prob, random.Random(seed)))

    async def testbench(ctx):
        await send_commands(ctx, dut.cmd, commands)
        for _ in range(MAX_CYCLES):
            _, _, busy = await ctx.tick().sample(dut.busy)
            if not busy:
                break
        else:
            raise AssertionError("writer still busy at the cycle limit")
    sim.add_testbench(testbench)
    sim.run()
    return ddr


def check_bursts(bursts, word_bytes, burst_len):
    for _, addr, beats in bursts:
        assert 1 <= beats <= burst_len
        boundary = burst_len * word_bytes
        assert addr // boundary == (addr + beats * word_bytes - 1) // boundary, (addr, beats)


@settings(max_examples=40)
@given(st.data())
def test_reader_delivers_the_bytes_at_the_address(data):
    data_width = data.draw(st.sampled_from([32, 64, 128]))
    burst_len = data.draw(st.sampled_from([1, 4, 16]))
    wb = data_width // 8
    rng = random.Random(data.draw(st.integers(0, 1000)))
    memory = bytearray(rng.randrange(256) for _ in range(96 * wb))
    commands = [(wb * data.draw(st.integers(0, 40)), data.draw(st.integers(0, 50 * wb)))
                for _ in range(data.draw(st.integers(1, 3)))]
    received, ddr, _ = run_reader(
        memory, commands, data_width, burst_len,
        latency=data.draw(st.integers(1, 12)), bpc=data.draw(st.sampled_from([2.0, wb, 2 * wb])),
        ready_prob=data.draw(st.sampled_from([1.0, 0.6])), seed=rng.randrange(100))
    expected = [w for addr, length in commands for w in words_of(memory, addr, length, wb)]
    assert received == expected
    check_bursts(ddr.bursts, wb, burst_len)


@settings(max_examples=40)
@given(st.data())
def test_writer_puts_the_stream_at_the_address(data):
    data_width = data.draw(st.sampled_from([32, 64]))
    burst_len = data.draw(st.sampled_from([1, 2, 8]))
    wb = data_width // 8
    rng = random.Random(data.draw(st.integers(0, 1000)))
    size = 80 * wb
    commands = [(wb * data.draw(st.integers(0, 30)), data.draw(st.integers(0, 40 * wb)))
                for _ in range(data.draw(st.integers(1, 3)))]
    n_words = sum(-(-length // wb) for _, length in commands)
    words = [rng.getrandbits(data_width) for _ in range(n_words)]
    before = bytes(rng.randrange(256) for _ in range(size))
    ddr = run_writer(bytearray(before), commands, words, data_width, burst_len,
                     latency=data.draw(st.integers(1, 10)),
                     bpc=data.draw(st.sampled_from([3.0, wb])),
                     valid_prob=data.draw(st.sampled_from([1.0, 0.5])), seed=rng.randrange(100))
    expected = bytearray(before)
    stream_bytes = b"".join(w.to_bytes(wb, "little") for w in words)
    pos = 0
    for addr, length in commands:   # later commands overwrite earlier ones, as in memory
        expected[addr:addr + length] = stream_bytes[pos:pos + length]
        pos += -(-length // wb) * wb
    assert bytes(ddr.memory) == bytes(expected)
    check_bursts(ddr.bursts, wb, burst_len)


@pytest.mark.parametrize("latency,bpc", [(1, 8.0), (20, 8.0), (20, 4.0), (7, 2.5)])
def test_reader_runs_at_the_memory_bandwidth(latency, bpc):
    words = 256
    memory = bytearray(range(256)) * 8
    received, _, cycles = run_reader(memory, [(0, words * 8)], 64, 16, latency, bpc)
    assert len(received) == words
    transfer = words * 8 / bpc
    # bandwidth-bound: no faster than the memory, and at most latency + a few cycles slower
    assert transfer <= cycles <= transfer + latency + 6


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_signatures_check_their_parameters():
    with pytest.raises(TypeError, match="power of two"):
        ReadPortSignature(24)
    with pytest.raises(TypeError, match="Burst length"):
        DMAReader(64, 3)
    assert WritePortSignature(64).flip().flip() == WritePortSignature(64)
    assert WritePortSignature(64) != WritePortSignature(32)
    reader = DMAReader.from_config(HardwareConfig(ddr_width_bits=128, burst_len=8))
    assert (reader.data_width, reader.burst_len) == (128, 8)


class TwoReaders(Elaboratable):
    def __init__(self, data_width, burst_len):
        self.a = DMAReader(data_width, burst_len)
        self.b = DMAReader(data_width, burst_len)
        self.arbiter = ReadArbiter(2, data_width, max_outstanding=4)

    def elaborate(self, platform):
        m = Module()
        m.submodules.a, m.submodules.b, m.submodules.arb = self.a, self.b, self.arbiter
        wiring.connect(m, self.a.mem, self.arbiter.m0)
        wiring.connect(m, self.b.mem, self.arbiter.m1)
        return m


@pytest.mark.parametrize("ready_a,ready_b", [(1.0, 1.0), (0.5, 0.8)])
def test_arbiter_routes_each_burst_back_to_its_master(ready_a, ready_b):
    dut = TwoReaders(64, 4)
    rng = random.Random(3)
    memory = bytearray(rng.randrange(256) for _ in range(2048))
    ddr = DDRModel(memory, 8, 6, 8.0)
    got_a, got_b = [], []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    add_ddr_process(sim, ddr, rd=dut.arbiter.mem)
    sim.add_process(sink_process(dut.a.data, got_a, ready_a, random.Random(1)))
    sim.add_process(sink_process(dut.b.data, got_b, ready_b, random.Random(2)))
    cmds_a, cmds_b = [(8, 200), (1000, 64)], [(512, 300)]

    async def testbench(ctx):
        await send_commands(ctx, dut.a.cmd, cmds_a)
        await send_commands(ctx, dut.b.cmd, cmds_b)
        for _ in range(MAX_CYCLES):
            _, _, busy_a, busy_b = await ctx.tick().sample(dut.a.busy, dut.b.busy)
            if not (busy_a or busy_b):
                return
        raise AssertionError("readers still busy at the cycle limit")
    sim.add_testbench(testbench)
    sim.run()
    assert got_a == [w for a, n in cmds_a for w in words_of(memory, a, n, 8)]
    assert got_b == [w for a, n in cmds_b for w in words_of(memory, a, n, 8)]


def test_axi4_master_is_a_renaming_with_the_spec_constants():
    from amaranth.back import verilog
    from fpgacnn.hw.memport import AXI4Master

    dut = AXI4Master(64)
    ports = verilog.convert(AXI4Master(64), name="m")
    for name in ("axi__araddr", "axi__arlen", "axi__arsize", "axi__arburst", "axi__rdata",
                 "axi__rlast", "axi__wstrb", "axi__bresp", "axi__awvalid", "axi__rready"):
        assert name in ports
    sim = Simulator(dut)

    async def testbench(ctx):
        ctx.set(dut.rd.ar.payload.addr, 0x1240)
        ctx.set(dut.rd.ar.payload.len, 15)
        ctx.set(dut.rd.ar.valid, 1)
        ctx.set(dut.axi.arready, 1)
        ctx.set(dut.axi.rdata, 0x0123456789ABCDEF)
        ctx.set(dut.axi.rlast, 1)
        ctx.set(dut.wr.w.payload.strb, 0x0F)
        assert ctx.get(dut.axi.araddr) == 0x1240 and ctx.get(dut.axi.arlen) == 15
        assert ctx.get(dut.axi.arsize) == 3          # 8 bytes per beat
        assert ctx.get(dut.axi.arburst) == 0b01      # INCR
        assert ctx.get(dut.rd.ar.ready) == 1 and ctx.get(dut.axi.arvalid) == 1
        assert ctx.get(dut.rd.r.payload.data) == 0x0123456789ABCDEF
        assert ctx.get(dut.rd.r.payload.last) == 1
        assert ctx.get(dut.axi.wstrb) == 0x0F
    sim.add_testbench(testbench)
    sim.run()
