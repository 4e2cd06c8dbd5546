"""Layer-parallel (dataflow) model, seed 001: one unit per layer, all layers running at once.

Layer i gets its own Tm_i x Tn_i MAC array, its weights in on-chip memory and a line buffer
of its input; feature maps stream from unit to unit. A stage takes
`ceil(M/Tm) ceil(N/Tn) R C Kh Kw` cycles per image (the engine's compute cycles), the pipeline
accepts one image every `interval = max_i stage_i` cycles, and one image takes at most
`sum_i stage_i` cycles to cross it (less when line buffers let stages overlap).

The allocation that minimises the interval under a DSP budget is exact: for a target interval
T every layer takes its cheapest (Tm, Tn) that meets T, the layers are independent, and the
smallest T whose total fits the budget is found over all distinct stage times.

>>> from fpgacnn.plan.workload import zhang_alexnet
>>> plan = allocate(zhang_alexnet(), act_bits=16, weight_bits=16, per_mac=1, max_dsp=900)
>>> plan.dsp <= 900
True
"""

from dataclasses import dataclass

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.plan.bram import bram18_count_array
from fpgacnn.plan.engine import compute_cycles
from fpgacnn.plan.explore import tile_candidates


@dataclass(frozen=True)
class Stage:
    name: str
    op: str
    macs: int
    tm: int
    tn: int
    dsp: int
    cycles: int
    weight_bram18: int
    line_bram18: int

    @property
    def bram18(self) -> int:
        return self.weight_bram18 + self.line_bram18


@dataclass(frozen=True)
class DataflowPlan:
    stages: tuple[Stage, ...]
    front: tuple[tuple[int, int], ...]     # (DSPs, interval or latency) Pareto front
    objective: str = "throughput"

    @property
    def interval(self) -> int:
        return max(s.cycles for s in self.stages)

    @property
    def latency(self) -> int:
        return sum(s.cycles for s in self.stages)

    @property
    def dsp(self) -> int:
        return sum(s.dsp for s in self.stages)

    @property
    def bram18(self) -> int:
        return sum(s.bram18 for s in self.stages)


def layer_options(layer, per_mac):
    """Pareto options of one layer: arrays (dsp, cycles, tm, tn), DSPs up, cycles down."""
    tm, tn = np.meshgrid(tile_candidates([layer.m]), tile_candidates([layer.n]), indexing="ij")
    tm, tn = tm.ravel(), tn.ravel()
    dsp = np.ceil(tm * tn * per_mac).astype(np.int64)
    cycles = compute_cycles(layer, tm, tn)
    order = np.lexsort((cycles, dsp))
    dsp, cycles, tm, tn = dsp[order], cycles[order], tm[order], tn[order]
    best = np.minimum.accumulate(cycles)
    keep = np.ones(len(dsp), dtype=bool)
    keep[1:] = cycles[1:] < best[:-1]
    return dsp[keep], cycles[keep], tm[keep], tn[keep]


def _cheapest(options, target):
    """Index of the fewest-DSP option with cycles <= target (cycles fall along the list)."""
    cycles = options[1]
    return np.searchsorted(-cycles, -target, side="left")


