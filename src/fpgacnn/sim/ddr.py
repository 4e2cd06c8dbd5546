"""The DDR memory model: latency, bandwidth, one read port and one write port.

This Python class is the definition of the model; the Verilator harness (`ddr.h`) implements
the same rules in C++ for speed, and a test holds the two to the same cycle counts.

Rules, per clock cycle:
- A burst request (`ar`/`aw`) is accepted while fewer than `max_outstanding` bursts of that
  direction are queued. The first beat of a read burst accepted in cycle `t` may be presented
  from cycle `t + latency`; beats are returned in request order.
- Bandwidth is a credit of `bytes_per_cycle` per cycle (saved up to one word plus one cycle's
  worth, so no credit is lost while a transfer waits for a whole word), shared by reads and
  writes: presenting a read beat or accepting a write beat costs one word.
- Turns: in a cycle that starts with a read beat due (and none presented) and a write burst
  queued, the direction whose turn it is has the first claim on the credit (a read is then
  presented, or `w_ready` raised; the other direction gets only what credit is left), and the
  turn passes to the other direction. Reads have the first turn.
- Write beats are accepted only for a burst whose `aw` was accepted; bytes are written as the
  strobes say. The response `b` of a burst whose last beat was accepted in cycle `t` is
  presented from cycle `t + latency`.
- Outputs are registered: they are computed at the start of a cycle from the state alone.

>>> ddr = DDRModel(bytearray(64), word_bytes=8, latency=2, bytes_per_cycle=8.0)
>>> ddr.outputs().ar_ready
True
"""

from collections import deque
from dataclasses import dataclass

from fpgacnn.errors import UserError


@dataclass
class Outputs:
    ar_ready: bool = False
    r_valid: bool = False
    r_data: int = 0
    r_last: bool = False
    aw_ready: bool = False
    w_ready: bool = False
    b_valid: bool = False


@dataclass
class Inputs:
    ar_valid: bool = False
    ar_addr: int = 0
    ar_len: int = 0
    r_ready: bool = False
    aw_valid: bool = False
    aw_addr: int = 0
    aw_len: int = 0
    w_valid: bool = False
    w_data: int = 0
    w_strb: int = 0
    w_last: bool = False
    b_ready: bool = False


class MemoryRangeError(UserError):
    """The design addressed memory outside the image."""


class ProtocolError(RuntimeError):
    """The design broke the port's rules (a bug in the design, not a user mistake)."""


