"""The Verilator flow (emission, harness, C++ DDR model, build cache, runtime) on MemoryCopy.

Oracles: plain byte slicing for what a copy must leave in memory, and the Python DDR model
(the definition of the memory's timing) running the same design in Amaranth's simulator for the
cycle counts of the C++ model.
"""

import random

import pytest
from amaranth.sim import Simulator

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.verilog import MemoryCopy, SimTop
from fpgacnn.sim import build
from fpgacnn.sim.ddr import DDRModel, Inputs, add_ddr_process
from fpgacnn.sim.runtime import SimulatedDevice, SimulationError

CONFIGS = {
    "64": HardwareConfig(),
    "32": HardwareConfig(ddr_width_bits=32, burst_len=8, ddr_latency=7,
                         ddr_bytes_per_cycle=2.5),
    "128": HardwareConfig(ddr_width_bits=128, burst_len=4, ddr_latency=3,
                          ddr_bytes_per_cycle=16.0),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def device(request):
    config = CONFIGS[request.param]
    return SimulatedDevice(MemoryCopy.from_config(config), config)


def run_in_amaranth(dut, config, memory, args, max_outstanding=16):
    """Cycles of one run of `dut` (a SimTop) in Amaranth's simulator against the Python DDR
    model; `memory` (a bytearray) is left as the run leaves it."""
    ddr = DDRModel(memory, config.ddr_width_bits // 8, config.ddr_latency,
                   config.ddr_bytes_per_cycle, max_outstanding)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    add_ddr_process(sim, ddr, rd=dut.rd, wr=dut.wr)
    cycles = []

    async def testbench(ctx):
        ctx.set(dut.args, list(args) + [0] * (4 - len(args)))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        cycle = 1
        while ctx.get(dut.busy):
            await ctx.tick()
            cycle += 1
        cycles.append(cycle)
    sim.add_testbench(testbench)
    sim.run()
    return cycles[0]


def copy_in_amaranth(config, memory, src, dst, length, max_outstanding=16):
    """Cycles of the same copy in Amaranth's simulator against the Python DDR model."""
    dut = SimTop(MemoryCopy.from_config(config), max_outstanding)
    return run_in_amaranth(dut, config, memory, [src, dst, length], max_outstanding)


def test_copy_moves_exactly_the_bytes_asked_for(device):
    rng = random.Random(device.config.ddr_width_bits)
    word = device.config.ddr_width_bits // 8
    image = bytes(rng.randrange(256) for _ in range(8192))
    for src, dst, length in [(0, 4096, 1000), (word * 7, 6000 - 6000 % word, 1234),
                             (64, 128, 3), (512, 5120, 0)]:
        device.load(image)
        device.start(src, dst, length)
        result = device.wait()
        expected = bytearray(image)
        expected[dst:dst + length] = image[src:src + length]
        assert device.read(0, len(image)) == bytes(expected), (src, dst, length)
        words = -(-length // word)
        assert result.bytes_read == result.bytes_written == words * word
        assert result.status == words


def test_cycles_match_the_python_ddr_model(device):
    config = device.config
    image = bytes(range(256)) * 32
    for src, dst, length in [(0, 4096, 1000), (40 - 40 % (config.ddr_width_bits // 8), 6144, 77)]:
        device.load(image)
        device.start(src, dst, length)
        cycles = device.wait().cycles
        assert cycles == copy_in_amaranth(config, bytearray(image), src, dst, length)


def test_reads_and_writes_take_turns_when_both_wait():
    """Hand-worked: one 4-beat read and one 4-beat write, 8-byte words, 8 bytes a cycle,
    latency 1, a master that is always ready. Cycle 1 starts with two words of saved credit
    and serves both (the read first: reads have the first turn); from then on one word a
    cycle goes to whichever direction's turn it is: write, read, write, read, ..."""
    ddr = DDRModel(bytearray(range(64)), word_bytes=8, latency=1, bytes_per_cycle=8.0)
    inp = Inputs(ar_valid=True, ar_addr=0, ar_len=3, aw_valid=True, aw_addr=32, aw_len=3,
                 r_ready=True, w_valid=True, w_data=0xAA, w_strb=1, b_ready=True)
    reads, writes = [], []
    for cycle in range(9):
        out = ddr.outputs()
        inp.w_last = len(writes) == 3
        reads += [cycle] if out.r_valid else []
        writes += [cycle] if out.w_ready else []
        ddr.clock(inp)
        inp.ar_valid = inp.aw_valid = False
    assert reads == [1, 3, 5, 7]
    assert writes == [1, 2, 4, 6]
    assert ddr.memory[32:64:8] == bytearray([0xAA] * 4)


def test_cycle_limit_stops_the_run_and_says_where(device):
    word = device.config.ddr_width_bits // 8
    image = bytes(random.Random(1).randrange(256) for _ in range(8192))
    device.load(image)
    device.start(0, 4096, 4000)
    result = device.run_to(60)
    assert not result.finished and result.cycles == 60
    copied = result.status * word
    assert 0 < copied < 4000
    assert device.read(4096, copied) == image[:copied]
    device.load(image)
    device.start(0, 4096, 4000)
    with pytest.raises(SimulationError, match=r"cycle limit of 60 cycles; controller at status"):
        device.wait(max_cycles=60)


def test_access_outside_the_image_is_reported(device):
    device.load(bytes(4096))
    device.start(0, 4000, 1000)
    with pytest.raises(SimulationError, match="outside the 4096-byte image"):
        device.wait()


def test_build_is_cached_and_keyed_by_the_design(device, monkeypatch):
    def no_compile(*args, **kwargs):
        raise AssertionError("rebuilt although cached")
    config = device.config
    monkeypatch.setattr(build, "_compile", no_compile)
    again = build.build_simulator(SimTop(MemoryCopy.from_config(config)))
    assert again == device.executable
    other = SimTop(MemoryCopy.from_config(config.with_(burst_len=config.burst_len * 2)))
    with pytest.raises(AssertionError, match="rebuilt"):
        build.build_simulator(other)


def test_traced_build_writes_a_waveform_and_keeps_the_timing(tmp_path):
    config = CONFIGS["32"]
    plain = SimulatedDevice(MemoryCopy.from_config(config), config)
    traced = SimulatedDevice(MemoryCopy.from_config(config), config, trace=True)
    assert traced.executable != plain.executable
    image = bytes(range(256)) * 8
    cycles = []
    for device in (plain, traced):
        device.load(image)
        device.start(0, 1024, 300)
        cycles.append(device.wait().cycles)
    assert cycles[0] == cycles[1]
    traced.vcd = tmp_path / "run.vcd"
    traced.start(0, 1024, 300)
    traced.wait()
    text = traced.vcd.read_text()
    assert "$enddefinitions" in text and " busy " in text
    assert f"#{2 * cycles[0] - 1}" in text


def test_engine_run_matches_amaranth_cycle_for_cycle():
    """The harness (power-on reset, C++ DDR model) runs the engine like Amaranth's simulator
    with the Python DDR model: the same cycle count and the same memory afterwards."""
    pytest.importorskip("fpgacnn.hw.engine")
    import torch
    from torch import nn

    from fpgacnn.frontends.torch import from_torch
    from fpgacnn.golden import quantize_input
    from fpgacnn.hw.verilog import engine_top
    from fpgacnn.quant import QuantConfig, quantize
    from fpgacnn.sim.check import build_engine_image

    config = HardwareConfig(tm=8, tn=8, tr=8, tc=8, max_kernel=11, max_stride=4,
                            ddr_width_bits=64, burst_len=8, ddr_latency=12,
                            ddr_bytes_per_cycle=8.0)     # test_sim_engine's SMALL: one build
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    x = torch.randn(1, 3, 9, 9)                         # 2 x 2 tiles, about 1,200 cycles
    qmodel = quantize(from_torch(module.eval(), x), x.numpy(), QuantConfig(bits=8))
    image = build_engine_image(qmodel, config, quantize_input(qmodel, x.numpy()))
    start = image.descriptors[qmodel.layers[0].name]
    device = SimulatedDevice(engine_top(config), config)
    device.load(image.image)
    device.start(start)
    result = device.wait()
    memory = bytearray(image.image)
    assert result.cycles == run_in_amaranth(engine_top(config), config, memory, [start])
    assert device.memory == memory
