"""Cycle, traffic and roofline model of the layer-serial engine (seed 004, Zhang et al.).

The engine computes one layer at a time out of DDR. Loop nest per image and group (Zhang et
al.'s order, which the RTL engine follows): for each output tile of Tr rows x Tc columns and
Tm = Q output channels, for each block of Tn = L input channels (a step): load the input tile,
the padded Q x L weight block and, on the last block, the Q parameter records; then the Q x L
array spends one cycle per output pixel and kernel position; after the last step the tile is
drained into the staging buffer and written back while the next output block computes. Steps
are pipelined through two-bank (ping-pong) buffers: a step's load starts when the step before
starts computing, so a step costs the longer of its load and the compute before it. The
write-back shares the one DDR port with the loads, and the fixed costs of the RTL's state
machines are `Timing`. The formulas are written out in docs/planning.md ("The engine model");
`tests/test_sim_engine.py` holds the simulated engine to them within 3%.

Every function takes numpy arrays of tile sizes so that the explorer evaluates thousands of
designs at once; `plan_layers` is the one-design entry point.

>>> from fpgacnn.config import HardwareConfig
>>> from fpgacnn.plan.workload import zhang_alexnet
>>> cfg = HardwareConfig(tm=64, tn=7, act_bits=32, weight_bits=32)
>>> [p.compute_cycles for p in plan_layers(zhang_alexnet(), cfg).layers][:2]
[366025, 255150]
"""

from dataclasses import dataclass

import numpy as np

from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.plan.devices import load_device
from fpgacnn.plan.resources import EngineResources
from fpgacnn.plan.workload import Layer


PARAM_BYTES_PER_CHANNEL = 16    # bias, multiplier, shift and activation slope, int32 each


@dataclass(frozen=True)
class Timing:
    """The engine's fixed costs in cycles, besides transfers and pixels (docs/planning.md).

    The RTL derives the same figures from its pipelines (`fpgacnn.hw.engine.timing`); a test
    holds the two equal.
    """

    fetch: int = 3              # start to the first load, besides the descriptor's transfer
    descriptor_bytes: int = 78
    load: int = 3               # a step's load, from its start to the next one's, besides transfer
    step: int = 2               # a step's compute, start to next start, besides one cycle a pixel
    drain: int = 16             # after an output block's last step: to its tile in the staging
    write_row: int = 3          # per written row of a tile (one DMA command), besides its words
    write_end: int = 3          # from the last write response to the end of the run


ENGINE = Timing()


