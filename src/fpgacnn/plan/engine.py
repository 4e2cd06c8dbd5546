"""Cycle, traffic and roofline model of the layer-serial engine (seed 004, Zhang et al.).

The engine computes one layer at a time out of DDR. Loop nest per image and group (Zhang et
al.'s order): for each output tile of Tr rows x Tc columns and Tm output channels, for each
chunk of Tn input channels: load the input tile and the weight tile, then the Q x L = Tm x Tn
PE array spends one cycle per output pixel of the tile and kernel position. Edge tiles are
smaller (no padding cycles). The formulas, also written out in docs/planning.md:

    t_comp(rr, cc)          = rr * cc * Kh * Kw
    t_load(rr, cc, mm, nn)  = latency + ceil((in_bytes + w_bytes) / B)
    t_store(rr, cc, mm)     = latency + ceil(out_bytes / B)     (pooled: rr/2 x cc/2 pixels)
    B                       = min(ddr_bytes_per_cycle, ddr_width_bits / 8)
    steps(rr, cc, mm)       = sum over n-chunks of max(t_comp, t_load)   (input/weight ping-pong)
    port(rr, cc, mm)        = sum over n-chunks of t_load + t_store      (one DDR port)
    pass                    = t_load(first) + t_store(last)
                              + sum over output tiles of max(steps, port) (output ping-pong)
    cycles                  = groups * batch * pass
    compute_cycles          = groups * batch * ceil(M/Tm) * ceil(N/Tn) * R * C * Kh * Kw

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
from fpgacnn.plan.bram import bram18_count_array
from fpgacnn.plan.workload import Layer


@dataclass(frozen=True)
class Memory:
    """The DDR port and word widths the model needs (from the hardware configuration)."""

    act_bits: int
    weight_bits: int
    acc_bits: int
    bytes_per_cycle: float
    latency: int

    @classmethod
    def of(cls, config: HardwareConfig) -> "Memory":
        return cls(config.act_bits, config.weight_bits, config.acc_bits,
                   effective_bytes_per_cycle(config), config.ddr_latency)

    def transfer(self, nbytes):
        """Cycles to move `nbytes` (array) in one request."""
        return self.latency + np.ceil(nbytes / self.bytes_per_cycle).astype(np.int64)


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


def _first(extent, tile):
    return np.minimum(np.asarray(tile, dtype=np.int64), extent)


def _last(extent, tile):
    tile = np.asarray(tile, dtype=np.int64)
    rem = extent % tile
    return np.where(rem > 0, rem, np.minimum(tile, extent))


def _load_bytes(layer: Layer, mem: Memory, rr, cc, mm, nn):
    in_bytes = _nbytes(nn * layer.input_rows(rr) * layer.input_cols(cc), mem.act_bits)
    w_bytes = _nbytes(mm * nn * layer.kh * layer.kw, mem.weight_bits)
    return in_bytes + w_bytes


def _store_bytes(mem: Memory, rr, cc, mm):
    return _nbytes(mm * rr * cc, mem.act_bits)


def _pool_tile(tile, pool: int):
    """A fused pool needs whole windows per tile: round the tile down to a multiple."""
    tile = np.asarray(tile, dtype=np.int64)
    return tile if pool == 1 else np.maximum(tile // pool * pool, pool)


def layer_cycles(layer: Layer, mem: Memory, tm, tn, tr, tc):
    """(cycles, ddr_bytes) of one layer for arrays of tile sizes (broadcast together)."""
    cycles = 0
    traffic = 0
    pool = layer.pool
    tr, tc = _pool_tile(tr, pool), _pool_tile(tc, pool)
    m_classes, n_classes = _classes(layer.m, tm), _classes(layer.n, tn)
    for rr, nr in _classes(layer.rows, tr):
        rows = layer.input_rows(rr)
        for cc, nc in _classes(layer.cols, tc):
            comp = rr * cc * layer.kh * layer.kw
            pixels = rows * layer.input_cols(cc)
            for mm, nm in m_classes:
                tile, port = 0, 0
                count = nr * nc * nm
                for nn, nnum in n_classes:
                    load = _nbytes(nn * pixels, mem.act_bits) + _nbytes(
                        mm * nn * layer.kh * layer.kw, mem.weight_bits)
                    t_load = mem.transfer(load)
                    tile = tile + nnum * np.maximum(comp, t_load)
                    port = port + nnum * t_load
                    traffic = traffic + count * nnum * load
                store = _store_bytes(mem, rr // pool, cc // pool, mm)
                port = port + mem.transfer(store)
                cycles = cycles + count * np.maximum(tile, port)
                traffic = traffic + count * store
    first = mem.transfer(_load_bytes(layer, mem, _first(layer.rows, tr),
                                     _first(layer.cols, tc), _first(layer.m, tm),
                                     _first(layer.n, tn)))
    last = mem.transfer(_store_bytes(mem, _last(layer.rows, tr) // pool,
                                     _last(layer.cols, tc) // pool, _last(layer.m, tm)))
    passes = layer.groups * layer.batch
    return passes * (cycles + first + last), passes * traffic


def compute_cycles(layer: Layer, tm, tn):
    """Zhang et al.'s computational-roof cycles: ceil(M/Tm) ceil(N/Tn) R C K K per pass.

    With a fused pool, R and C are the rows and columns its windows cover.
    """
    tm = np.asarray(tm, dtype=np.int64)
    tn = np.asarray(tn, dtype=np.int64)
    per_pass = (-(-layer.m // tm) * -(-layer.n // tn) * layer.rows * layer.cols
                * layer.kh * layer.kw)
    return layer.groups * layer.batch * per_pass


def buffer_bram18(mem: Memory, tm, tn, tr, tc, max_kernel, max_stride):
    """RAMB18 units of the engine's ping-pong buffers for arrays of tile sizes.

    Input: Tn banks of act_bits words, ((Tr-1)S+K) x ((Tc-1)S+K) deep; weights: Tm banks of
    Tn*weight_bits-bit words, K*K deep; output: Tm banks of acc_bits words, Tr*Tc deep; each
    buffer twice (ping-pong).
    """
    tm, tn, tr, tc = (np.asarray(v, dtype=np.int64) for v in (tm, tn, tr, tc))
    in_depth = ((tr - 1) * max_stride + max_kernel) * ((tc - 1) * max_stride + max_kernel)
    return (bram18_count_array(mem.act_bits, in_depth, 2 * tn)
            + bram18_count_array(tn * mem.weight_bits, max_kernel * max_kernel, 2 * tm)
            + bram18_count_array(mem.acc_bits, tr * tc, 2 * tm))


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

    @property
    def cycles(self) -> int:
        return sum(p.cycles for p in self.layers)

    @property
    def compute_cycles(self) -> int:
        return sum(p.compute_cycles for p in self.layers)


def bandwidth_gbps(config: HardwareConfig) -> float:
    return config.ddr_bytes_per_cycle * config.clock_mhz / 1e3


def plan_layer(layer: Layer, config: HardwareConfig, dsp: int) -> LayerPlan:
    """The model's figures for one layer on the engine `config` with `dsp` DSP slices."""
    mem = Memory.of(config)
    tiles = (config.tm, config.tn, config.tr, config.tc)
    cycles, traffic = (int(v) for v in layer_cycles(layer, mem, *tiles))
    comp = int(compute_cycles(layer, config.tm, config.tn))
    ghz = config.clock_mhz / 1e3
    roof = layer.ops / comp * ghz
    ctc = layer.ops / traffic
    attainable = min(roof, ctc * bandwidth_gbps(config))
    bram = int(buffer_bram18(mem, *tiles, max(layer.kh, layer.kw), max(layer.sh, layer.sw)))
    return LayerPlan(layer.name, layer.kind, layer.macs, layer.ops, comp, cycles, traffic, ctc,
                     roof, attainable, "memory" if attainable < roof else "compute", dsp, bram,
                     layer.macs / (cycles * config.tm * config.tn))


def plan_layers(layers, config: HardwareConfig, per_mac=1) -> EnginePlan:
    """Plan GEMM-shaped layers on the engine: `Layer`s or `(name, op, input_shape)` triples.

    `per_mac` is the DSP cost of one MAC (`fpgacnn.plan.dsp.dsp_per_mac`).
    """
    from fpgacnn.plan.dsp import dsps_for_array
    from fpgacnn.plan.workload import layers_from_list

    layers = [x if isinstance(x, Layer) else layers_from_list([x])[0] for x in layers]
    for layer in layers:
        check_window(layer, config)
    dsp = dsps_for_array(config.tm * config.tn, per_mac)
    plans = tuple(plan_layer(layer, config, dsp) for layer in layers)
    bram = int(buffer_bram18(Memory.of(config), config.tm, config.tn, config.tr, config.tc,
                             config.max_kernel, config.max_stride))
    return EnginePlan(config, plans, dsp, bram)


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
