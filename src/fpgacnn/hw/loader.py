"""The loader: fills one bank of the input, weight and parameter buffers for a step.

It sends the DMA reader one command per loaded input row, one for the step's weights and,
on an output block's last step, one for its parameters, back to back, and routes the
returning beats in the same order: input rows to consecutive input-buffer words, weight beats
gathered into Q x L rows (one per kernel position), parameter beats into the bank's parameter
record (Q biases, multipliers, shifts and slopes, int32 each).
"""

from amaranth import Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.controller import STEP
from fpgacnn.hw.memport import command_layout
from fpgacnn.hw.program import (PARAMS_PER_CHANNEL, descriptor_layout, feature_row_bytes,
                                input_buffer_words, weight_buffer_words)


def params_layout(config: HardwareConfig):
    """One output block's parameters: bias[Q], multiplier[Q], shift[Q], slope[Q] (int32)."""
    return data.ArrayLayout(signed(32), PARAMS_PER_CHANNEL * config.tm)


class Loader(wiring.Component):
    """Loads `step` into bank `bank` after a `go` pulse; `busy` until every beat is stored.

    >>> Loader(HardwareConfig()).weight_beats
    16
    """

    def __init__(self, config: HardwareConfig):
        self.config = config
        width = config.ddr_width_bits
        weight_row = config.tm * config.tn * config.weight_bits
        self.weight_beats = weight_row // width
        self.param_beats = PARAMS_PER_CHANNEL * config.tm * 32 // width
        super().__init__({
            "desc": In(descriptor_layout()),
            "go": In(1), "bank": In(1), "step": In(STEP),
            "busy": Out(1),
            "cmd": Out(stream.Signature(command_layout())),
            "data": In(stream.Signature(width)),
            "in_w_en": Out(1), "in_w_bank": Out(1),
            "in_w_addr": Out(range(input_buffer_words(config))), "in_w_data": Out(width),
            "wt_w_en": Out(1), "wt_w_bank": Out(1),
            "wt_w_addr": Out(range(weight_buffer_words(config))), "wt_w_data": Out(weight_row),
            "params0": Out(params_layout(config)), "params1": Out(params_layout(config)),
        })

    def elaborate(self, platform):
        m = Module()
        width = self.config.ddr_width_bits
        row_shift = feature_row_bytes(self.config).bit_length() - 1
        step = Signal(STEP)
        bank = Signal()
        issuing, receiving = Signal(), Signal()
        m.d.comb += self.busy.eq(issuing | receiving)
        with m.If(self.go):
            m.d.sync += [step.eq(self.step), bank.eq(self.bank), issuing.eq(1),
                         receiving.eq(1)]
        self._issue(m, step, issuing, row_shift)
        self._receive(m, step, bank, receiving, width)
        return m

    def _issue(self, m, step, issuing, row_shift):
        """Commands: every loaded input row, the weights, then (last pass) the parameters."""
        d = self.desc
        phase = Signal(2)        # 0 input rows, 1 weights, 2 parameters
        row = Signal(13)
        row_addr = Signal(32)
        has_input = (self.step.lh != 0) & (self.step.lw != 0)
        with m.If(self.go):
            m.d.sync += [phase.eq(~has_input), row.eq(0), row_addr.eq(self.step.in_ddr)]
        cmd = self.cmd
        with m.Switch(phase):
            with m.Case(0):
                m.d.comb += [cmd.payload.addr.eq(row_addr),
                             cmd.payload.length.eq(step.lw << row_shift)]
            with m.Case(1):
                m.d.comb += [cmd.payload.addr.eq(step.w_ddr),
                             cmd.payload.length.eq(d.weight_block_bytes)]
            with m.Default():
                m.d.comb += [cmd.payload.addr.eq(step.p_ddr),
                             cmd.payload.length.eq(PARAMS_PER_CHANNEL * 4 * self.config.tm)]
        m.d.comb += cmd.valid.eq(issuing & ~self.go)
        with m.If(cmd.valid & cmd.ready):
            with m.Switch(phase):
                with m.Case(0):
                    m.d.sync += [row.eq(row + 1), row_addr.eq(row_addr + d.in_row_bytes)]
                    with m.If(row == step.lh - 1):
                        m.d.sync += phase.eq(1)
                with m.Case(1):
                    m.d.sync += phase.eq(2)
                    with m.If(~step.last_pass):
                        m.d.sync += issuing.eq(0)
                with m.Default():
                    m.d.sync += issuing.eq(0)

    def _receive(self, m, step, bank, receiving, width):
        """Beats in command order: input words, weight rows, the parameter record."""
        d = self.desc
        phase = Signal(2)
        col, row = Signal(13), Signal(13)
        in_addr = Signal.like(self.in_w_addr)
        beat = Signal(range(max(self.weight_beats, self.param_beats) + 1))
        kk = Signal.like(self.wt_w_addr)
        gather = Signal(len(self.wt_w_data) if self.weight_beats > 1 else 1)
        record = Signal(len(self.params0.as_value()))
        has_input = (self.step.lh != 0) & (self.step.lw != 0)
        with m.If(self.go):
            m.d.sync += [phase.eq(~has_input), col.eq(0), row.eq(0), in_addr.eq(0),
                         beat.eq(0), kk.eq(0)]
        m.d.comb += [self.data.ready.eq(receiving & ~self.go),
                     self.in_w_bank.eq(bank), self.wt_w_bank.eq(bank),
                     self.in_w_addr.eq(in_addr), self.in_w_data.eq(self.data.payload),
                     self.wt_w_addr.eq(kk)]
        if self.weight_beats > 1:
            m.d.comb += self.wt_w_data.eq(Cat(gather[width:], self.data.payload))
        else:
            m.d.comb += self.wt_w_data.eq(self.data.payload)
        params = [Signal.like(self.params0.as_value(), name=f"params_{b}") for b in range(2)]
        m.d.comb += [self.params0.eq(params[0]), self.params1.eq(params[1])]
        new_record = Cat(record[width:], self.data.payload) if self.param_beats > 1 \
            else self.data.payload
        with m.If(self.data.valid & self.data.ready):
            with m.Switch(phase):
                with m.Case(0):
                    m.d.comb += self.in_w_en.eq(1)
                    m.d.sync += [in_addr.eq(in_addr + 1), col.eq(col + 1)]
                    with m.If(col == step.lw - 1):
                        m.d.sync += [col.eq(0), row.eq(row + 1)]
                        with m.If(row == step.lh - 1):
                            m.d.sync += phase.eq(1)
                with m.Case(1):
                    m.d.sync += [gather.eq(self.wt_w_data), beat.eq(beat + 1)]
                    with m.If(beat == self.weight_beats - 1):
                        m.d.comb += self.wt_w_en.eq(1)
                        m.d.sync += [beat.eq(0), kk.eq(kk + 1)]
                        with m.If(kk == d.kernel_area - 1):
                            m.d.sync += phase.eq(2)
                            with m.If(~step.last_pass):
                                m.d.sync += receiving.eq(0)
                with m.Default():
                    m.d.sync += [record.eq(new_record), beat.eq(beat + 1)]
                    with m.If(beat == self.param_beats - 1):
                        m.d.sync += receiving.eq(0)
                        with m.If(bank):
                            m.d.sync += params[1].eq(new_record)
                        with m.Else():
                            m.d.sync += params[0].eq(new_record)
        return m