@dataclass(frozen=True)
class Memory:
    """The DDR port and word widths the model needs (from the hardware configuration).

    `word_bytes` is the port's word, `burst_len` its longest burst in words.
    """

    act_bits: int
    weight_bits: int
    acc_bits: int
    bytes_per_cycle: float
    latency: int
    word_bytes: int = 1
    burst_len: int = 256

    @classmethod
    def of(cls, config: HardwareConfig) -> "Memory":
        return cls(config.act_bits, config.weight_bits, config.acc_bits,
                   effective_bytes_per_cycle(config), config.ddr_latency,
                   config.ddr_width_bits // 8, config.burst_len)

    def beats(self, nbytes):
        return -(-nbytes // self.word_bytes)

    def data_cycles(self, beats):
        """Cycles the port needs for `beats` words in a row, one word a cycle at most; the
        first word is paid by the credit the memory saved while idle (docs/simulation.md)."""
        paced = np.ceil((beats - 1) * self.word_bytes / self.bytes_per_cycle).astype(np.int64)
        return np.maximum(beats, paced)

    def commands(self, count, beats):
        """Cycles to issue `count` commands of `beats` words each: one to accept, one a burst."""
        return count * (1 + -(-beats // self.burst_len))


def effective_bytes_per_cycle(config: HardwareConfig) -> float:
    """The sustained DDR rate, which the port (one word per cycle) also limits."""
    return min(config.ddr_bytes_per_cycle, config.ddr_width_bits / 8)


def _nbytes(words, bits):
    return -(-(words * bits) // 8)


def _classes(extent: int, tile):
    """Tile sizes and how many tiles of each: [(size, count), (size, count)] (arrays)."""
    tile = np.asarray(tile, dtype=np.int64)
    full = extent // tile
    rem = extent % tile
    edge = (np.where(rem > 0, rem, 1), (rem > 0).astype(np.int64))
    return [(np.minimum(tile, extent), full), edge]


def _pool_tile(tile, pool: int):
    """A fused pool needs whole windows per tile: round the tile down to a multiple."""
    tile = np.asarray(tile, dtype=np.int64)
    return tile if pool == 1 else np.maximum(tile // pool * pool, pool)


def _window(stride, kernel, dilation):
    """Input extent that `out` outputs read, padding included."""
    return lambda out: (out - 1) * stride + (kernel - 1) * dilation + 1


def _extents(out: int, full_out: int, tile, size: int, need):
    """Tile classes of one dimension: [(tiles' output extent, count, input extent loaded)].

    The first tile, the middle ones and the last are separate classes: the first does not
    read the padding before the image, the last what lies beyond it (`size`; 0: no padding).
    The padding before is taken as the larger half of what the `full_out` outputs need.
    """
    tile = np.minimum(np.asarray(tile, dtype=np.int64), out)
    full, rem = out // tile, out % tile
    count = full + (rem > 0)
    last = np.where(rem > 0, rem, tile)
    before = -(-max(0, need(full_out) - size) // 2) if size else 0
    after = max(0, need(out) - before - size) if size else 0
    single = count == 1
    return [(tile, np.ones_like(tile), need(tile) - before - np.where(single, after, 0)),
            (tile, np.maximum(full - 1 - ((rem == 0) & (count > 1)), 0), need(tile)),
            (last, (count > 1).astype(np.int64), need(last) - after)]


def _step_loads(mem, timing, lh, lw, w_beats, p_beats, row_bytes):
    """Words read by a step of `lh` x `lw` input pixels, and its load cycles without and with
    the output block's parameters (an output block's last step reads them).

    The loader sends one command per input row, then the weights', then the parameters';
    each costs a cycle and one per burst to issue, so the last command's words may come
    later than the port could bring them.
    """
    row_beats = mem.beats(lw * row_bytes)
    beats = lh * row_beats + w_beats
    rows = mem.commands(lh, row_beats)
    load = timing.load + mem.latency + np.maximum(mem.data_cycles(beats),
                                                  rows + mem.data_cycles(w_beats))
    load_p = timing.load + mem.latency + np.maximum(
        np.maximum(mem.data_cycles(beats + p_beats), rows + mem.data_cycles(w_beats + p_beats)),
        rows + mem.commands(1, w_beats) + mem.data_cycles(p_beats))
    return beats, load, load_p


def layer_cycles(layer: Layer, mem: Memory, tm, tn, tr, tc, timing: Timing = ENGINE):
    """(cycles, ddr_bytes) of one layer for arrays of tile sizes (broadcast together)."""
    tm, tn = (np.asarray(v, dtype=np.int64) for v in (tm, tn))
    pool = layer.pool
    tr, tc = _pool_tile(tr, pool), _pool_tile(tc, pool)
    row_bytes = _nbytes(tn, mem.act_bits)           # one pixel of L channels
    k = layer.kh * layer.kw
    w_beats = mem.beats(_nbytes(tm * tn * k, mem.weight_bits))
    p_beats = mem.beats(tm * PARAM_BYTES_PER_CHANNEL)
    in_blocks = -(-layer.n // tn)
    rows = _extents(layer.rows, layer.r, tr, layer.in_h, _window(layer.sh, layer.kh, layer.dh))
    cols = _extents(layer.cols, layer.c, tc, layer.in_w, _window(layer.sw, layer.kw, layer.dw))
    blocks = -(-layer.m // tm)
    planes, extra, last_planes = block_planes(layer.m, tm, tn)
    overhead = timing.load + mem.latency            # a load's cycles without read data
    chain, port, traffic = 0, 0, 0
    for i, (rr, nr, lh) in enumerate(rows):
        for j, (cc, nc, lw) in enumerate(cols):
            beats, load, load_p = _step_loads(mem, timing, lh, lw, w_beats, p_beats, row_bytes)
            comp = rr * cc * k + timing.step
            store, *own = _store(mem, timing, layer, rr, cc, planes, row_bytes)
            store_hi, *own_hi = _store(mem, timing, layer, rr, cc, planes + 1, row_bytes)
            previous = _previous_send(mem, timing, layer, rows, cols, i, j, last_planes,
                                      row_bytes)
            before = _previous_last_compute(rows, cols, i, j, k, timing)
            # the block before the previous tile's last: the write-back in flight while a
            # tile's first load runs when every block is one step
            penult = _is_extra(layer.m, tm, tn, blocks - 2)
            second_last = _previous_send(mem, timing, layer, rows, cols, i, j, planes + penult,
                                         row_bytes)[1]
            single = sum(count * _opening(load, load_p, in_blocks, before, words, overhead)
                         for count, words in _two_back(mem, timing, layer, rows, cols, i, j,
                                                       last_planes, row_bytes))
            opening = np.where(blocks == 1, single, nr * nc * _opening(
                load, load_p, in_blocks, before, second_last, overhead))
            chain = chain + opening + nr * nc * _tile_chain(
                load, load_p, comp, in_blocks, (blocks, extra, penult),
                (previous[1], own[1], own_hi[1]), overhead, timing)
            loads = (in_blocks - 1) * load + load_p
            reads = loads - in_blocks * overhead        # cycles with read data
            port = port + nr * nc * (_port(loads, reads, previous)
                                     + (blocks - 1 - extra) * _port(loads, reads, own)
                                     + extra * _port(loads, reads, own_hi))
            stores = ((blocks - 1 - extra) * store + extra * store_hi
                      + _store(mem, timing, layer, rr, cc, last_planes, row_bytes)[0])
            traffic = traffic + nr * nc * (blocks * (in_blocks * beats + p_beats) + stores)
    chain = chain + rows[2][0] * cols[2][0] * k + timing.step + timing.drain    # the last
    cycles = np.maximum(chain, port) + _ends(layer, mem, timing, rows, cols, last_planes,
                                             row_bytes)
    passes = layer.groups * layer.batch
    return passes * cycles, passes * (traffic * mem.word_bytes + timing.descriptor_bytes)


def block_planes(m: int, tm, tn):
    """Planes of L = `tn` channels that the output blocks of Q = `tm` channels write, one
    DMA command per plane and row (docs/engine.md, the writer): (planes of a block that
    starts at lane 0, how many of the first B - 1 blocks write one plane more, planes of
    the last block, which stops at the layer's last plane). Block k starts at channel k Q;
    over the first n blocks the planes sum to n + floor((n Q - 1) / L) - floor((n - 1) g / L)
    with g = gcd(Q, L) (docs/planning.md). Arrays of designs broadcast.

    >>> [int(v) for v in block_planes(20, 12, 8)]     # planes 0-1, then 1-2
    [2, 0, 2]
    >>> [int(v) for v in block_planes(12, 3, 4)]      # planes 0, 0-1, 1-2, then 2
    [1, 2, 1]
    """
    tm, tn = np.asarray(tm, dtype=np.int64), np.asarray(tn, dtype=np.int64)
    n = -(-m // tm) - 1
    at_lane_0 = -(-tm // tn)
    first_n = n + (n * tm - 1) // tn - (n - 1) * np.gcd(tm, tn) // tn
    return at_lane_0, first_n - n * at_lane_0, -(-m // tn) - n * tm // tn


def _store(mem, timing, layer, rr, cc, planes, row_bytes):
    """Words written for one output block of `planes` planes, the cycles the writer sends
    them in alone, and the cycles of those with a word on the port (the rest are its per-row
    costs)."""
    pool = layer.pool
    lines = planes * (rr // pool)                   # one DMA command per row and plane
    words = mem.beats((cc // pool) * row_bytes)
    data = lines * mem.data_cycles(words)
    return lines * words, data + lines * timing.write_row, data


def _stretched(load, words, overhead):
    """A load while `words` are written: the memory alternates them with its read words, at
    most one for each."""
    return load + np.minimum(words, load - overhead)


def _opening(load, load_p, in_blocks, before, words, overhead):
    """A tile's first pair: the previous tile's last compute (`before`) and this tile's first
    load, which `words` stretch when every block is one step (0 before the first tile)."""
    first = np.where(in_blocks == 1, _stretched(load_p, words, overhead), load)
    return np.maximum(before, first)


def _tile_chain(load, load_p, comp, in_blocks, blocks, written, overhead, timing):
    """What a tile adds to the chain of steps after its first load (`_opening`): the loader
    starts a step's load when the step before starts computing (two banks), so each step adds
    the longer of its load and the compute before it (docs/planning.md). `blocks` = (output
    blocks, how many of the first B - 1 write one plane more, whether block B - 2 does);
    `written` = the written words of the previous tile's last output block and of this tile's
    blocks (of the usual planes, of one more). A block's write-back starts when the next
    block's first compute does, with the load of the step after it (that block's second, or
    with one step a block, the next block's): the memory alternates the written words with
    that load's reads, at most one for each."""
    blocks, extra, penult = blocks
    previous, own, more = written
    one = in_blocks == 1
    # one step a block: block b's load is stretched by block b - 2's write-back; the last
    # block of the previous tile for b = 1, this tile's first B - 2 blocks for b >= 2
    switch = comp + timing.drain
    alone = np.maximum(blocks - 2, 0)
    more_1 = np.where(blocks >= 2, extra - penult, 0)
    single = (np.where(blocks >= 2, np.maximum(switch, _stretched(load_p, previous, overhead)), 0)
              + (alone - more_1) * np.maximum(switch, _stretched(load_p, own, overhead))
              + more_1 * np.maximum(switch, _stretched(load_p, more, overhead)))
    # several: a block's second load is stretched by the block before's write-back
    second = np.where(in_blocks == 2, load_p, load)
    tail = np.where(in_blocks >= 3, (in_blocks - 3) * np.maximum(comp, load)
                    + np.maximum(comp, load_p), 0)

    def inner(words):
        return np.maximum(comp, _stretched(second, words, overhead)) + tail

    several = ((blocks - 1) * np.maximum(switch, load) + inner(previous)
               + (blocks - 1 - extra) * inner(own) + extra * inner(more))
    return np.where(one, single, several)


def _port(loads, reads, write):
    """The port's work in an output block: its loads, the previous block's written words
    (`write` = (send, data) cycles), and the writer's per-row costs in the part of the
    write-back that no read data overlaps (reads fill those cycles while they last)."""
    send, data = write
    return loads + data + (send - data) * np.maximum(send - reads, 0) // np.maximum(send, 1)


def _previous_tile(rows, cols, i, j):
    """(rows, columns) of the tile before tile class (i, j)'s first tile (raster order; all
    but a row's last are full width), None before the first."""
    if j:
        return rows[i][0], cols[0][0]
    if i:
        return rows[0][0], cols[2][0]
    return None


def _previous_last_compute(rows, cols, i, j, k, timing):
    """The last compute (drain included) of the tile before tile class (i, j)'s first; 0
    before the first tile, whose first load starts the pass."""
    previous = _previous_tile(rows, cols, i, j)
    if previous is None:
        return 0
    return previous[0] * previous[1] * k + timing.step + timing.drain


def _previous_send(mem, timing, layer, rows, cols, i, j, last_planes, row_bytes):
    """(send, data) cycles of the write-back that runs while tile class (i, j)'s first output
    block computes: the previous tile's last block's."""
    previous = _previous_tile(rows, cols, i, j)
    if previous is None:
        return 0, 0
    return _store(mem, timing, layer, *previous, last_planes, row_bytes)[1:]


def _is_extra(m: int, tm, tn, block):
    """1 where output block `block` (one of the first B - 1) writes one plane more than a
    block that starts at lane 0, else 0 (also for a negative `block`)."""
    tm, tn = np.asarray(tm, dtype=np.int64), np.asarray(tn, dtype=np.int64)
    start = np.maximum(block, 0) * tm
    planes = (start + tm - 1) // tn - start // tn + 1
    return ((block >= 0) & (planes > -(-tm // tn))).astype(np.int64)


def _two_back(mem, timing, layer, rows, cols, i, j, last_planes, row_bytes):
    """[(tiles, words)]: the tiles of class (i, j), by the words the tile two before each
    writes (its last block: the write-back in flight during a tile's first load when each
    tile is one step; 0 words when there is none). Raster order: two columns back in the
    same band, or the previous band's last tile (column 1), or its last but one (column 0;
    with one column a tile, the band before it)."""
    nr, nc = rows[i][1], cols[j][1]
    nrows = rows[0][1] + rows[1][1] + rows[2][1]
    ncols = cols[0][1] + cols[1][1] + cols[2][1]

    def words(rr, cc):
        return _store(mem, timing, layer, rr, cc, last_planes, row_bytes)[2]

    full = words(rows[0][0], cols[0][0])
    same_band = words(rows[i][0], cols[0][0])
    band_end = 0 if i == 0 else words(rows[0][0], cols[2][0])      # from column 1
    if j == 0:
        if i == 0:
            return [(nr * nc, 0)]
        none = (ncols == 1) * (np.minimum(nr, 1) if i == 1 else nr * (nrows <= 2))
        return [(none, 0), (nr * nc - none, full)]
    if j == 1:
        return [(nr * np.minimum(nc, 1), band_end), (nr * np.maximum(nc - 1, 0), same_band)]
    return [(nr * nc, np.where(ncols >= 3, same_band, band_end))]


def _ends(layer, mem, timing, rows, cols, last_planes, row_bytes):
    """What the steps leave out: the descriptor fetch before them; the last write-back and
    its response latency after them."""
    fetch = timing.fetch + mem.latency + mem.data_cycles(mem.beats(timing.descriptor_bytes))
    write = _store(mem, timing, layer, rows[2][0], cols[2][0], last_planes, row_bytes)[1]
    return fetch + write + mem.latency + timing.write_end


def compute_cycles(layer: Layer, tm, tn):
    """Zhang et al.'s computational-roof cycles: ceil(M/Tm) ceil(N/Tn) R C K K per pass.

    With a fused pool, R and C are the rows and columns its windows cover.
    """
    tm = np.asarray(tm, dtype=np.int64)
    tn = np.asarray(tn, dtype=np.int64)
    per_pass = (-(-layer.m // tm) * -(-layer.n // tn) * layer.rows * layer.cols
                * layer.kh * layer.kw)
    return layer.groups * layer.batch * per_pass


@dataclass(frozen=True)
class LayerPlan:
    """One layer on the engine. Performance in GOPS at the configuration's clock."""

    name: str
    op: str
    macs: int
    ops: int
    compute_cycles: int
    cycles: int
    ddr_bytes: int
    ctc: float              # operations per DDR byte
    compute_roof: float     # GOPS if never waiting for memory
    attainable: float       # min(compute_roof, ctc * bandwidth)
    bound: str              # "compute" or "memory" (roofline)
    dsp: int
    bram18: int
    efficiency: float       # MACs / (cycles * Tm * Tn)


@dataclass(frozen=True)
class EnginePlan:
    config: HardwareConfig
    layers: tuple[LayerPlan, ...]
    dsp: int
    bram18: int
    resources: object          # the resource model (`fpgacnn.plan.resources`)

    @property
    def cycles(self) -> int:
        return sum(p.cycles for p in self.layers)

    @property
    def compute_cycles(self) -> int:
        return sum(p.compute_cycles for p in self.layers)


def bandwidth_gbps(config: HardwareConfig) -> float:
    return config.ddr_bytes_per_cycle * config.clock_mhz / 1e3


def plan_layer(layer: Layer, config: HardwareConfig, resources) -> LayerPlan:
    """The model's figures for one layer on the engine `config`; `dsp` and `bram18` from
    `resources` (`fpgacnn.plan.resources`), the buffers sized for this layer's window."""
    mem = Memory.of(config)
    tiles = (config.tm, config.tn, config.tr, config.tc)
    cycles, traffic = (int(v) for v in layer_cycles(layer, mem, *tiles))
    comp = int(compute_cycles(layer, config.tm, config.tn))
    ghz = config.clock_mhz / 1e3
    roof = layer.ops / comp * ghz
    ctc = layer.ops / traffic
    attainable = min(roof, ctc * bandwidth_gbps(config))
    dsp = int(resources.dsp(config, config.tm, config.tn))
    bram = int(resources.bram18(config, *tiles, max(layer.kh, layer.kw),
                                max(layer.sh, layer.sw)))
    return LayerPlan(layer.name, layer.kind, layer.macs, layer.ops, comp, cycles, traffic, ctc,
                     roof, attainable, "memory" if attainable < roof else "compute", dsp, bram,
                     layer.macs / (cycles * config.tm * config.tn))


def plan_layers(layers, config: HardwareConfig, resources=None) -> EnginePlan:
    """Plan GEMM-shaped layers on the engine: `Layer`s or `(name, op, input_shape)` triples.

    `resources` counts DSPs and RAMB18 (`fpgacnn.plan.resources`); by default the engine as
    generated, on the DSP type of `config.device`.
    """
    from fpgacnn.plan.workload import layers_from_list

    layers = [x if isinstance(x, Layer) else layers_from_list([x])[0] for x in layers]
    for layer in layers:
        check_window(layer, config)
    resources = resources or default_resources(config)
    plans = tuple(plan_layer(layer, config, resources) for layer in layers)
    dsp = int(resources.dsp(config, config.tm, config.tn))
    bram = int(resources.bram18(config, config.tm, config.tn, config.tr, config.tc,
                                config.max_kernel, config.max_stride))
    return EnginePlan(config, plans, dsp, bram, resources)


def default_resources(config: HardwareConfig):
    """The engine as generated, on the DSP slices of the configuration's device."""
    return EngineResources(load_device(config.device).dsp_type)


def check_window(layer: Layer, config: HardwareConfig) -> None:
    """The engine's buffers are sized for max_kernel and max_stride: a layer must fit them."""
    kernel, stride = max(layer.kh, layer.kw), max(layer.sh, layer.sw)
    if kernel > config.max_kernel or stride > config.max_stride:
        raise UserError(f"layer {layer.name}: kernel {kernel} and stride {stride} exceed the "
                        f"engine's max_kernel {config.max_kernel} / max_stride "
                        f"{config.max_stride}")


def total_cycles(layers, mem: Memory, tm, tn, tr, tc):
    """Sum of `layer_cycles` over layers for arrays of designs (the explorer's objective)."""
    return sum(layer_cycles(layer, mem, tm, tn, tr, tc)[0] for layer in layers)
