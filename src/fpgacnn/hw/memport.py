"""The engine's memory port: AXI4-like burst channels, DMA reader/writer, read/write arbiters.

A read port has two streams, as AXI4's AR and R channels: `ar` (master -> memory) carries a
burst request `{addr, len}` with `addr` a byte address aligned to the data word and `len` the
number of beats minus one; `r` (memory -> master) carries `{data, last}` beats, in request
order. A write port has `aw` (as `ar`), `w` (`{data, strb, last}`, byte strobes as AXI4's
WSTRB) and `b` (one response per burst, `resp` 0 = OKAY). Every channel is an
`amaranth.lib.stream` (payload, valid, ready), so an AXI4 master wrapper only renames the
signals and ties off the fields AXI4 has and we do not (id, size, burst type, cache, prot).

Data words are little-endian: byte `i` of a word sits at bits `8*i .. 8*i+7`, and byte address
`A` of memory is byte `A % word_bytes` of the word at `A - A % word_bytes`.

Bursts never cross a `burst_len * word_bytes` boundary (so never a 4 KiB page either), as AXI4
requires.

>>> from fpgacnn.config import HardwareConfig
>>> reader = DMAReader.from_config(HardwareConfig())
>>> reader.data_width, reader.burst_len
(64, 16)
"""

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

ADDR_WIDTH = 32
LEN_WIDTH = 8            # AXI4 AxLEN: up to 256 beats per burst
COUNT_WIDTH = 32         # byte count of one DMA command


def _check_data_width(data_width):
    if not isinstance(data_width, int) or data_width < 8 or data_width & (data_width - 1):
        raise TypeError(f"Data width must be a power of two of at least 8, not {data_width!r}")


def _check_burst_len(burst_len):
    if (not isinstance(burst_len, int) or burst_len < 1 or burst_len > 1 << LEN_WIDTH
            or burst_len & (burst_len - 1)):
        raise TypeError(f"Burst length must be a power of two from 1 to {1 << LEN_WIDTH}, "
                        f"not {burst_len!r}")


def burst_layout(addr_width=ADDR_WIDTH):
    """Payload of `ar`/`aw`: byte address and number of beats minus one."""
    return data.StructLayout({"addr": addr_width, "len": LEN_WIDTH})


def read_beat_layout(data_width):
    """Payload of `r`: one data word and the flag of a burst's last beat."""
    return data.StructLayout({"data": data_width, "last": 1})


