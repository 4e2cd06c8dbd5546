"""How fast `fpgacnn plan --explore` explores the engine's design space.

    .venv/bin/python bench/plan_speed.py

For AlexNet and VGG16 (zoo models, 224x224) on each device: time of `explore_engine`, against
the named peer, a brute-force loop in plain Python that evaluates every design of the same
candidate space one at a time (the same formulas, written with Python ints: the engine model's
cycles tile by tile, the DSPs and block RAMs of the engine as generated). The peer runs in
full on spaces of up to 10,000 designs; on larger ones it runs on an evenly spaced sample of
about 2,000 and its full time is extrapolated (marked "~"). Both must pick the same design where
the peer runs in full; where it samples, both must give the sampled best design the same cycle
count.
"""

import sys
import time
from math import ceil

from fpgacnn.config import HardwareConfig
from fpgacnn.frontends import load_model
from fpgacnn.plan.devices import load_device
from fpgacnn.plan.bram import engine_buffers, map_buffer_best
from fpgacnn.plan.dsp import engine_dsps
from fpgacnn.plan.engine import (ENGINE, PARAM_BYTES_PER_CHANNEL, Memory,
                                 effective_bytes_per_cycle, total_cycles)
from fpgacnn.plan.explore import budgets, explore_engine, tile_candidates
from fpgacnn.plan.workload import layers_from_graph

CASES = [("zoo:alexnet", "xc7z020"), ("zoo:alexnet", "xczu9eg"), ("zoo:alexnet", "xc7vx485t"),
         ("zoo:vgg16", "xc7z020"), ("zoo:vgg16", "xczu9eg")]
PEER_LIMIT = 10_000         # designs the peer evaluates in full before it samples
PEER_SAMPLE = 2_000         # designs in its sample of a larger space


def config_for(device) -> HardwareConfig:
    rate = device.ddr_bytes_per_cycle(device.clock_mhz)
    width = 64
    while width / 8 < rate:
        width *= 2
    return HardwareConfig(device=device.name, clock_mhz=device.clock_mhz, act_bits=8,
                          weight_bits=8, ddr_width_bits=width,
                          ddr_bytes_per_cycle=min(rate, width / 8))


