"""Cycle model of the vector unit (`fpgacnn.hw.vector`; docs/vector_unit.md, "Cycles").

A run fetches its descriptor, issues the output's one write command, then for each channel
block reads the block's parameter record and the block's words, one read command per window
row (a copy: per output row). Two rules of the memory model (`fpgacnn.sim.ddr`) set the pace:

- The output's write bursts are queued from the start of the run to its end, so whenever a
  read beat is due the memory gives reads and writes alternate turns: after each word the
  unit takes, the writes have a turn (`write_turn`), however wide the memory's budget.
- Reads and writes share `ddr_bytes_per_cycle`.

A block costs its parameter record, then the longest of: its reads at the turn rate (each word
held on the port while the unit takes it, `repeat_w` cycles for an upsample, then the writes'
turn), its reads and writes at the memory's rate, and (pools and adds below 2/3 of a word a
cycle) the pairs of turns its words wait for while the credit builds up. Between blocks the
pipeline drains before the next record is taken. The descriptor's, the first record's and
the last write response's latencies are paid once.

The input is the step's `fpgacnn.hw.vector_program.VectorDescriptor` (only its fields are
read: the planner does not import the hardware) and the HardwareConfig.

>>> from types import SimpleNamespace
>>> from fpgacnn.config import HardwareConfig
>>> pool = SimpleNamespace(op=0, two_inputs=0, kernel_h=2, kernel_w=2, step_h=2, step_w=2,
...                        repeat_h=1, repeat_w=1, pad_top=0, pad_left=0, in_h=16, in_w=16,
...                        out_h=8, out_w=8, blocks=2)          # 16 x 16 x 16, max pool 2x2/2
>>> vector_cycles(pool, HardwareConfig(tm=8, tn=8, ddr_latency=12))
1209
"""

from dataclasses import dataclass
from functools import lru_cache
from math import ceil

from fpgacnn.config import HardwareConfig


@dataclass(frozen=True)
class VectorTiming:
    """The vector unit's constants (cycles unless named otherwise).

    The first four are the RTL's (`tests/test_plan_vector.py` holds them equal to
    `fpgacnn.hw`'s), `write_turn` is the memory model's rule; `fixed` and `switch` were
    measured in Verilator, exact for every op, size and latency tried at one word a cycle.
    """

    descriptor_bits: int = 465      # hw.vector_program.VECTOR_BITS
    record_rows: int = 7            # len(hw.vector_program.PARAM_ROWS): L int32 each
    drain: int = 13                 # hw.vector.DRAIN_CYCLES: last word of a block to its
                                    # successor's record
    copy_op: int = 4                # hw.vector_program.COPY: reads whole rows
    write_turn: int = 1             # cycles between read words while write bursts are queued
    latencies: int = 3              # descriptor, first record, last write response
    fixed: int = 17                 # start, command hand-offs, pipeline, write-back, done
    switch: int = -1                # a block change costs the drain plus this


VECTOR = VectorTiming()


def word_bytes(config: HardwareConfig) -> int:
    return config.ddr_width_bits // 8


def memory_cycles_per_word(config: HardwareConfig) -> float:
    """Cycles the memory's shared budget needs for one word (read or written)."""
    return word_bytes(config) / config.ddr_bytes_per_cycle


def descriptor_words(config: HardwareConfig, timing: VectorTiming = VECTOR) -> int:
    return ceil(timing.descriptor_bits / config.ddr_width_bits)


def record_words(config: HardwareConfig, timing: VectorTiming = VECTOR) -> int:
    """Words of one block's parameter record: `record_rows` rows of L int32."""
    return ceil(timing.record_rows * config.tn * 4 / word_bytes(config))