def write_beat_layout(data_width):
    """Payload of `w`: one data word, its byte strobes and the flag of a burst's last beat."""
    return data.StructLayout({"data": data_width, "strb": data_width // 8, "last": 1})


def command_layout(addr_width=ADDR_WIDTH):
    """Payload of a DMA command: byte address (word aligned) and length in bytes."""
    return data.StructLayout({"addr": addr_width, "length": COUNT_WIDTH})


class ReadPortSignature(wiring.Signature):
    """Master side of a burst read port (`ar` out, `r` in).

    >>> ReadPortSignature(64).data_width
    64
    """

    def __init__(self, data_width, addr_width=ADDR_WIDTH):
        _check_data_width(data_width)
        self.data_width, self.addr_width = data_width, addr_width
        super().__init__({
            "ar": Out(stream.Signature(burst_layout(addr_width))),
            "r": In(stream.Signature(read_beat_layout(data_width))),
        })

    def __eq__(self, other):
        return (type(other) is ReadPortSignature and other.data_width == self.data_width
                and other.addr_width == self.addr_width)

    def __repr__(self):
        return f"ReadPortSignature({self.data_width}, {self.addr_width})"


class WritePortSignature(wiring.Signature):
    """Master side of a burst write port (`aw` and `w` out, `b` in).

    >>> write_beat_layout(64).size
    73
    """

    def __init__(self, data_width, addr_width=ADDR_WIDTH):
        _check_data_width(data_width)
        self.data_width, self.addr_width = data_width, addr_width
        super().__init__({
            "aw": Out(stream.Signature(burst_layout(addr_width))),
            "w": Out(stream.Signature(write_beat_layout(data_width))),
            "b": In(stream.Signature(2)),
        })

    def __eq__(self, other):
        return (type(other) is WritePortSignature and other.data_width == self.data_width
                and other.addr_width == self.addr_width)

    def __repr__(self):
        return f"WritePortSignature({self.data_width}, {self.addr_width})"


class _BurstSplitter:
    """Word address and words left of a transfer, cut into bursts at burst boundaries."""

    def __init__(self, m, data_width, burst_len, addr_width, name):
        self.word_shift = (data_width // 8).bit_length() - 1
        self.addr = Signal(addr_width - self.word_shift, name=f"{name}_word_addr")
        self.left = Signal(COUNT_WIDTH + 1, name=f"{name}_words_left")
        in_burst = self.addr[:(burst_len - 1).bit_length()] if burst_len > 1 else Const(0, 1)
        to_boundary = Signal(LEN_WIDTH + 1, name=f"{name}_to_boundary")
        m.d.comb += to_boundary.eq(burst_len - in_burst)
        self.beats = Signal(LEN_WIDTH + 1, name=f"{name}_beats")
        m.d.comb += self.beats.eq(Mux(self.left < to_boundary, self.left, to_boundary))
        self.last_of_burst = (self.left == 1) | (to_boundary == 1)

    def words(self, length):
        word_bytes = 1 << self.word_shift
        return (length + word_bytes - 1) >> self.word_shift

    def load(self, m, command):
        m.d.sync += [self.addr.eq(command.addr >> self.word_shift),
                     self.left.eq(self.words(command.length))]

    def advance(self, m, beats):
        m.d.sync += [self.addr.eq(self.addr + beats), self.left.eq(self.left - beats)]


class DMAReader(wiring.Component):
    """Reads `length` bytes from byte address `addr` (word aligned) into the `data` stream.

    Commands are accepted on `cmd` once the previous command's bursts have all been requested,
    so transfers follow each other without a gap; `busy` is high until every beat of every
    accepted command has left on `data`. A length that is not a multiple of the word size is
    rounded up to whole words. Many bursts may be outstanding: the memory decides how many.
    """

    def __init__(self, data_width, burst_len, addr_width=ADDR_WIDTH):
        _check_data_width(data_width)
        _check_burst_len(burst_len)
        self.data_width, self.burst_len, self.addr_width = data_width, burst_len, addr_width
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_width))),
            "mem": Out(ReadPortSignature(data_width, addr_width)),
            "data": Out(stream.Signature(data_width)),
            "busy": Out(1),
        })

    @classmethod
    def from_config(cls, config):
        return cls(config.ddr_width_bits, config.burst_len)

    def elaborate(self, platform):
        m = Module()
        issue = _BurstSplitter(m, self.data_width, self.burst_len, self.addr_width, "issue")
        receive_left = Signal(COUNT_WIDTH + 1)
        ar, r = self.mem.ar, self.mem.r

        m.d.comb += [
            self.cmd.ready.eq(issue.left == 0),
            ar.valid.eq(issue.left != 0),
            ar.payload.addr.eq(issue.addr << issue.word_shift),
            ar.payload.len.eq(issue.beats - 1),
            self.data.valid.eq(r.valid),
            self.data.payload.eq(r.payload.data),
            r.ready.eq(self.data.ready),
            self.busy.eq((issue.left != 0) | (receive_left != 0)),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            issue.load(m, self.cmd.payload)
        with m.If(ar.valid & ar.ready):
            issue.advance(m, issue.beats)
        added = Mux(self.cmd.valid & self.cmd.ready, issue.words(self.cmd.payload.length), 0)
        m.d.sync += receive_left.eq(receive_left + added - (r.valid & r.ready))
        return m


class DMAWriter(wiring.Component):
    """Writes the `data` stream to `length` bytes at byte address `addr` (word aligned).

    The last word of a command is written with byte strobes covering only the bytes inside
    `length`. `busy` stays high until the memory has acknowledged every burst (`b`), so when it
    falls the data is in memory.
    """

    def __init__(self, data_width, burst_len, addr_width=ADDR_WIDTH):
        _check_data_width(data_width)
        _check_burst_len(burst_len)
        self.data_width, self.burst_len, self.addr_width = data_width, burst_len, addr_width
        super().__init__({
            "cmd": In(stream.Signature(command_layout(addr_width))),
            "data": In(stream.Signature(data_width)),
            "mem": Out(WritePortSignature(data_width, addr_width)),
            "busy": Out(1),
        })

    @classmethod
    def from_config(cls, config):
        return cls(config.ddr_width_bits, config.burst_len)

    def elaborate(self, platform):
        m = Module()
        args = (m, self.data_width, self.burst_len, self.addr_width)
        address = _BurstSplitter(*args, "aw")
        beats = _BurstSplitter(*args, "w")
        word_bytes = self.data_width // 8
        last_strb = Signal(word_bytes)
        awaiting_b = Signal(COUNT_WIDTH)
        aw, w, b = self.mem.aw, self.mem.w, self.mem.b

        accept = self.cmd.valid & self.cmd.ready
        m.d.comb += self.cmd.ready.eq((address.left == 0) & (beats.left == 0))
        with m.If(accept):
            address.load(m, self.cmd.payload)
            beats.load(m, self.cmd.payload)
            tail = self.cmd.payload.length[:word_bytes.bit_length() - 1]
            m.d.sync += last_strb.eq(Cat(*((tail == 0) | (i < tail) for i in range(word_bytes))))

        m.d.comb += [
            aw.valid.eq(address.left != 0),
            aw.payload.addr.eq(address.addr << address.word_shift),
            aw.payload.len.eq(address.beats - 1),
        ]
        with m.If(aw.valid & aw.ready):
            address.advance(m, address.beats)

        m.d.comb += [
            w.valid.eq(self.data.valid & (beats.left != 0)),
            self.data.ready.eq(w.ready & (beats.left != 0)),
            w.payload.data.eq(self.data.payload),
            w.payload.strb.eq(Mux(beats.left == 1, last_strb, (1 << word_bytes) - 1)),
            w.payload.last.eq(beats.last_of_burst),
        ]
        with m.If(w.valid & w.ready):
            beats.advance(m, 1)

        m.d.comb += b.ready.eq(1)
        m.d.sync += awaiting_b.eq(awaiting_b + (aw.valid & aw.ready) - (b.valid & b.ready))
        m.d.comb += self.busy.eq((address.left != 0) | (beats.left != 0) | (awaiting_b != 0))
        return m


class ReadArbiter(wiring.Component):
    """Shares one read port among `n` masters; bursts are granted round robin.

    The index of each granted burst enters an order FIFO (`max_outstanding` deep), and the
    memory's beats, which come back in request order, are routed to the master at its head.
    """

    def __init__(self, n, data_width, addr_width=ADDR_WIDTH, max_outstanding=16):
        if not isinstance(n, int) or n < 1:
            raise TypeError(f"Number of masters must be a positive integer, not {n!r}")
        self.n, self.max_outstanding = n, max_outstanding
        port = ReadPortSignature(data_width, addr_width)
        super().__init__({
            **{f"m{i}": In(port) for i in range(n)},
            "mem": Out(port),
        })

    def masters(self):
        return [getattr(self, f"m{i}") for i in range(self.n)]

    def elaborate(self, platform):
        m = Module()
        masters = self.masters()
        m.submodules.order = order = SyncFIFOBuffered(
            width=max(1, (self.n - 1).bit_length()), depth=self.max_outstanding)
        grant = _round_robin(m, [p.ar.valid for p in masters])
        chosen = Array(p.ar for p in masters)[grant.index]
        m.d.comb += [
            self.mem.ar.valid.eq(grant.any & order.w_rdy),
            self.mem.ar.payload.eq(chosen.payload),
            order.w_data.eq(grant.index),
            order.w_en.eq(self.mem.ar.valid & self.mem.ar.ready),
        ]
        for i, p in enumerate(masters):
            m.d.comb += p.ar.ready.eq(self.mem.ar.ready & order.w_rdy & (grant.index == i)
                                      & grant.any)
        owner = order.r_data
        ready = Array(p.r.ready for p in masters)[owner]
        for i, p in enumerate(masters):
            m.d.comb += [p.r.payload.eq(self.mem.r.payload),
                         p.r.valid.eq(self.mem.r.valid & order.r_rdy & (owner == i))]
        m.d.comb += [
            self.mem.r.ready.eq(order.r_rdy & ready),
            order.r_en.eq(self.mem.r.valid & self.mem.r.ready & self.mem.r.payload.last),
        ]
        with m.If(self.mem.ar.valid & self.mem.ar.ready):
            m.d.sync += grant.last.eq(grant.index)
        return m


class _Grant:
    def __init__(self, index, any_, last):
        self.index, self.any, self.last = index, any_, last


def _round_robin(m, requests):
    """Index of the first requester after the last granted one (combinational)."""
    n = len(requests)
    width = max(1, (n - 1).bit_length())
    last = Signal(width, init=n - 1)
    index = Signal(width)
    for offset in reversed(range(1, n + 1)):
        candidate = Signal(width)
        m.d.comb += candidate.eq(Mux(last + offset >= n, last + offset - n, last + offset))
        with m.If(Array(requests)[candidate]):
            m.d.comb += index.eq(candidate)
    return _Grant(index, Cat(*requests).any(), last)


class AXI4Signature(wiring.Signature):
    """An AXI4 master interface (IHI 0022), the signals named as in the specification."""

    def __init__(self, data_width, addr_width=ADDR_WIDTH, id_width=1):
        _check_data_width(data_width)
        self.data_width, self.addr_width = data_width, addr_width
        address = {"id": id_width, "addr": addr_width, "len": LEN_WIDTH, "size": 3,
                   "burst": 2, "lock": 1, "cache": 4, "prot": 3}
        members = {}
        for channel in ("aw", "ar"):
            members.update({f"{channel}{k}": Out(v) for k, v in address.items()})
            members[f"{channel}valid"], members[f"{channel}ready"] = Out(1), In(1)
        members.update({"wdata": Out(data_width), "wstrb": Out(data_width // 8),
                        "wlast": Out(1), "wvalid": Out(1), "wready": In(1),
                        "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
                        "rid": In(id_width), "rdata": In(data_width), "rresp": In(2),
                        "rlast": In(1), "rvalid": In(1), "rready": Out(1)})
        super().__init__(members)


class AXI4Master(wiring.Component):
    """Turns a read port and a write port into one AXI4 master: renaming, and constants for
    the fields our ports do not carry (ID 0, full-width INCR bursts, normal non-cacheable
    bufferable memory, unprivileged secure data access)."""

    BURST_INCR, CACHE_BUFFERABLE = 0b01, 0b0011

    def __init__(self, data_width, addr_width=ADDR_WIDTH):
        self.data_width = data_width
        super().__init__({
            "rd": In(ReadPortSignature(data_width, addr_width)),
            "wr": In(WritePortSignature(data_width, addr_width)),
            "axi": Out(AXI4Signature(data_width, addr_width)),
        })

    def elaborate(self, platform):
        m = Module()
        axi, rd, wr = self.axi, self.rd, self.wr
        size = (self.data_width // 8).bit_length() - 1
        for prefix, request in (("ar", rd.ar), ("aw", wr.aw)):
            signals = {name: getattr(axi, prefix + name)
                       for name in ("addr", "len", "size", "burst", "cache", "valid", "ready")}
            m.d.comb += [
                signals["addr"].eq(request.payload.addr), signals["len"].eq(request.payload.len),
                signals["size"].eq(size), signals["burst"].eq(self.BURST_INCR),
                signals["cache"].eq(self.CACHE_BUFFERABLE), signals["valid"].eq(request.valid),
                request.ready.eq(signals["ready"]),
            ]
        m.d.comb += [
            axi.wdata.eq(wr.w.payload.data), axi.wstrb.eq(wr.w.payload.strb),
            axi.wlast.eq(wr.w.payload.last), axi.wvalid.eq(wr.w.valid), wr.w.ready.eq(axi.wready),
            wr.b.payload.eq(axi.bresp), wr.b.valid.eq(axi.bvalid), axi.bready.eq(wr.b.ready),
            rd.r.payload.data.eq(axi.rdata), rd.r.payload.last.eq(axi.rlast),
            rd.r.valid.eq(axi.rvalid), axi.rready.eq(rd.r.ready),
        ]
        return m