def peer_cycles(layer, cfg, bpc, tm, tn, tr, t=ENGINE):
    """docs/planning.md's engine model with plain Python ints, tile by tile in the engine's
    order, one design at a time (`t`: the engine's fixed costs)."""
    lat, wb, burst = cfg.ddr_latency, cfg.ddr_width_bits // 8, cfg.burst_len

    def data(words):
        return max(words, ceil((words - 1) * wb / bpc))

    def beats(nbytes):
        return ceil(nbytes / wb)

    def issue(commands, words):
        return commands * (1 + ceil(words / burst))

    def tiles(out, tile, stride, kernel, dilation, size, full_out):
        """(output extent, input extent read) of each tile along one dimension."""
        def need(o):
            return (o - 1) * stride + (kernel - 1) * dilation + 1
        pad = ceil(max(0, need(full_out) - size) / 2) if size else 0
        after = max(0, need(out) - pad - size) if size else 0
        starts = range(0, out, min(tile, out))
        return [(min(tile, out - o), need(min(tile, out - o)) - (pad if o == 0 else 0)
                 - (after if o == starts[-1] else 0)) for o in starts]

    p = layer.pool
    tr = tc = max(p, tr - tr % p)
    rows = tiles(layer.r - layer.r % p, tr, layer.sh, layer.kh, layer.dh, layer.in_h, layer.r)
    cols = tiles(layer.c - layer.c % p, tc, layer.sw, layer.kw, layer.dw, layer.in_w, layer.c)
    k = layer.kh * layer.kw
    row_bytes = ceil(tn * cfg.act_bits / 8)
    w_beats = beats(ceil(tm * tn * k * cfg.weight_bits / 8))
    p_beats = beats(tm * PARAM_BYTES_PER_CHANNEL)
    n_blocks, m_blocks = ceil(layer.n / tn), ceil(layer.m / tm)
    # the computes end at the first load, then for each later step the longer of its load
    # and the compute before it (two banks: a load starts when the compute before starts),
    # then the last compute; the pass also takes at least the port's work
    chain, port, send, sent, sent2, before = 0, 0, 0, 0, 0, 0
    for rr, lh in rows:
        for cc, lw in cols:
            row_beats = beats(lw * row_bytes)
            words = lh * row_beats + w_beats
            rows_issue = issue(lh, row_beats)
            load = t.load + lat + max(data(words), rows_issue + data(w_beats))
            load_p = t.load + lat + max(data(words + p_beats),
                                        rows_issue + data(w_beats + p_beats),
                                        rows_issue + issue(1, w_beats) + data(p_beats))
            comp = rr * cc * k + t.step
            first = load_p if n_blocks == 1 else load
            second = load_p if n_blocks == 2 else load
            tail = (n_blocks - 3) * max(comp, load) + max(comp, load_p) if n_blocks > 2 else 0
            loads = (n_blocks - 1) * load + load_p
            reads = loads - n_blocks * (t.load + lat)
            for mb in range(m_blocks):
                # a block's write-back starts with the next block's first compute and
                # alternates with the load of the step after it: this block's second (the
                # previous block's words), or with one step a block, its only load (the words
                # of the block before the previous); its per-row costs idle the port where no
                # read overlaps them
                if n_blocks == 1:
                    chain += max(before, first + min(sent2, first - t.load - lat))
                else:
                    chain += (max(before, first)
                              + max(comp, second + min(sent, second - t.load - lat)) + tail)
                before = comp + t.drain
                port += loads + sent + (send - sent) * max(send - reads, 0) // max(send, 1)
                top = mb * tm // tn                 # the planes this block writes
                bottom = min((mb * tm + tm - 1) // tn, ceil(layer.m / tn) - 1)
                lines = (bottom - top + 1) * (rr // p)
                sent2, sent = sent, lines * data(beats((cc // p) * row_bytes))
                send = sent + lines * t.write_row
    fetch = t.fetch + lat + data(beats(t.descriptor_bytes))
    total = fetch + max(chain + before, port) + send + lat + t.write_end
    return layer.groups * layer.batch * total


def peer_dsps(cfg, dsp_type, tm, tn):
    return engine_dsps(tm, tn, cfg.act_bits, cfg.weight_bits, cfg.acc_bits, dsp_type)


def peer_space(layers, cfg, dsp_type, max_dsp):
    tms = [int(v) for v in tile_candidates([l.m for l in layers])]
    tns = [int(v) for v in tile_candidates([l.n for l in layers])]
    trs = [int(v) for v in tile_candidates([l.r for l in layers] + [l.c for l in layers])]
    return [(tm, tn, tr) for tm in tms for tn in tns
            if peer_dsps(cfg, dsp_type, tm, tn) <= max_dsp for tr in trs]


def peer_explore(layers, cfg, dsp_type, max_bram, space):
    """The best (cycles, DSPs, RAMB18) design of `space`: the engine as generated, each
    buffer mapped on its own."""
    kmax = max(max(l.kh, l.kw) for l in layers)
    smax = max(max(l.sh, l.sw) for l in layers)
    bpc = effective_bytes_per_cycle(cfg)
    best = None
    for tm, tn, tr in space:
        buffers = engine_buffers(tm, tn, tr, tr, cfg.act_bits, cfg.weight_bits, cfg.acc_bits,
                                 kmax, smax)
        bram = sum(map_buffer_best(width, depth).bram18 for width, depth in buffers.values())
        if bram > max_bram:
            continue
        cycles = sum(peer_cycles(l, cfg, bpc, tm, tn, tr) for l in layers)
        key = (cycles, peer_dsps(cfg, dsp_type, tm, tn), bram)
        if best is None or key < best[0]:
            best = (key, (tm, tn, tr))
    return best


def main():
    print(f"{'model':<12} {'device':<10} {'space':>8} {'fpgacnn s':>10} {'peer s':>10} "
          f"{'ratio':>8}  chosen (tm, tn, tr)   same")
    graphs = {}
    for spec, name in CASES:
        if spec not in graphs:
            graphs[spec] = layers_from_graph(load_model(spec))
        layers = graphs[spec]
        device = load_device(name)
        cfg = config_for(device)
        max_dsp, max_bram = budgets(device)
        start = time.perf_counter()
        found = explore_engine(layers, cfg, device)
        ours = time.perf_counter() - start
        space = peer_space(layers, cfg, device.dsp_type, max_dsp)
        sample = space if len(space) <= PEER_LIMIT else space[::ceil(len(space) / PEER_SAMPLE)]
        start = time.perf_counter()
        peer = peer_explore(layers, cfg, device.dsp_type, max_bram, sample)
        peer_time = (time.perf_counter() - start) * len(space) / len(sample)
        full = sample is space
        chosen = (found.best.tm, found.best.tn, found.best.tr)
        if full:
            same = peer[1] == chosen or peer[0] == (found.best.cycles, found.best.dsp,
                                                    found.best.bram18)
        else:       # the sampled peer's best design: do both models give it the same cycles?
            tm, tn, tr = peer[1]
            ours_cycles = int(total_cycles(layers, Memory.of(cfg), tm, tn, tr, tr))
            same = "cycles agree" if ours_cycles == peer[0][0] else "CYCLES DIFFER"
        mark = "" if full else "~"
        print(f"{spec[4:]:<12} {name:<10} {len(space):>8,} {ours:>10.3f} "
              f"{mark + format(peer_time, '.1f'):>10} {peer_time / ours:>7.0f}x  "
              f"{str(chosen):<20} {same}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
