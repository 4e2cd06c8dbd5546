"""The vector unit: pooling, residual add, upsample, activations and the requantizing copy of
a concat input, L lanes (one memory word) at a time, out of DDR (docs/vector_unit.md).

    walker --commands--> DMAReader --words--> pre (LaneRescaler, per input) --> window reducer
           --tags------> tag FIFO  --------^                (max or sum)
    --> post (PostProcessor: requantize, activate, saturate) --> lane mask --> FIFO --> DMAWriter

A `start` fetches the descriptor (`hw.vector_program.VectorDescriptor`) at `desc_addr`, then
the walker issues one read command per window row and a parameter record per channel block;
the output region is one write command. `done` pulses when the last write is acknowledged.

>>> unit = VectorUnit(HardwareConfig(tm=4, tn=4, tr=4, tc=4, ddr_width_bits=32))
>>> unit.rd.signature.data_width
32
"""

from dataclasses import replace
from types import SimpleNamespace

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig
from fpgacnn.hw import postproc
from fpgacnn.hw.memport import DMAReader, DMAWriter, ReadPortSignature, WritePortSignature
from fpgacnn.hw.program import check_config
from fpgacnn.hw.vec_rescale import LaneRescaler
from fpgacnn.hw.vec_rescale import LATENCY as RESCALE_LATENCY
from fpgacnn.hw.vec_walker import TAG, WindowWalker
from fpgacnn.hw.vector_program import MAXPOOL, PARAM_ROWS, VECTOR_BITS, record_bytes, vector_layout

STATES = ("IDLE", "FETCH_CMD", "FETCH", "WRITE_CMD", "RUN", "DONE")
PIPELINE = RESCALE_LATENCY + 1 + postproc.LATENCY   # from a read word to its window's result
DRAIN_CYCLES = PIPELINE + 3             # before a block's parameters replace the last ones
OUT_DEPTH = 32                          # output FIFO; words are read only while it has room
                                        # for every window still in the pipeline