def window_extent(kernel, step, repeat, pad, size, out) -> int:
    """Input indices read along one axis, summed over the outputs: each window of `kernel`
    starting at (o // repeat) * step - pad, clipped to [0, size)."""
    total = 0
    for o in range(out):
        start = (o // repeat) * step - pad
        total += min(start + kernel, size) - max(start, 0)
    return total


def block_reads(desc, timing: VectorTiming = VECTOR) -> int:
    """Words one channel block reads: every window row (both inputs of an add), or for a
    copy one whole input row per output row."""
    if desc.op == timing.copy_op:
        return desc.out_h * desc.in_w
    rows = window_extent(desc.kernel_h, desc.step_h, desc.repeat_h, desc.pad_top,
                         desc.in_h, desc.out_h)
    columns = window_extent(desc.kernel_w, desc.step_w, desc.repeat_w, desc.pad_left,
                            desc.in_w, desc.out_w)
    return rows * columns * (1 + desc.two_inputs)


def block_writes(desc) -> int:
    return desc.out_h * desc.out_w


def offered_cycles(desc, timing: VectorTiming = VECTOR) -> int:
    """Cycles a read word is held on the port: a copy sends it `repeat_w` times down the
    pipeline (upsample) and takes it with the last; every other op takes it at once."""
    return desc.repeat_w if desc.op == timing.copy_op else 1


def data_cycles(desc, config: HardwareConfig, timing: VectorTiming = VECTOR) -> float:
    """One block's words: the read turns, the memory's budget or the waiting turns, the
    slowest.

    Each read word is held `offered_cycles`, then the writes have their turn (`write_turn`)
    before the next word is presented."""
    reads = block_reads(desc, timing)
    turns = reads * (offered_cycles(desc, timing) + timing.write_turn)
    budget = (reads + block_writes(desc)) * memory_cycles_per_word(config)
    return max(turns, budget, waiting_turn_cycles(desc, config, timing))


def waiting_turn_cycles(desc, config: HardwareConfig, timing: VectorTiming = VECTOR) -> float:
    """Pools and adds, whose reads wait for their turns (their few writes never fill the
    output FIFO), below 2/3 of a word a cycle.

    A read takes `turn_pairs_per_read` pairs of turns (read, write). The credit is capped at
    `ddr_bytes_per_cycle` + one word, so a read, a write and the next read on successive
    turns need 3 * ddr_bytes_per_cycle >= 2 words; below that, the read turn after a write
    passes without credit: each write costs a pair too. (A copy's reads are held instead by
    its full output FIFO while the writes use every cycle's credit.)"""
    rate, word = config.ddr_bytes_per_cycle, word_bytes(config)
    if desc.op == timing.copy_op or 3 * rate >= 2 * word:
        return 0
    pair = 1 + timing.write_turn
    reads = block_reads(desc, timing) * turn_pairs_per_read(rate, word) * pair
    return reads + block_writes(desc) * pair


@lru_cache(maxsize=64)
def turn_pairs_per_read(rate: float, word: int, limit: int = 10_000) -> float:
    """Pairs of turns per word of reads that wait for their turns, no write between them.

    At each read turn the credit has gained 2 * `rate` since the last, capped at `rate` +
    `word`; a read needs `word` of it, else its turn passes. From a full credit, the turns
    repeat once the credit is full again. 1 from half a word a cycle up.

    >>> turn_pairs_per_read(3.0, 8)      # credit at the read turns: 11, 9, 7 (passes), 11
    1.5
    """
    cap = rate + word
    credit, pairs, reads = cap, 0, 0
    while pairs < limit:
        pairs += 1
        if credit >= word:
            credit -= word
            reads += 1
        credit = min(credit + 2 * rate, cap)
        if credit == cap:
            break
    return pairs / reads


def record_cycles(config: HardwareConfig, timing: VectorTiming = VECTOR) -> float:
    """One block's parameter record: its reads wait for their turns, or for the budget."""
    pairs = turn_pairs_per_read(config.ddr_bytes_per_cycle, word_bytes(config))
    per_word = max((1 + timing.write_turn) * pairs, memory_cycles_per_word(config))
    return record_words(config, timing) * per_word


def descriptor_cycles(config: HardwareConfig, timing: VectorTiming = VECTOR) -> float:
    """The descriptor's words, one a cycle at best (no write is queued yet)."""
    return descriptor_words(config, timing) * max(1.0, memory_cycles_per_word(config))


def vector_cycles(desc, config: HardwareConfig, timing: VectorTiming = VECTOR) -> int:
    """Cycles of one run of the vector unit on `desc`, from `start` to the end of `busy`."""
    once = (timing.fixed + timing.latencies * config.ddr_latency
            + descriptor_cycles(config, timing))
    per_block = record_cycles(config, timing) + data_cycles(desc, config, timing)
    switches = (desc.blocks - 1) * (timing.drain + timing.switch)
    return ceil(once + desc.blocks * per_block + switches)
