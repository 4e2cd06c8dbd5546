"""Design-space exploration of the engine: every distinct tiling under a DSP and BRAM budget.

The space is Tm x Tn x (Tr = Tc). Only tile sizes that are the smallest for some number of
chunks of some layer are candidates (`ceil(X / q)` for every layer extent X and q >= 1): any
other size computes in the same number of chunks as the candidate just below it, on more DSPs,
so the compute side of the search is exact. Designs are evaluated as numpy arrays, in order of
growing DSP count, and a design is skipped when its compute cycles alone are no better than
the best total already found with fewer DSPs: such a design is neither the fastest nor on the
Pareto front of DSPs against cycles, so the front and the optimum are those of the full space.

DSPs and RAMB18 are counted by a resource model (`fpgacnn.plan.resources`): by default the
engine as generated; Zhang et al.'s AlexNet design is found again with theirs (5 DSPs per fp32
MAC, the MAC array alone) and their VC707's bandwidth through a 1024-bit port:

>>> from fpgacnn.config import HardwareConfig
>>> from fpgacnn.plan.devices import load_device
>>> from fpgacnn.plan.resources import MacArrayResources
>>> from fpgacnn.plan.workload import zhang_alexnet
>>> cfg = HardwareConfig(act_bits=32, weight_bits=32, acc_bits=32, ddr_width_bits=1024,
...                      ddr_bytes_per_cycle=128.0)
>>> best = explore_engine(zhang_alexnet(), cfg, load_device("xc7vx485t"),
...                       MacArrayResources(per_mac=5), max_dsp=2240)
>>> best.config.tm, best.config.tn
(64, 7)
"""

from collections import Counter
from dataclasses import dataclass, replace
from math import ceil

import numpy as np

from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.plan.devices import Device
from fpgacnn.plan.engine import Memory, compute_cycles, layer_cycles
from fpgacnn.plan.resources import EngineResources

BATCH = 1 << 16


@dataclass(frozen=True)
class Design:
    tm: int
    tn: int
    tr: int
    tc: int
    dsp: int
    bram18: int
    cycles: int


@dataclass(frozen=True)
class Exploration:
    config: HardwareConfig          # the chosen design
    best: Design
    front: tuple[Design, ...]       # Pareto front: fewer DSPs <-> fewer cycles
    space: int                      # designs in the candidate space
    evaluated: int                  # designs considered one by one (BRAM check, then model)


def tile_candidates(extents) -> np.ndarray:
    """Every tile size that is the smallest giving some chunk count for some extent."""
    values = set()
    for x in set(extents):
        values.update(ceil(x / q) for q in range(1, x + 1))
    return np.array(sorted(values), dtype=np.int64)


def budgets(device: Device, max_dsp=None, max_bram18=None) -> tuple[int, int]:
    """The DSP and RAMB18 budget: the device's, or less when the user asks."""
    dsp = device.dsp if max_dsp is None else max_dsp
    bram = device.bram18 if max_bram18 is None else max_bram18
    for name, value, have in (("--max-dsp", dsp, device.dsp),
                              ("--max-bram18", bram, device.bram18)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"{name} must be a positive integer, got {value!r}")
        if value > have:
            raise UserError(f"{name} {value} exceeds {device.name}'s {have}")
    return dsp, bram


def _pairs(layers, mem, resources, max_dsp, config, fixed, buildable=False):
    tm = np.array([config.tm]) if "tm" in fixed else tile_candidates([l.m for l in layers])
    tn = np.array([config.tn]) if "tn" in fixed else tile_candidates([l.n for l in layers])
    if buildable:
        tm, tn = _buildable_pairs(tm, tn, config, fixed)
    else:
        tm, tn = (a.ravel() for a in np.meshgrid(tm, tn, indexing="ij"))
    dsp = np.asarray(resources.dsp(config, tm, tn), dtype=np.int64)
    keep = dsp <= max_dsp
    tm, tn, dsp = tm[keep], tn[keep], dsp[keep]
    lb = sum(_lower_bound(l, mem, tm, tn) for l in layers)
    order = np.lexsort((lb, dsp))
    return tm[order], tn[order], dsp[order], lb[order]