class DDRModel:
    """Cycle model of the DDR behind the engine's ports; `memory` is updated in place."""

    def __init__(self, memory, word_bytes, latency, bytes_per_cycle, max_outstanding=8):
        self.memory = memory
        self.word_bytes, self.latency = word_bytes, latency
        self.bytes_per_cycle, self.max_outstanding = float(bytes_per_cycle), max_outstanding
        self.cycle = 0
        self.credit = 0.0
        self.reads = deque()      # [addr, beats_left, ready_cycle]
        self.writes = deque()     # [addr, beats_left]
        self.responses = deque()  # ready_cycle
        self.presenting = False
        self.write_turn = False
        self._out = None

    def _check(self, addr, beats):
        if addr % self.word_bytes or addr < 0 or addr + beats * self.word_bytes > len(self.memory):
            raise MemoryRangeError(f"memory: burst of {beats} beats at byte 0x{addr:x} is "
                                   f"unaligned or outside the {len(self.memory)}-byte image")

    def outputs(self):
        """Values the memory drives during the current cycle."""
        if self._out is not None:
            return self._out
        out = Outputs()
        self.credit = min(self.credit + self.bytes_per_cycle,
                          self.bytes_per_cycle + self.word_bytes)
        read_wants = (not self.presenting and bool(self.reads)
                      and self.reads[0][2] <= self.cycle)
        write_wants = bool(self.writes)
        both_wait = read_wants and write_wants
        if read_wants and self.credit >= self.word_bytes and not (write_wants and self.write_turn):
            self.credit -= self.word_bytes
            self.presenting = True
            read_wants = False
        if self.presenting:
            addr, beats_left, _ = self.reads[0]
            out.r_valid = True
            out.r_data = int.from_bytes(self.memory[addr:addr + self.word_bytes], "little")
            out.r_last = beats_left == 1
        out.w_ready = (write_wants and self.credit >= self.word_bytes
                       and not (read_wants and not self.write_turn))
        if both_wait:
            self.write_turn = not self.write_turn
        out.ar_ready = len(self.reads) < self.max_outstanding
        out.aw_ready = len(self.writes) < self.max_outstanding
        out.b_valid = bool(self.responses) and self.responses[0] <= self.cycle
        self._out = out
        return out

    def clock(self, inp):
        """Apply the handshakes of the current cycle at the clock edge."""
        out = self.outputs()
        if out.r_valid and inp.r_ready:
            burst = self.reads[0]
            burst[0] += self.word_bytes
            burst[1] -= 1
            self.presenting = False
            if burst[1] == 0:
                self.reads.popleft()
        if out.ar_ready and inp.ar_valid:
            self._check(inp.ar_addr, inp.ar_len + 1)
            self.reads.append([inp.ar_addr, inp.ar_len + 1, self.cycle + self.latency])
        if out.w_ready and inp.w_valid:
            self._write_beat(inp)
        if out.aw_ready and inp.aw_valid:
            self._check(inp.aw_addr, inp.aw_len + 1)
            self.writes.append([inp.aw_addr, inp.aw_len + 1])
        if out.b_valid and inp.b_ready:
            self.responses.popleft()
        self.cycle += 1
        self._out = None

    def _write_beat(self, inp):
        self.credit -= self.word_bytes
        burst = self.writes[0]
        if bool(inp.w_last) != (burst[1] == 1):
            raise ProtocolError(f"memory: w.last={int(inp.w_last)} with {burst[1]} beats left "
                                f"in the burst at byte 0x{burst[0]:x}")
        addr = burst[0]
        for i in range(self.word_bytes):
            if inp.w_strb >> i & 1:
                self.memory[addr + i] = inp.w_data >> (8 * i) & 0xFF
        burst[0] += self.word_bytes
        burst[1] -= 1
        if burst[1] == 0:
            self.writes.popleft()
            self.responses.append(self.cycle + self.latency)

    @classmethod
    def from_config(cls, memory, config, max_outstanding=8):
        return cls(memory, config.ddr_width_bits // 8, config.ddr_latency,
                   config.ddr_bytes_per_cycle, max_outstanding)


def add_ddr_process(sim, model, rd=None, wr=None):
    """Serve the master ports `rd` (ReadPortSignature) and `wr` (WritePortSignature) of a design
    under Amaranth's simulator from `model`.

    >>> sim = Simulator(dut); add_ddr_process(sim, DDRModel(...), rd=dut.mem)  # doctest: +SKIP
    """
    master = []
    if rd is not None:
        master += [rd.ar.valid, rd.ar.payload.addr, rd.ar.payload.len, rd.r.ready]
    if wr is not None:
        master += [wr.aw.valid, wr.aw.payload.addr, wr.aw.payload.len, wr.w.valid,
                   wr.w.payload.data, wr.w.payload.strb, wr.w.payload.last, wr.b.ready]

    async def process(ctx):
        while True:
            out = model.outputs()
            if rd is not None:
                ctx.set(rd.ar.ready, out.ar_ready)
                ctx.set(rd.r.valid, out.r_valid)
                ctx.set(rd.r.payload.data, out.r_data)
                ctx.set(rd.r.payload.last, out.r_last)
            if wr is not None:
                ctx.set(wr.aw.ready, out.aw_ready)
                ctx.set(wr.w.ready, out.w_ready)
                ctx.set(wr.b.valid, out.b_valid)
            _, _, *values = await ctx.tick().sample(*master)
            inp = Inputs()
            if rd is not None:
                inp.ar_valid, inp.ar_addr, inp.ar_len, inp.r_ready = values[:4]
                values = values[4:]
            if wr is not None:
                (inp.aw_valid, inp.aw_addr, inp.aw_len, inp.w_valid, inp.w_data, inp.w_strb,
                 inp.w_last, inp.b_ready) = values
            model.clock(inp)

    sim.add_process(process)
