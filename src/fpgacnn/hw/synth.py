"""Synthesis report: Debian's yosys (`synth_xilinx`) on the generated Verilog, beside the plan.

yosys maps the design onto Xilinx primitives; the counts are read from `stat -json`:
DSP48E1/DSP48E2 slices, RAMB18E1/RAMB36E1 block RAMs, LUTs (LUT1-LUT6, inverters, LUTs used as
distributed RAM or shift registers) and flip-flops (FDRE/FDSE/FDCE/FDPE). The design is
synthesised as a core (`-noiopad`), flattened, by `synth_xilinx`'s own script with one pass
left out: `share` (SAT-based merging of arithmetic cells under exclusive conditions), which
took a third of the time on the engine; it runs after multipliers are mapped to DSPs and
before memories are mapped, so it changes neither count. It may merge a few shifters or
comparators, so LUTs can come out somewhat higher than with it (not measured separately).

>>> cells = {"DSP48E1": 8, "RAMB36E1": 1, "LUT3": 10, "INV": 2, "FDRE": 40, "CARRY4": 3}
>>> count_cells(cells)
Resources(dsp=8, bram18=0, bram36=1, lut=12, ff=40)
"""

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from fpgacnn.errors import UserError
from fpgacnn.hw.verilog import TOP_NAME, verilog_text

FAMILY_OF_DSP = {"DSP48E1": "xc7", "DSP48E2": "xcup"}
LUT_CELLS = re.compile(r"^(LUT[1-6]|INV|SRL16E|SRLC32E|RAM\d+X\d+[SD]|RAM\d+M)$")
FF_CELLS = re.compile(r"^FD[RSCP]E$")


@dataclass(frozen=True)
class Resources:
    """FPGA resources of a design; None where a source has no figure."""

    dsp: int | None
    bram18: int | None
    bram36: int | None
    lut: int | None
    ff: int | None

    @property
    def bram18_units(self):
        """Block RAM in RAMB18 units (a RAMB36 is two), as the planner counts it."""
        if self.bram18 is None and self.bram36 is None:
            return None
        return (self.bram18 or 0) + 2 * (self.bram36 or 0)

    def to_dict(self):
        return {**asdict(self), "bram18_units": self.bram18_units}


def count_cells(cells):
    """Resources of a `{cell type: count}` map of Xilinx primitives."""
    def total(pattern):
        return sum(n for name, n in cells.items() if pattern.match(name))
    return Resources(dsp=cells.get("DSP48E1", 0) + cells.get("DSP48E2", 0),
                     bram18=cells.get("RAMB18E1", 0) + cells.get("RAMB18E2", 0),
                     bram36=cells.get("RAMB36E1", 0) + cells.get("RAMB36E2", 0),
                     lut=total(LUT_CELLS), ff=total(FF_CELLS))


def synth_script(family, top):
    """synth_xilinx without its `share` pass: the labels before and after the `coarse` step,
    and `coarse` written out (yosys 0.23's `help synth_xilinx`) less `share`."""
    synth = f"synth_xilinx -family {family} -top {top} -flatten -noiopad"
    coarse = ("techmap -map +/cmp2lut.v -map +/cmp2lcu.v -D LUT_WIDTH=6; alumacc; opt; "
              "memory -nomap; opt_clean")
    return f"{synth} -run :coarse; {coarse}; {synth} -run map_memory:"


def yosys_cells(verilog, family="xc7", top=TOP_NAME, progress=None):
    """Cell counts of `verilog` after `synth_xilinx -family FAMILY`.

    `progress(pass_name)` is called as yosys enters each pass.
    """
    if shutil.which("yosys") is None:
        raise UserError("yosys: not found on PATH (Debian: apt-get install yosys)")
    with tempfile.TemporaryDirectory(prefix="fpgacnn-synth-") as tmp:
        source, stat = Path(tmp) / f"{top}.v", Path(tmp) / "stat.json"
        source.write_text(verilog)
        script = f"read_verilog {source}; {synth_script(family, top)}; tee -q -o {stat} stat -json"
        process = subprocess.Popen(["yosys", "-p", script], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        tail = []
        for line in process.stdout:
            tail = (tail + [line.rstrip()])[-20:]
            found = re.match(r"^[\d.]+ Executing (.+?) pass", line)
            if found and progress:
                progress(found.group(1))
        if process.wait() != 0:
            raise RuntimeError("yosys failed:\n" + "\n".join(tail))
        report = json.loads(stat.read_text())
    return dict(report["design"]["num_cells_by_type"])


def synthesize(component, dsp_type="DSP48E1", progress=None):
    """Resources of an Amaranth component (e.g. a SimTop) as yosys maps it."""
    if dsp_type not in FAMILY_OF_DSP:
        raise UserError(f"synth: unknown DSP type {dsp_type!r}; known: {sorted(FAMILY_OF_DSP)}")
    cells = yosys_cells(verilog_text(component), FAMILY_OF_DSP[dsp_type], progress=progress)
    return count_cells(cells), cells


def planned_resources(config, dsp_type="DSP48E1", design="engine"):
    """The planner's figures for `design` ("engine" or "accelerator") of `config` as
    generated: DSPs and block RAMs.

    DSPs: the MAC array and the post-processing lanes (`fpgacnn.plan.dsp.engine_dsps`, none
    when `config.post_multipliers` is False), and for the accelerator the vector unit's
    (`vector_dsps`; its FIFOs of 32 words sit in LUT RAM, no block RAM); block
    RAM: each buffer on RAMB18 or RAMB36, whichever is cheaper (`fpgacnn.plan.bram`). The
    planner has no LUT or flip-flop model, so `lut` and `ff` are None.
    """
    from fpgacnn.plan.bram import engine_buffers, map_buffer_best
    from fpgacnn.plan.dsp import engine_dsps, vector_dsps

    c = config
    mappings = [map_buffer_best(int(width), int(depth)) for width, depth in engine_buffers(
        c.tm, c.tn, c.tr, c.tc, c.act_bits, c.weight_bits, c.acc_bits, c.max_kernel,
        c.max_stride).values()]
    def count(primitive):
        return sum(m.count for m in mappings if m.primitive == primitive)
    dsp = engine_dsps(c.tm, c.tn, c.act_bits, c.weight_bits, c.acc_bits, dsp_type,
                      post_multipliers=c.post_multipliers)
    if design == "accelerator":
        dsp += vector_dsps(c.tn, c.acc_bits, dsp_type, post_multipliers=c.post_multipliers)
    return Resources(dsp=dsp, bram18=count("ramb18"), bram36=count("ramb36"), lut=None, ff=None)


def relative_difference(measured, planned):
    """(measured - planned) / planned, or None when either figure is missing."""
    if measured is None or planned is None or planned == 0:
        return None
    return (measured - planned) / planned