def _buildable_pairs(tm, tn, config: HardwareConfig, fixed):
    """(tm, tn) pairs the RTL engine can build (`HardwareConfig.engine_problems`).

    The engine reads one feature row per memory word, so Tn = ddr_width_bits / act_bits.
    For Tm every multiple of Tn up to the largest candidate: at equal chunk counts a larger
    Tm can still be faster (a narrower last output block writes back sooner), so no multiple
    may be skipped. The engine also builds Tm that are not multiples of Tn (output blocks
    sharing channel planes, e.g. 48 x 32); the explorer leaves them to `--set`.
    """
    if "tn" not in fixed:
        tn = np.array([config.ddr_width_bits // config.act_bits], dtype=np.int64)
        tn = tn[tn >= 1]
    if "tm" not in fixed:
        top = int(tm.max()) if len(tm) else 0
        tm = np.unique(np.concatenate([np.arange(t, top + t, t) for t in tn])) if len(tn) \
            else tn
    pairs = [(int(m), int(n)) for m in tm for n in tn
             if m % n == 0 and not config.with_(tm=int(m), tn=int(n)).engine_problems()]
    if not pairs:
        problems = config.with_(tm=int(tm[0]) if len(tm) else config.tm,
                                tn=int(tn[0]) if len(tn) else config.tn).engine_problems()
        raise UserError("explore: no tiling the RTL engine can build: "
                        + "; ".join(problems or ["tm must be a multiple of tn"])
                        + " (--any-tiling explores without the engine's constraints)")
    return (np.array(v, dtype=np.int64) for v in zip(*pairs))


def _lower_bound(layer, mem, tm, tn):
    """Cycles no tiling of (tm, tn) beats: the compute cycles, and reading every weight once
    in at least ceil(M/Tm) ceil(N/Tn) requests, each paying the DDR latency."""
    words = layer.m * layer.n * layer.kh * layer.kw
    requests = -(-layer.m // tm) * -(-layer.n // tn)
    memory = requests * mem.latency + np.ceil(_bytes(words, mem.weight_bits)
                                              / mem.bytes_per_cycle).astype(np.int64)
    return np.maximum(compute_cycles(layer, tm, tn), layer.groups * layer.batch * memory)


def _bytes(words, bits):
    return -(-words * bits // 8)


FIXABLE = ("tm", "tn", "tr", "tc", "max_kernel", "max_stride")


def explore_engine(layers, config: HardwareConfig, device: Device, resources=None,
                   max_dsp=None, max_bram18=None, fixed=(), buildable=False) -> Exploration:
    """The fastest engine for `layers` within the budget, and the DSP/cycles Pareto front.

    `resources` counts a design's DSPs and RAMB18 (`fpgacnn.plan.resources`; default: the
    engine as generated on `device`'s DSP slices).

    Ties go to fewer DSPs, then fewer BRAMs. `config` gives everything but the tiles; the keys
    named in `fixed` (of tm, tn, tr, tc, max_kernel, max_stride) keep `config`'s values.
    With `buildable`, only designs the RTL engine can build are explored
    (`HardwareConfig.engine_problems` is empty for the chosen configuration).
    """
    layers = list(layers)
    if not layers:
        raise UserError("explore: the model has no Conv2d or Linear layer to plan")
    dsp_budget, bram_budget = budgets(device, max_dsp, max_bram18)
    resources = resources or EngineResources(device.dsp_type)
    mem = Memory.of(config)
    window = _window(layers, config, fixed)
    if buildable:
        config = config.with_(max_kernel=window[0], max_stride=window[1])
    tm, tn, dsp, lb = _pairs(layers, mem, resources, dsp_budget, config, fixed, buildable)
    tiles = _row_col_tiles(layers, config, fixed)

    def bram18(tm, tn, tr, tc):
        return resources.bram18(config, tm, tn, tr, tc, *window)

    found = _search(_shapes(layers), mem, (tm, tn, dsp, lb), tiles, bram18, bram_budget)
    if found is None:
        raise UserError(f"explore: no design fits {device.name} with {dsp_budget} DSPs and "
                        f"{bram_budget} RAMB18")
    designs, evaluated = found
    best = min(designs, key=lambda d: (d.cycles, d.dsp, d.bram18))
    chosen = config.with_(tm=best.tm, tn=best.tn, tr=best.tr, tc=best.tc,
                          max_kernel=window[0], max_stride=window[1])
    space = len(tm) * len(tiles[0])
    return Exploration(chosen, best, pareto_front(designs), space, evaluated)


def _window(layers, config, fixed) -> tuple[int, int]:
    kmax = max(max(l.kh, l.kw) for l in layers)
    smax = max(max(l.sh, l.sw) for l in layers)
    if "max_kernel" in fixed:
        kmax = config.max_kernel
    if "max_stride" in fixed:
        smax = config.max_stride
    return kmax, smax


def _row_col_tiles(layers, config, fixed):
    """(tr, tc) pairs to try: square tiles of every candidate size, or the fixed ones."""
    if "tr" in fixed or "tc" in fixed:
        return np.array([config.tr]), np.array([config.tc])
    sizes = tile_candidates([l.r for l in layers] + [l.c for l in layers])
    return sizes, sizes


def _shapes(layers) -> Counter:
    """How many layers have each shape (a layer but for its name): each is modelled once."""
    return Counter(replace(layer, name="") for layer in layers)


def _search(shapes, mem, pairs, tiles, bram18, bram_budget):
    """Evaluate all designs that might beat the front; see the module docstring."""
    tm, tn, dsp, lb = pairs
    trs, tcs = tiles
    reps = np.unique(np.abs(trs[:, None] - REPRESENTATIVE_TILES).argmin(axis=0))
    first = _evaluate(shapes, mem, (tm, tn, dsp), (trs[reps], tcs[reps]), bram18, bram_budget)
    designs = _front_of(*first) if len(first[0]) else []
    bound = _front_bound(designs, dsp)
    alive = lb < bound
    rest = _evaluate(shapes, mem, (tm[alive], tn[alive], dsp[alive]), tiles, bram18,
                     bram_budget)
    designs += _front_of(*rest) if len(rest[0]) else []
    evaluated = len(tm) * len(reps) + int(alive.sum()) * (len(trs) - len(reps))
    return (designs, evaluated) if designs else None


REPRESENTATIVE_TILES = np.array([8, 16, 32])


def _evaluate(shapes, mem, pairs, tiles, bram18, bram_budget):
    """(tm, tn, tr, tc, dsp, bram, cycles) of every pair with every tile that fits the BRAM."""
    count = len(tiles[0])
    tm, tn, dsp = (np.repeat(a, count) for a in pairs)
    tr, tc = (np.tile(a, len(pairs[0])) for a in tiles)
    bram = bram18(tm, tn, tr, tc)
    fits = bram <= bram_budget
    tm, tn, dsp, tr, tc, bram = (a[fits] for a in (tm, tn, dsp, tr, tc, bram))
    cycles = np.zeros(len(tm), dtype=np.int64)
    for start in range(0, len(tm), BATCH):
        part = slice(start, start + BATCH)
        cycles[part] = sum(count * layer_cycles(shape, mem, tm[part], tn[part], tr[part],
                                                tc[part])[0]
                           for shape, count in shapes.items())
    return tm, tn, tr, tc, dsp, bram, cycles


def _front_bound(designs, dsp) -> np.ndarray:
    """For each DSP count, the fewest cycles of a design found with at most that many DSPs."""
    if not designs:
        return np.full(len(dsp), np.iinfo(np.int64).max)
    front = pareto_front(designs)
    front_dsp = np.array([d.dsp for d in front])
    front_cycles = np.array([d.cycles for d in front] + [np.iinfo(np.int64).max])
    idx = np.searchsorted(front_dsp, dsp, side="right") - 1
    return front_cycles[idx]      # idx -1 picks the sentinel


def _front_of(tm, tn, tr, tc, dsp, bram, cycles) -> list[Design]:
    """The best design per DSP count (enough to find the optimum and the front later)."""
    order = np.lexsort((bram, cycles, dsp))
    first = np.ones(len(order), dtype=bool)
    first[1:] = dsp[order][1:] != dsp[order][:-1]
    keep = order[first]
    return [Design(int(tm[i]), int(tn[i]), int(tr[i]), int(tc[i]), int(dsp[i]), int(bram[i]),
                   int(cycles[i])) for i in keep]


def pareto_front(designs) -> tuple[Design, ...]:
    """Designs no other beats on both DSPs and cycles, by growing DSP count."""
    front = []
    for d in sorted(designs, key=lambda d: (d.dsp, d.cycles, d.bram18)):
        if not front or d.cycles < front[-1].cycles:
            front.append(d)
    return tuple(front)
