"""The engine top-level: controller, loader, buffers, expansion, MAC array, post-processing
and writer, wired to one burst read port and one burst write port (hw/memport.py).

Flow of a layer (docs/engine.md): the controller fetches the descriptor at `desc_addr`; the
step sequencer hands each step to the loader, which fills the free bank of the ping-pong
input/weight/parameter buffers; the compute side walks the full bank with the expansion unit
and feeds the MAC array; partial sums of a tile accumulate in the accumulator buffer; on an
output block's last input block they go through post-processing into the ping-pong staging
buffer, from which the writer stores the tile. Loading, computing and writing overlap.

>>> engine = Engine(HardwareConfig(tm=4, tn=4, tr=4, tc=4, ddr_width_bits=32))
>>> engine.rd.signature.data_width
32
"""

from amaranth import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig
from fpgacnn.hw import pe_array, postproc
from fpgacnn.hw.buffers import AccumulatorBuffer, input_buffer, staging_buffer, weight_buffer
from fpgacnn.hw.controller import STEP, StepSequencer
from fpgacnn.hw.expand import Expander
from fpgacnn.hw.loader import Loader, params_layout
from fpgacnn.hw.memport import DMAReader, DMAWriter, ReadPortSignature, WritePortSignature
from fpgacnn.hw.program import (DESCRIPTOR_BITS, DESCRIPTOR_STRIDE, check_config,
                                descriptor_layout)
from fpgacnn.hw.writer import TILE, OutputWriter
from fpgacnn.plan.engine import Timing

# cycles from the expansion unit's last output to the last result in the staging buffer
DRAIN_CYCLES = 1 + pe_array.LATENCY + 2 + postproc.LATENCY + 2


