"""yosys synth_xilinx reports, against designs whose resources are counted by hand."""

import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from amaranth import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fpgacnn.cli import main
from fpgacnn.config import HardwareConfig
from fpgacnn.hw.pe_array import MacArray
from fpgacnn.hw.synth import count_cells, planned_resources, synth_script, synthesize
from fpgacnn.hw.verilog import TOP_NAME, verilog_text
from fpgacnn.plan.bram import map_buffer_best
from fpgacnn.plan.dsp import dsps_per_multiplier, engine_dsps, vector_dsps


class MacsAndMemories(wiring.Component):
    """`n` 8x8 -> 32-bit multiply-accumulates (one DSP48E1 each: registers absorbed), a
    512 x 72 memory (one RAMB36 in simple dual port), a 1024 x 18 memory (one RAMB18) and an
    8-bit counter (8 flip-flops)."""

    def __init__(self, n):
        self.n = n
        super().__init__({
            "a": In(signed(8)), "w": In(8 * n), "clear": In(1),
            "addr": In(10), "wdata": In(72), "we": In(1),
            "acc": Out(32 * n), "rdata": Out(72 + 18), "count": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        for i in range(self.n):
            acc, a, w = Signal(signed(32)), Signal(signed(8)), Signal(signed(8))
            m.d.sync += [a.eq(self.a), w.eq(self.w[8 * i:8 * i + 8])]
            with m.If(self.clear):
                m.d.sync += acc.eq(0)
            with m.Else():
                m.d.sync += acc.eq(acc + a * w)
            m.d.comb += self.acc[32 * i:32 * i + 32].eq(acc)
        for name, width, depth, lsb in (("wide", 72, 512, 0), ("deep", 18, 1024, 72)):
            mem = Memory(shape=width, depth=depth, init=[])
            m.submodules[name] = mem
            write, read = mem.write_port(), mem.read_port()
            bits = (depth - 1).bit_length()
            m.d.comb += [write.addr.eq(self.addr[:bits]), write.data.eq(self.wdata[:width]),
                         write.en.eq(self.we), read.addr.eq(self.addr[:bits]),
                         self.rdata[lsb:lsb + width].eq(read.data)]
        m.d.sync += self.count.eq(self.count + 1)
        return m


def test_yosys_maps_macs_to_dsp48e1_and_memories_to_block_ram():
    resources, cells = synthesize(MacsAndMemories(6), "DSP48E1")
    assert resources.dsp == cells["DSP48E1"] == 6
    assert (resources.bram36, resources.bram18) == (1, 1)
    assert resources.bram18_units == 3
    # the hand count agrees with the planner's block RAM model for the same two buffers
    assert resources.bram18_units == (map_buffer_best(72, 512).bram18
                                      + map_buffer_best(18, 1024).bram18)
    assert resources.ff == 8
    assert resources.lut > 0


def test_cell_classes():
    cells = {"DSP48E1": 2, "RAMB18E1": 3, "RAMB36E1": 4, "LUT1": 1, "LUT6": 2, "INV": 1,
             "RAM64M": 2, "SRLC32E": 1, "FDRE": 5, "FDSE": 1, "FDCE": 1, "CARRY4": 9,
             "MUXF7": 4, "BUFG": 1}
    r = count_cells(cells)
    assert (r.dsp, r.bram18, r.bram36, r.lut, r.ff) == (2, 3, 4, 7, 7)
    assert r.bram18_units == 11


class Multipliers(wiring.Component):
    """Registered signed multipliers of the given (a, b) widths, nothing else."""

    def __init__(self, widths):
        self.widths = widths
        super().__init__({"a": In(max(a for a, _ in widths)), "b": In(max(b for _, b in widths)),
                          "p": Out(sum(a + b for a, b in widths))})

    def elaborate(self, platform):
        m = Module()
        lsb = 0
        for a_bits, b_bits in self.widths:
            a, b = Signal(signed(a_bits)), Signal(signed(b_bits))
            product = Signal(signed(a_bits + b_bits))
            m.d.sync += [a.eq(self.a[:a_bits]), b.eq(self.b[:b_bits]), product.eq(a * b)]
            m.d.comb += self.p[lsb:lsb + a_bits + b_bits].eq(product)
            lsb += a_bits + b_bits
        return m


def test_wide_multipliers_cost_what_yosys_maps_them_to():
    # by hand, cutting operands into 17-bit cascade pieces (UG479) beyond 25 x 18 bits:
    # 33x33 = 2 x 2 (the engine's requantization product: unsigned 32 x 32 magnitudes),
    # 42x18 = 2 x 1 (its clamped activation product), 66x18 = 4 x 1, 40x40 = 2 pieces
    # (17 + 23) of the first, each times 3 of the second (17 + 17 + 6), 9x8 = 1 (a MAC:
    # input minus zero point times weight), 25x9 = 1 (a packed pair of MACs: the whole A port)
    widths = [(33, 33), (42, 18), (66, 18), (40, 40), (9, 8), (25, 9)]
    assert [dsps_per_multiplier(a, b, "DSP48E1") for a, b in widths] == [4, 2, 4, 6, 1, 1]
    resources, _ = synthesize(Multipliers(widths), "DSP48E1")
    assert resources.dsp == 18


def dsp_cells(component):
    """The DSP48E1 cells yosys makes of `component` (the same script as `synthesize`), as
    {parameter: value} of their pipeline registers."""
    with tempfile.TemporaryDirectory() as tmp:
        source, netlist = Path(tmp) / "top.v", Path(tmp) / "netlist.json"
        source.write_text(verilog_text(component))
        script = f"read_verilog {source}; {synth_script('xc7', TOP_NAME)}; write_json {netlist}"
        subprocess.run(["yosys", "-q", "-p", script], check=True, capture_output=True)
        modules = json.loads(netlist.read_text())["modules"].values()
    return [{name: int(cell["parameters"][name], 2) for name in ("AREG", "BREG", "MREG")}
            for module in modules for cell in module["cells"].values()
            if cell["type"] == "DSP48E1"]


@pytest.mark.parametrize("tm, tn", [(4, 4), (3, 2)])
def test_yosys_maps_each_packed_pair_of_macs_onto_one_dsp48e1(tm, tn):
    # INT8 on the xc7z020: rows 2k and 2k + 1 share one slice per input, an odd last row has
    # its own: 2 x 4 = 8 slices for 4 x 4, (1 + 1) x 2 = 4 for 3 x 2
    cells = dsp_cells(MacArray(HardwareConfig(tm=tm, tn=tn)))
    by_hand = (tm + 1) // 2 * tn
    assert len(cells) == by_hand == engine_dsps(tm, tn, 8, 8, 32, "DSP48E1") - tm * 6
    # the operand registers (the packed weights, the input) and the product register are
    # the slice's own A, B and M registers
    assert cells == [{"AREG": 1, "BREG": 1, "MREG": 1}] * by_hand


def test_planned_resources_follow_the_planner():
    config = HardwareConfig(tm=4, tn=4, tr=4, tc=4, ddr_width_bits=32, max_kernel=3,
                            max_stride=1)
    planned = planned_resources(config)
    # 16 MACs of 9 x 8 bits (two per DSP48E1) + 4 post-processing lanes of 33x33 and 42x18
    assert planned.dsp == 16 // 2 + 4 * (4 + 2)
    # input 72 x 32 bits: 1 RAMB18 (512x36); weights 18 x 128: 4; accumulators 16 x 128: 4;
    # staging 32 x 72: 2 (UG473's 512x36 shape, four or two side by side)
    assert (planned.bram18, planned.bram36, planned.bram18_units) == (11, 0, 11)
    assert planned.lut is None and planned.ff is None


def test_yosys_maps_the_vector_unit_as_planned():
    from fpgacnn.hw.vector import VectorUnit

    # two lanes, each a rescaler (32 x 32 signed: 2 x 2 slices) and a post-processing lane
    # (4 + 2), and the walker's row address (12 x 24 bits: one slice)
    config = HardwareConfig(tm=2, tn=2, tr=2, tc=2, ddr_width_bits=16, max_kernel=3,
                            max_stride=2)
    by_hand = 2 * (4 + 4 + 2) + 1
    resources, cells = synthesize(VectorUnit(config), "DSP48E1")
    assert resources.dsp == by_hand == vector_dsps(2, 32, "DSP48E1")
    assert resources.bram18 == resources.bram36 == 0     # its FIFOs of 32 words: LUT RAM
    accelerator = planned_resources(config, design="accelerator")
    assert accelerator.dsp == planned_resources(config).dsp + by_hand


def test_synth_command_json_on_the_memory_design(capsys, tmp_path):
    config = tmp_path / "hw.toml"
    HardwareConfig(tm=2, tn=2, ddr_width_bits=32).save(config)
    assert main(["synth", "--config", str(config), "--design", "memcopy", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for side in ("yosys", "planned"):
        assert set(report[side]) >= {"dsp", "bram18", "bram36", "lut", "ff"}
    assert report["yosys"]["dsp"] == 0          # a copy has no multiplier
    assert report["yosys"]["ff"] > 32           # at least the address registers
    assert report["planned"]["dsp"] == 2 + 2 * 6    # the engine's plan, for comparison


def test_synth_command_missing_config_is_a_user_error(capsys):
    assert main(["synth", "--config", "/nonexistent/hw.toml"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_yosys_maps_the_engine_as_planned(capsys, tmp_path):
    # the smallest engine: 2 x 2 MACs (one packed pair of rows: 2 DSP48E1), 2 post-processing
    # lanes (6 each), 3x3 kernels at stride 1
    HardwareConfig(tm=2, tn=2, tr=2, tc=2, ddr_width_bits=16, max_kernel=3,
                   max_stride=1).save(tmp_path / "hw.toml")
    assert main(["synth", "--config", str(tmp_path / "hw.toml"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    yosys, planned = report["yosys"], report["planned"]
    for side in (yosys, planned):
        assert set(side) >= {"dsp", "bram18", "bram36", "lut", "ff"}
    assert report["cells"]["DSP48E1"] > 0
    assert report["cells"].get("RAMB18E1", 0) + report["cells"].get("RAMB36E1", 0) > 0
    assert yosys["dsp"] == report["cells"]["DSP48E1"] == planned["dsp"] == 2 + 2 * 6
    assert abs(yosys["bram18_units"] - planned["bram18_units"]) <= 0.1 * planned["bram18_units"]
    assert yosys["lut"] > 0 and yosys["ff"] > 0
    assert planned["lut"] is None and planned["ff"] is None
    assert report["notes"] == ["the planner has no estimate of LUT, FF ('-', null)"]