class VectorUnit(wiring.Component):
    """Runs one VectorDescriptor per `start`; `state`, `block`, `row` say where it is."""

    def __init__(self, config: HardwareConfig):
        check_config(config)
        self.config = config
        super().__init__({
            "start": In(1), "desc_addr": In(32),
            "busy": Out(1), "done": Out(1),
            "state": Out(range(len(STATES))), "block": Out(10), "row": Out(12),
            "rd": Out(ReadPortSignature(config.ddr_width_bits)),
            "wr": Out(WritePortSignature(config.ddr_width_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, sub = self.config, m.submodules
        sub.reader = reader = DMAReader.from_config(cfg)
        sub.dma_writer = writer = DMAWriter.from_config(cfg)
        wiring.connect(m, wiring.flipped(self.rd), reader.mem)
        wiring.connect(m, wiring.flipped(self.wr), writer.mem)
        sub.walker = walker = WindowWalker(cfg)
        sub.tags = tags = SyncFIFOBuffered(width=TAG.size, depth=32)
        sub.out_fifo = out_fifo = SyncFIFOBuffered(width=cfg.ddr_width_bits, depth=OUT_DEPTH)
        sub.pre = pre = LaneRescaler(cfg.tn)
        sub.post = post = postproc.PostProcessor(replace(cfg, tm=cfg.tn))
        desc = Signal(vector_layout())
        m.d.comb += [walker.desc.eq(desc), self.block.eq(walker.block), self.row.eq(walker.row)]
        drain = Signal(range(DRAIN_CYCLES + 1))
        fetching = Signal()
        idle = ~walker.busy & (tags.level == 0) & (drain == 0) & (out_fifo.level == 0) \
            & ~reader.busy
        self._control(m, desc, reader, writer, walker, fetching, idle)
        self._issue(m, reader, walker, tags, fetching)
        words = self._receive(m, desc, reader, tags, out_fifo, drain, fetching)
        self._datapath(m, desc, reader, words, pre, post, out_fifo)
        m.d.comb += [writer.data.payload.eq(out_fifo.r_data),
                     writer.data.valid.eq(out_fifo.r_rdy), out_fifo.r_en.eq(writer.data.ready)]
        return m

    def _control(self, m, desc, reader, writer, walker, fetching, idle):
        """Descriptor fetch, the output's write command, the walk, and the end of the run."""
        width = self.config.ddr_width_bits
        beats = -(-VECTOR_BITS // width)
        gathered = Signal(beats * width)
        count = Signal(range(beats + 1))
        new_gathered = Cat(gathered[width:], reader.data.payload) if beats > 1 \
            else reader.data.payload
        m.d.comb += [self.busy.eq(self.state != STATES.index("IDLE")),
                     writer.cmd.payload.addr.eq(desc.out_addr),
                     writer.cmd.payload.length.eq(desc.out_bytes)]
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += count.eq(0)
                    m.next = "FETCH_CMD"
            with m.State("FETCH_CMD"):
                m.d.comb += [fetching.eq(1), reader.cmd.valid.eq(1),
                             reader.cmd.payload.addr.eq(self.desc_addr),
                             reader.cmd.payload.length.eq(beats * width // 8)]
                with m.If(reader.cmd.ready):
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [fetching.eq(1), reader.data.ready.eq(1)]
                with m.If(reader.data.valid):
                    m.d.sync += [gathered.eq(new_gathered), count.eq(count + 1)]
                    with m.If(count == beats - 1):
                        m.d.sync += desc.as_value().eq(new_gathered[:VECTOR_BITS])
                        m.next = "WRITE_CMD"
            with m.State("WRITE_CMD"):
                m.d.comb += writer.cmd.valid.eq(1)
                with m.If(writer.cmd.ready):
                    m.d.comb += walker.start.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(idle & ~writer.busy):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        for i, name in enumerate(STATES):
            with m.If(fsm.ongoing(name)):
                m.d.comb += self.state.eq(i)

    def _issue(self, m, reader, walker, tags, fetching):
        """The walker's commands go to the reader and their tags to the FIFO, together."""
        go = ~fetching & tags.w_rdy
        with m.If(~fetching):
            m.d.comb += [reader.cmd.payload.addr.eq(walker.cmd.payload.addr),
                         reader.cmd.payload.length.eq(walker.cmd.payload.length),
                         reader.cmd.valid.eq(walker.cmd.valid & go)]
        m.d.comb += [walker.cmd.ready.eq(reader.cmd.ready & go),
                     tags.w_en.eq(walker.cmd.valid & walker.cmd.ready),
                     tags.w_data.eq(walker.cmd.payload.tag)]

    def _receive(self, m, desc, reader, tags, out_fifo, drain, fetching):
        """Words back from memory: parameter records into `params`, data words on `beat`
        with their window flags `first`/`last` and input `k`; `block_start` marks the end of
        a parameter record."""
        cfg = self.config
        width = cfg.ddr_width_bits
        record_words = record_bytes(cfg) * 8 // width
        params = Signal(record_words * width)
        head = TAG(tags.r_data)
        count = Signal(13)
        room = out_fifo.level < OUT_DEPTH - PIPELINE - 3
        accept = tags.r_rdy & Mux(head.param, drain == 0, room)
        # a word of a copy goes down the pipeline repeat_w times (upsample), then is taken
        repeat = Signal(4)
        taken = head.param | ~head.each | (repeat == desc.repeat_w - 1)
        with m.If(~fetching):
            m.d.comb += reader.data.ready.eq(accept & taken)
        offered = reader.data.valid & accept & ~fetching
        got = offered & taken
        end = count == head.beats - 1
        beat = Signal()
        m.d.comb += [tags.r_en.eq(got & end), beat.eq(offered & ~head.param)]
        with m.If(beat):
            m.d.sync += repeat.eq(Mux(taken, 0, repeat + 1))
        with m.If(got):
            m.d.sync += count.eq(Mux(end, 0, count + 1))
        with m.If(got & head.param):
            gathered = Cat(params[width:], reader.data.payload) if record_words > 1 \
                else reader.data.payload
            m.d.sync += params.eq(gathered)
        with m.If(beat):
            m.d.sync += drain.eq(DRAIN_CYCLES)
        with m.Elif(drain != 0):
            m.d.sync += drain.eq(drain - 1)
        return SimpleNamespace(params=params, beat=beat, k=head.k,
                               first=head.each | (head.first & (count == 0)),
                               last=head.each | (head.last & end),
                               block_start=got & head.param & end)

    def _datapath(self, m, desc, reader, words, pre, post, out_fifo):
        cfg = self.config
        params, k = words.params, words.k
        l, act = cfg.tn, cfg.act_bits

        def row(name, lane):
            index = PARAM_ROWS.index(name) * l + lane
            return params[index * 32:(index + 1) * 32].as_signed()

        for lane in range(l):
            bits = reader.data.payload[lane * act:(lane + 1) * act]
            value = Mux(Mux(k, desc.in_signed1, desc.in_signed0), bits.as_signed(),
                        bits.as_unsigned())
            m.d.comb += [
                pre.x[lane].eq(value - Mux(k, desc.in_zero1, desc.in_zero0)),
                pre.multiplier[lane].eq(Mux(k, row("pre_multiplier1", lane),
                                            row("pre_multiplier0", lane))),
                pre.shift[lane].eq(Mux(k, row("pre_shift1", lane), row("pre_shift0", lane))),
                post.bias[lane].eq(0),
                post.multiplier[lane].eq(row("post_multiplier", lane)),
                post.shift[lane].eq(row("post_shift", lane)),
                post.slope[lane].eq(row("slope", lane))]
        m.d.comb += [pre.valid.eq(words.beat), pre.mode.eq(desc.pre_mode),
                     pre.rounding.eq(desc.pre_rounding),
                     post.pool_first.eq(1), post.pool_last.eq(1)]
        for name in ("act_rounding", "act", "act_shift", "out_zero", "out_lo", "out_hi"):
            m.d.comb += getattr(post, name).eq(getattr(desc, name))
        m.d.comb += [post.mode.eq(desc.post_mode), post.rq_rounding.eq(desc.post_rounding)]
        self._reduce(m, desc, pre, post, words.first, words.last)
        self._pack(m, desc, post, out_fifo, words.block_start)

    def _reduce(self, m, desc, pre, post, first, last):
        """Max or sum of each window's pre-stage results, one window result per `last`."""
        flags = [Cat(first, last)]
        for i in range(RESCALE_LATENCY):
            delayed = Signal(2, name=f"flags_{i + 1}")
            m.d.sync += delayed.eq(flags[-1])
            flags.append(delayed)
        first_d, last_d = flags[-1][0], flags[-1][1]
        is_max = desc.op == MAXPOOL
        for lane in range(self.config.tn):
            total = Signal.like(post.acc[lane], name=f"window_{lane}")
            value = pre.out[lane]
            with m.If(pre.out_valid):
                m.d.sync += total.eq(Mux(first_d, value, Mux(is_max, Mux(value > total, value,
                                                                          total),
                                                             total + value)))
            m.d.comb += post.acc[lane].eq(total)
        m.d.sync += post.valid.eq(pre.out_valid & last_d)

    def _pack(self, m, desc, post, out_fifo, block_start):
        """Finished words into the output FIFO; lanes beyond the real channels are 0."""
        l, act = self.config.tn, self.config.act_bits
        base = Signal(14)
        seen = Signal()
        with m.If(self.start):
            m.d.sync += seen.eq(0)
        with m.If(block_start):
            m.d.sync += [seen.eq(1), base.eq(Mux(seen, base + l, 0))]
        lanes = [Mux(base + lane < desc.channels, post.out[lane][:act], 0) for lane in range(l)]
        m.d.comb += [out_fifo.w_en.eq(post.out_valid), out_fifo.w_data.eq(Cat(*lanes))]
