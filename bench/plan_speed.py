"""How fast `fpgacnn plan --explore` explores the engine's design space.

    .venv/bin/python bench/plan_speed.py

For AlexNet and VGG16 (zoo models, 224x224) on each device: time of `explore_engine`, against
the named peer, a brute-force loop in plain Python that evaluates every design of the same
candidate space one at a time (the same formulas, written with Python ints). The peer runs in
full on the smaller spaces; where it would take minutes it runs on an evenly spaced sample and
its full time is extrapolated (marked "~"). Both must pick the same design where the peer runs
in full; where it samples, both must give the sampled best design the same cycle count.
"""

import sys
import time
from math import ceil

from fpgacnn.config import HardwareConfig
from fpgacnn.frontends import load_model
from fpgacnn.plan.devices import load_device
from fpgacnn.plan.dsp import dsp_per_mac
from fpgacnn.plan.engine import Memory, effective_bytes_per_cycle, total_cycles
from fpgacnn.plan.explore import budgets, explore_engine, tile_candidates
from fpgacnn.plan.bram import map_buffer_best
from fpgacnn.plan.workload import layers_from_graph

CASES = [("zoo:alexnet", "xc7z020"), ("zoo:alexnet", "xczu9eg"), ("zoo:alexnet", "xc7vx485t"),
         ("zoo:vgg16", "xc7z020"), ("zoo:vgg16", "xczu9eg")]
PEER_LIMIT = 20_000         # designs the peer evaluates in full before it samples


def config_for(device) -> HardwareConfig:
    rate = device.ddr_bytes_per_cycle(device.clock_mhz)
    width = 64
    while width / 8 < rate:
        width *= 2
    return HardwareConfig(device=device.name, clock_mhz=device.clock_mhz, act_bits=8,
                          weight_bits=8, ddr_width_bits=width,
                          ddr_bytes_per_cycle=min(rate, width / 8))


def _chunks(extent, tile):
    full, rem = divmod(extent, tile)
    return [(tile, full)] + ([(rem, 1)] if rem else [])


def peer_cycles(layer, cfg, bpc, tm, tn, tr):
    """docs/planning.md's formulas with plain Python ints, one design at a time."""
    lat, a, w = cfg.ddr_latency, cfg.act_bits, cfg.weight_bits
    k = layer.kh * layer.kw

    def xfer(nbytes):
        return lat + ceil(nbytes / bpc)

    def rows(out, stride, size):
        need = (out - 1) * stride + (layer.kh - 1) * layer.dh + 1
        return min(need, size) if size else need

    p = layer.pool
    rows_out, cols_out = layer.r - layer.r % p, layer.c - layer.c % p
    tc = tr = max(p, tr - tr % p)
    total = 0
    for rr, nr in _chunks(rows_out, min(tr, rows_out)):
        for cc, nc in _chunks(cols_out, min(tc, cols_out)):
            pixels = rows(rr, layer.sh, layer.in_h) * rows(cc, layer.sw, layer.in_w)
            for mm, nm in _chunks(layer.m, min(tm, layer.m)):
                steps = port = 0
                for nn, nk in _chunks(layer.n, min(tn, layer.n)):
                    t = xfer(ceil(nn * pixels * a / 8) + ceil(mm * nn * k * w / 8))
                    steps += nk * max(rr * cc * k, t)
                    port += nk * t
                port += xfer(ceil(mm * (rr // p) * (cc // p) * a / 8))
                total += nr * nc * nm * max(steps, port)
    f_r, f_c, f_m, f_n = (min(tr, rows_out), min(tc, cols_out), min(tm, layer.m),
                          min(tn, layer.n))
    first = xfer(ceil(f_n * rows(f_r, layer.sh, layer.in_h) * rows(f_c, layer.sw, layer.in_w)
                      * a / 8) + ceil(f_m * f_n * k * w / 8))
    l_r = rows_out % tr or min(tr, rows_out)
    l_c = cols_out % tc or min(tc, cols_out)
    l_m = layer.m % tm or min(tm, layer.m)
    last = xfer(ceil(l_m * (l_r // p) * (l_c // p) * a / 8))
    return layer.groups * layer.batch * (total + first + last)


def peer_space(layers, per_mac, max_dsp):
    tms = [int(v) for v in tile_candidates([l.m for l in layers])]
    tns = [int(v) for v in tile_candidates([l.n for l in layers])]
    trs = [int(v) for v in tile_candidates([l.r for l in layers] + [l.c for l in layers])]
    return [(tm, tn, tr) for tm in tms for tn in tns if ceil(tm * tn * per_mac) <= max_dsp
            for tr in trs]


def peer_explore(layers, cfg, per_mac, max_dsp, max_bram, space):
    kmax = max(max(l.kh, l.kw) for l in layers)
    smax = max(max(l.sh, l.sw) for l in layers)
    bpc = effective_bytes_per_cycle(cfg)
    best = None
    for tm, tn, tr in space:
        side = (tr - 1) * smax + kmax
        bram = (map_buffer_best(cfg.act_bits, side * side, 2 * tn).bram18
                + map_buffer_best(tn * cfg.weight_bits, kmax * kmax, 2 * tm).bram18
                + map_buffer_best(cfg.acc_bits, tr * tr, 2 * tm).bram18)
        if bram > max_bram:
            continue
        cycles = sum(peer_cycles(l, cfg, bpc, tm, tn, tr) for l in layers)
        key = (cycles, ceil(tm * tn * per_mac), bram)
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
        per_mac = dsp_per_mac(8, 8, device.dsp_type)
        max_dsp, max_bram = budgets(device)
        start = time.perf_counter()
        found = explore_engine(layers, cfg, device, per_mac)
        ours = time.perf_counter() - start
        space = peer_space(layers, per_mac, max_dsp)
        sample = space if len(space) <= PEER_LIMIT else space[::ceil(len(space) / PEER_LIMIT)]
        start = time.perf_counter()
        peer = peer_explore(layers, cfg, per_mac, max_dsp, max_bram, sample)
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
