"""The accelerator: the conv engine and the vector unit side by side on one read port and one
write port (docs/vector_unit.md).

`start` runs the unit named by `args[1]` (0: engine, 1: vector unit) on the descriptor at byte
address `args[0]`; only one unit runs at a time, so the memory ports are multiplexed by the
unit of the current run, with no arbitration delay.

>>> top = accelerator_top(HardwareConfig(tm=4, tn=4, tr=4, tc=4, ddr_width_bits=32))
>>> top.data_width
32
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.engine import Engine
from fpgacnn.hw.engine import STATES as ENGINE_STATES
from fpgacnn.hw.memport import ReadPortSignature, WritePortSignature
from fpgacnn.hw.vector import STATES as VECTOR_STATES
from fpgacnn.hw.vector import VectorUnit
from fpgacnn.hw.verilog import N_ARGS, SimTop

ENGINE, VECTOR = 0, 1
UNITS = ("engine", "vector")


class Accelerator(wiring.Component):
    """Engine + VectorUnit; `status` = unit (bit 0), then that unit's state and counters."""

    def __init__(self, config: HardwareConfig):
        self.config = config
        self.engine, self.vector = Engine(config), VectorUnit(config)
        super().__init__({
            "start": In(1),
            "args": In(data.ArrayLayout(32, N_ARGS)),
            "busy": Out(1),
            "status": Out(32),
            "rd": Out(ReadPortSignature(config.ddr_width_bits)),
            "wr": Out(WritePortSignature(config.ddr_width_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        engine = m.submodules.engine = self.engine
        vector = m.submodules.vector = self.vector
        unit = Signal()
        with m.If(self.start):
            m.d.sync += unit.eq(self.args[1] == VECTOR)
        m.d.comb += [engine.start.eq(self.start & (self.args[1] == ENGINE)),
                     vector.start.eq(self.start & (self.args[1] == VECTOR)),
                     engine.desc_addr.eq(self.args[0]), vector.desc_addr.eq(self.args[0]),
                     self.busy.eq(engine.busy | vector.busy)]
        engine_status = Cat(engine.state, engine.layer[:8], engine.tile_r[:8], engine.mb[:8])
        vector_status = Cat(vector.state, vector.block, vector.row)
        m.d.comb += self.status.eq(Cat(unit, Mux(unit, vector_status, engine_status)))
        _multiplex(m, unit, self.rd, [engine.rd, vector.rd])
        _multiplex(m, unit, self.wr, [engine.wr, vector.wr])
        return m

    def describe_status(self, status):
        unit, rest = status & 1, status >> 1
        if unit == VECTOR:
            names = [("state", 3), ("block", 10), ("row", 12)]
            states = VECTOR_STATES
        else:
            names = [("state", 3), ("layer", 8), ("tile_r", 8), ("mb", 8)]
            states = ENGINE_STATES
        parts = [f"unit={UNITS[unit]}"]
        for name, width in names:
            value, rest = rest & ((1 << width) - 1), rest >> width
            if name == "state" and value < len(states):
                value = states[value]
            parts.append(f"{name}={value}")
        return " ".join(parts)


def _multiplex(m, select, port, masters):
    """Connect `port` (our memory master) to `masters[select]`; the other one is held off."""
    for name, member in port.signature.members.items():
        ours = getattr(port, name)
        theirs = [getattr(master, name) for master in masters]
        if member.flow == Out:          # request channels: ar, aw, w
            m.d.comb += [ours.payload.eq(Mux(select, theirs[1].payload, theirs[0].payload)),
                         ours.valid.eq(Mux(select, theirs[1].valid, theirs[0].valid))]
            for i, t in enumerate(theirs):
                m.d.comb += t.ready.eq(ours.ready & (select == i))
        else:                           # response channels: r, b
            m.d.comb += ours.ready.eq(Mux(select, theirs[1].ready, theirs[0].ready))
            for i, t in enumerate(theirs):
                m.d.comb += [t.payload.eq(ours.payload), t.valid.eq(ours.valid & (select == i))]


def accelerator_top(config: HardwareConfig, max_outstanding=16) -> SimTop:
    """The harness top of the accelerator: `device.start(descriptor address, unit)`."""
    return SimTop(Accelerator(config), max_outstanding)