def stage_bram18(layer, tm, tn, act_bits, weight_bits):
    """(weights, line buffer) RAMB18 units of one layer's unit.

    Weights: Tm banks of Tn*weight_bits-bit words, ceil(M/Tm) ceil(N/Tn) Kh Kw deep, per group.
    Line buffer: Tn banks of act_bits words holding (Kh-1)*dh + sh rows of ceil(N/Tn) channels.
    """
    depth = -(-layer.m // tm) * -(-layer.n // tn) * layer.kh * layer.kw
    weights = bram18_count_array(tn * weight_bits, depth, tm) * layer.groups
    rows = (layer.kh - 1) * layer.dh + layer.sh
    width = layer.in_w or layer.input_cols(layer.c)
    line = bram18_count_array(act_bits, rows * width * -(-layer.n // tn), tn) * layer.groups
    return int(weights), int(line)


def allocate(layers, act_bits, weight_bits, per_mac, max_dsp, max_bram18=None,
             objective="throughput") -> DataflowPlan:
    """Share `max_dsp` among the layers' units (and check the BRAM).

    objective "throughput": the smallest interval (the pipeline balanced); "latency": the
    smallest sum of stage cycles (a multiple-choice knapsack, solved exactly by dynamic
    programming over the DSP count).
    """
    layers = list(layers)
    if not layers:
        raise UserError("dataflow: the model has no Conv2d or Linear layer to plan")
    if objective not in ("throughput", "latency"):
        raise UserError(f"dataflow: objective must be throughput or latency, got {objective!r}")
    if max_bram18 is not None:
        _check_weight_bits(layers, weight_bits, max_bram18)
    options = [layer_options(layer, per_mac) for layer in layers]
    if objective == "latency":
        return _allocate_latency(layers, options, act_bits, weight_bits, max_dsp, max_bram18)
    targets = np.unique(np.concatenate([o[1] for o in options]))
    targets = targets[targets >= max(o[1][-1] for o in options)]
    picks = [_cheapest(o, targets) for o in options]
    total = sum(o[0][p] for o, p in zip(options, picks))
    front = _front(total, targets)
    fitting = np.flatnonzero(total <= max_dsp)
    if not len(fitting):
        need = int(total[-1])
        raise UserError(f"dataflow: over budget: DSP needed {need} (one MAC per layer), "
                        f"available {max_dsp}")
    last_error = None
    for i in fitting[np.argsort(targets[fitting])]:
        stages = tuple(_stage(layer, o, p[i], act_bits, weight_bits)
                       for layer, o, p in zip(layers, options, picks))
        bram = sum(s.bram18 for s in stages)
        if max_bram18 is None or bram <= max_bram18:
            return DataflowPlan(stages, front)
        last_error = bram if last_error is None else min(last_error, bram)
    raise UserError(f"dataflow: over budget: RAMB18 needed {last_error} at least "
                    f"(weights and line buffers on chip), available {max_bram18}")


def _allocate_latency(layers, options, act_bits, weight_bits, max_dsp, max_bram18):
    """Fewest total cycles within `max_dsp`: best[b] = min over choices using <= b DSPs."""
    inf = np.iinfo(np.int64).max // 4
    best = np.zeros(max_dsp + 1, dtype=np.int64)
    choices = []
    for dsp, cycles, _, _ in options:
        new = np.full(max_dsp + 1, inf, dtype=np.int64)
        choice = np.full(max_dsp + 1, -1, dtype=np.int64)
        for k in range(len(dsp)):
            d = int(dsp[k])
            if d > max_dsp:
                break
            candidate = best[:max_dsp + 1 - d] + cycles[k]
            better = candidate < new[d:]
            new[d:][better] = candidate[better]
            choice[d:][better] = k
        best = new
        choices.append(choice)
    if best[max_dsp] >= inf:
        need = sum(int(o[0][0]) for o in options)
        raise UserError(f"dataflow: over budget: DSP needed {need} (one MAC per layer), "
                        f"available {max_dsp}")
    picks, budget = [], max_dsp
    for (dsp, _, _, _), choice in zip(reversed(options), reversed(choices)):
        k = int(choice[budget])
        picks.append(k)
        budget -= int(dsp[k])
    picks.reverse()
    stages = tuple(_stage(layer, o, k, act_bits, weight_bits)
                   for layer, o, k in zip(layers, options, picks))
    bram = sum(s.bram18 for s in stages)
    if max_bram18 is not None and bram > max_bram18:
        raise UserError(f"dataflow: over budget: RAMB18 needed {bram} (weights and line "
                        f"buffers on chip), available {max_bram18}")
    finite = best < inf
    first = np.ones(len(best), dtype=bool)
    first[1:] = best[1:] < best[:-1]
    front = tuple((int(b), int(best[b])) for b in np.flatnonzero(finite & first))
    return DataflowPlan(stages, front, "latency")


def _check_weight_bits(layers, weight_bits, max_bram18):
    bits = [l.groups * l.m * l.n * l.kh * l.kw * weight_bits for l in layers]
    need = -(-sum(bits) // (18 * 1024))
    if need > max_bram18:
        big = layers[int(np.argmax(bits))]
        raise UserError(f"dataflow: over budget: RAMB18 needed {need} at least to hold all "
                        f"weights on chip (largest: layer {big.name}), available {max_bram18}")


def _stage(layer, options, index, act_bits, weight_bits) -> Stage:
    dsp, cycles, tm, tn = (int(a[index]) for a in options)
    weights, line = stage_bram18(layer, tm, tn, act_bits, weight_bits)
    return Stage(layer.name, layer.kind, layer.macs, tm, tn, dsp, cycles, weights, line)


def _front(total, targets):
    order = np.lexsort((targets, total))
    front, best = [], None
    for i in order:
        if best is None or targets[i] < best:
            front.append((int(total[i]), int(targets[i])))
            best = targets[i]
    return tuple(front)