def timing() -> Timing:
    """The engine's fixed costs in cycles, as the planner's cycle model counts them.

    From the state machines below: the descriptor fetch takes a cycle to start, one from
    command to burst and one (START) to hand the layer to the sequencer; a step's load one
    from `go` to its first command, one to its first burst and one after its last word
    (`was_busy`); a step's compute one to see the expander stop and one to start the next
    (RUN, WAIT); an output block's last step the DRAIN state; a written row the writer's CMD,
    its first staging read and NEXT; the end FLUSH -> IDLE, RUN -> DONE and DONE -> IDLE.
    """
    return Timing(fetch=3, descriptor_bytes=-(-DESCRIPTOR_BITS // 8), load=3, step=2,
                  drain=DRAIN_CYCLES + 1, write_row=3, write_end=3)

STATES = ("IDLE", "FETCH_CMD", "FETCH", "START", "RUN", "DONE")


class Engine(wiring.Component):
    """The layer-serial engine; `start` runs the program whose first descriptor is at
    `desc_addr` until a descriptor marked `last`, then raises `done`.

    `state`, `layer`, `tile_r`, `tile_c`, `mb`, `nb` say where the controller is.
    """

    def __init__(self, config: HardwareConfig):
        check_config(config)
        self.config = config
        super().__init__({
            "start": In(1), "desc_addr": In(32),
            "busy": Out(1), "done": Out(1),
            "state": Out(range(len(STATES))), "layer": Out(16),
            "tile_r": Out(12), "tile_c": Out(12), "mb": Out(10), "nb": Out(10),
            "rd": Out(ReadPortSignature(config.ddr_width_bits)),
            "wr": Out(WritePortSignature(config.ddr_width_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        sub = m.submodules
        sub.reader = reader = DMAReader.from_config(cfg)
        sub.dma_writer = dma_writer = DMAWriter.from_config(cfg)
        wiring.connect(m, wiring.flipped(self.rd), reader.mem)
        sub.sequencer = seq = StepSequencer(cfg)
        sub.loader = loader = Loader(cfg)
        sub.inputs = inputs = input_buffer(cfg)
        sub.weights = weights = weight_buffer(cfg)
        sub.staging = staging = staging_buffer(cfg)
        sub.accumulators = accs = AccumulatorBuffer(cfg)
        sub.expander = expander = Expander(cfg)
        sub.mac = mac = pe_array.MacArray(cfg, tag_bits=len(expander.seq) + 4)
        sub.post = post = postproc.PostProcessor(cfg)
        sub.writer = writer = OutputWriter(cfg)

        self.units = {"sequencer": seq, "loader": loader, "expander": expander,
                      "writer": writer, "dma_writer": dma_writer}     # for tests and tracing
        desc = Signal(descriptor_layout())
        for unit in (seq, loader, writer):
            m.d.comb += unit.desc.eq(desc)
        m.d.comb += [self.tile_r.eq(seq.tile_r), self.tile_c.eq(seq.tile_c),
                     self.mb.eq(seq.mb), self.nb.eq(seq.nb)]

        full = Signal(2)            # input/weight/parameter bank holds a loaded step
        staged = Signal(2)          # staging bank holds a finished tile
        compute_idle, writer_idle = Signal(), Signal()
        fetching, loading = Signal(), Signal()
        self._control(m, desc, reader, loader, seq, dma_writer, fetching,
                      idle=(full == 0) & (staged == 0) & compute_idle & writer_idle & ~loading)
        self._load(m, seq, loader, inputs, weights, full, fetching, loading)
        self._compute(m, desc, loader, inputs, weights, accs, expander, mac, post, staging,
                      writer, full, staged, compute_idle, writer_idle, dma_writer)
        return m

    def _control(self, m, desc, reader, loader, seq, dma_writer, fetching, idle):
        """Descriptor fetch and layer sequencing; the loader and the fetch share the reader.

        Loads and the write-back run at once: the memory alternates their words when both
        wait (docs/simulation.md), so neither starves the other.
        """
        width = self.config.ddr_width_bits
        beats = -(-DESCRIPTOR_BITS // width)
        gathered = Signal(beats * width)
        count = Signal(range(beats + 1))
        addr = Signal(32)
        with m.If(fetching):
            m.d.comb += [reader.cmd.payload.addr.eq(addr),
                         reader.cmd.payload.length.eq(beats * width // 8),
                         reader.data.ready.eq(1)]
        with m.Else():
            wiring.connect(m, loader.cmd, reader.cmd)
            wiring.connect(m, reader.data, loader.data)
        new_gathered = Cat(gathered[width:], reader.data.payload) if beats > 1 \
            else reader.data.payload
        m.d.comb += self.busy.eq(self.state != STATES.index("IDLE"))
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [addr.eq(self.desc_addr), self.layer.eq(0), count.eq(0)]
                    m.next = "FETCH_CMD"
            with m.State("FETCH_CMD"):
                m.d.comb += [fetching.eq(1), reader.cmd.valid.eq(1)]
                with m.If(reader.cmd.ready):
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += fetching.eq(1)
                with m.If(reader.data.valid):
                    m.d.sync += [gathered.eq(new_gathered), count.eq(count + 1)]
                    with m.If(count == beats - 1):
                        m.d.sync += [desc.as_value().eq(new_gathered[:DESCRIPTOR_BITS]),
                                     count.eq(0)]
                        m.next = "START"
            with m.State("START"):
                m.d.comb += seq.start.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(~seq.valid & ~loader.busy & idle & ~dma_writer.busy):
                    m.d.sync += [addr.eq(addr + DESCRIPTOR_STRIDE), self.layer.eq(self.layer + 1)]
                    m.next = "DONE"
                    with m.If(~desc.last):
                        m.next = "FETCH_CMD"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        for i, name in enumerate(STATES):
            with m.If(fsm.ongoing(name)):
                m.d.comb += self.state.eq(i)

    def _load(self, m, seq, loader, inputs, weights, full, fetching, loading):
        """Hand each step to the loader as soon as the next bank is free."""
        load_bank = Signal()
        self.meta = [Signal(STEP, name=f"step_meta_{b}") for b in range(2)]
        was_busy, busy_bank = Signal(), Signal()
        go = seq.valid & ~loader.busy & ~was_busy & ~full.bit_select(load_bank, 1) & ~fetching
        m.d.comb += [loader.go.eq(go), loader.bank.eq(load_bank), loader.step.eq(seq.step),
                     seq.next.eq(go)]
        with m.If(go):
            m.d.sync += [load_bank.eq(~load_bank), busy_bank.eq(load_bank)]
            for b in range(2):
                with m.If(load_bank == b):
                    m.d.sync += self.meta[b].eq(seq.step)
        m.d.sync += was_busy.eq(loader.busy | go)
        m.d.comb += loading.eq(loader.busy | was_busy)
        loaded = was_busy & ~loader.busy & ~go
        m.d.comb += [inputs.w_en.eq(loader.in_w_en), inputs.w_bank.eq(loader.in_w_bank),
                     inputs.w_addr.eq(loader.in_w_addr), inputs.w_data.eq(loader.in_w_data),
                     weights.w_en.eq(loader.wt_w_en), weights.w_bank.eq(loader.wt_w_bank),
                     weights.w_addr.eq(loader.wt_w_addr), weights.w_data.eq(loader.wt_w_data)]
        self.loaded, self.loaded_bank = loaded, busy_bank

    def _compute(self, m, desc, loader, inputs, weights, accs, expander, mac, post, staging,
                 writer, full, staged, compute_idle, writer_idle, dma_writer):
        cfg = self.config
        bank, stage_bank, write_bank = Signal(), Signal(), Signal()
        meta = Array(self.meta)[bank]
        release, finish = Signal(), Signal()
        set_full = Mux(self.loaded, 1 << self.loaded_bank, 0)
        clear_full = Mux(release, 1 << bank, 0)
        m.d.sync += full.eq((full | set_full) & ~clear_full)
        written = Signal()
        set_staged = Mux(finish, 1 << stage_bank, 0)
        clear_staged = Mux(written, 1 << write_bank, 0)
        m.d.sync += staged.eq((staged | set_staged) & ~clear_staged)

        active = Signal(params_layout(cfg))
        tile = Array([Signal(TILE, name=f"tile_meta_{b}") for b in range(2)])
        last_pass = Signal()
        drain = Signal(range(DRAIN_CYCLES + 1))
        geometry = ("th", "tw", "iy0", "ix0", "iy_lo", "ix_lo", "lw")
        for name in geometry:
            m.d.comb += getattr(expander, name).eq(getattr(meta, name))
        m.d.comb += [expander.kh.eq(desc.kernel_h), expander.kw.eq(desc.kernel_w),
                     expander.sh.eq(desc.stride_h), expander.sw.eq(desc.stride_w),
                     expander.pool.eq(desc.pool), expander.in_h.eq(desc.in_h),
                     expander.in_w.eq(desc.in_w)]
        with m.FSM() as fsm:
            with m.State("WAIT"):
                ready = full.bit_select(bank, 1) & ~(meta.last_pass
                                                     & staged.bit_select(stage_bank, 1))
                with m.If(ready):
                    m.d.comb += expander.start.eq(1)
                    m.d.sync += last_pass.eq(meta.last_pass)
                    with m.If(meta.last_pass):
                        m.d.sync += [active.eq(Mux(bank, loader.params1, loader.params0)),
                                     tile[stage_bank].out_ddr.eq(meta.out_ddr),
                                     tile[stage_bank].lane0.eq(meta.lane0),
                                     tile[stage_bank].rows.eq(Mux(desc.pool, meta.th >> 1,
                                                                  meta.th)),
                                     tile[stage_bank].cols.eq(Mux(desc.pool, meta.tw >> 1,
                                                                  meta.tw)),
                                     tile[stage_bank].channels.eq(meta.channels)]
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(~expander.busy):
                    m.d.comb += release.eq(1)
                    m.d.sync += [bank.eq(~bank), drain.eq(DRAIN_CYCLES)]
                    m.next = "DRAIN"
                    with m.If(~last_pass):
                        m.next = "WAIT"
            with m.State("DRAIN"):
                m.d.sync += drain.eq(drain - 1)
                with m.If(drain == 0):
                    m.d.comb += finish.eq(1)
                    m.d.sync += stage_bank.eq(~stage_bank)
                    m.next = "WAIT"
        m.d.comb += compute_idle.eq(fsm.ongoing("WAIT"))
        self._datapath(m, desc, inputs, weights, accs, expander, mac, post, staging, bank,
                       stage_bank, active, last_pass)
        self._writeback(m, writer, staging, tile, staged, write_bank, written, writer_idle,
                        dma_writer)

    def _datapath(self, m, desc, inputs, weights, accs, expander, mac, post, staging, bank,
                  stage_bank, active, last_pass):
        cfg = self.config
        q, l, act = cfg.tm, cfg.tn, cfg.act_bits
        m.d.comb += [inputs.r_en.eq(1), inputs.r_bank.eq(bank), inputs.r_addr.eq(expander.addr),
                     weights.r_en.eq(1), weights.r_bank.eq(bank), weights.r_addr.eq(expander.kk)]
        # one cycle for the buffer read; the flags wait beside it
        tag = Cat(expander.seq, Array(self.meta)[bank].first_pass, last_pass,
                  expander.pool_first, expander.pool_last)
        valid, first, last, pad = Signal(), Signal(), Signal(), Signal()
        tag_d = Signal(len(tag))
        m.d.sync += [valid.eq(expander.valid), first.eq(expander.first), last.eq(expander.last),
                     pad.eq(expander.pad), tag_d.eq(tag)]
        raw = inputs.r_data
        for i in range(l):
            value = raw[i * act:(i + 1) * act]
            value = Mux(desc.in_signed, value.as_signed(), value.as_unsigned())
            m.d.comb += mac.x[i].eq(Mux(pad, 0, value - desc.in_zero))
        for i in range(q * l):
            bits = weights.r_data[i * cfg.weight_bits:(i + 1) * cfg.weight_bits]
            m.d.comb += mac.w[i].eq(bits.as_signed())
        seq_bits = len(expander.seq)
        m.d.comb += [mac.valid.eq(valid), mac.first.eq(first), mac.last.eq(last),
                     mac.tag.eq(tag_d)]
        # accumulate across input blocks: read, add, write back (or on to post-processing)
        out_tag = mac.psum_tag
        m.d.comb += accs.r_addr.eq(out_tag[:seq_bits])
        psum = Signal.like(mac.psum)
        valid_a, tag_a = Signal(), Signal.like(out_tag)
        m.d.sync += [psum.eq(mac.psum), valid_a.eq(mac.psum_valid), tag_a.eq(out_tag)]
        is_first, is_last = tag_a[seq_bits], tag_a[seq_bits + 1]
        sums = []
        for row in range(q):
            previous = accs.r_data[row * cfg.acc_bits:(row + 1) * cfg.acc_bits].as_signed()
            sums.append((Mux(is_first, 0, previous) + psum[row])[:cfg.acc_bits])
        m.d.comb += [accs.w_en.eq(valid_a & ~is_last), accs.w_addr.eq(tag_a[:seq_bits]),
                     accs.w_data.eq(Cat(*sums))]
        m.d.comb += [post.valid.eq(valid_a & is_last), post.pool_first.eq(tag_a[seq_bits + 2]),
                     post.pool_last.eq(tag_a[seq_bits + 3])]
        for row in range(q):
            m.d.comb += [post.acc[row].eq(sums[row]), post.bias[row].eq(active[row]),
                         post.multiplier[row].eq(active[q + row]),
                         post.shift[row].eq(active[2 * q + row]),
                         post.slope[row].eq(active[3 * q + row])]
        for name in ("mode", "rq_rounding", "act_rounding", "act", "act_shift", "out_zero",
                     "out_lo", "out_hi"):
            m.d.comb += getattr(post, name).eq(getattr(desc, name))
        # finished pixels into the staging bank, in order
        out_index = Signal.like(staging.w_addr)
        with m.If(expander.start):
            m.d.sync += out_index.eq(0)
        with m.Elif(post.out_valid):
            m.d.sync += out_index.eq(out_index + 1)
        m.d.comb += [staging.w_en.eq(post.out_valid), staging.w_bank.eq(stage_bank),
                     staging.w_addr.eq(out_index),
                     staging.w_data.eq(Cat(*[post.out[r][:18] for r in range(q)]))]

    def _writeback(self, m, writer, staging, tile, staged, write_bank, written, writer_idle,
                   dma_writer):
        go = staged.bit_select(write_bank, 1) & ~writer.busy & ~written
        m.d.comb += [writer.go.eq(go), writer.bank.eq(write_bank), writer.tile.eq(tile[write_bank]),
                     staging.r_en.eq(writer.r_en), staging.r_bank.eq(writer.r_bank),
                     staging.r_addr.eq(writer.r_addr), writer.r_data.eq(staging.r_data),
                     writer.dma_busy.eq(dma_writer.busy), writer_idle.eq(~writer.busy)]
        wiring.connect(m, writer.cmd, dma_writer.cmd)
        wiring.connect(m, writer.data, dma_writer.data)
        self._write_port(m, writer, dma_writer)
        was_busy = Signal()
        m.d.sync += was_busy.eq(writer.busy)
        with m.If(was_busy & ~writer.busy):
            m.d.comb += written.eq(1)
            m.d.sync += write_bank.eq(~write_bank)

    def _write_port(self, m, writer, dma_writer):
        """The DMA writer's port, with the writer's byte strobes: a beat on `w` is the word
        on the writer's `data` (the DMA writer passes it through), whose lanes outside the
        tile must not be written (docs/engine.md, the writer)."""
        port, dma = self.wr, dma_writer.mem
        wiring.connect(m, wiring.flipped(port.aw), dma.aw)
        wiring.connect(m, wiring.flipped(port.b), dma.b)
        m.d.comb += [port.w.valid.eq(dma.w.valid), dma.w.ready.eq(port.w.ready),
                     port.w.payload.data.eq(dma.w.payload.data),
                     port.w.payload.last.eq(dma.w.payload.last),
                     port.w.payload.strb.eq(dma.w.payload.strb & writer.strb)]
