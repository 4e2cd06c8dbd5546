"""Engine model: Zhang et al.'s published cycles, a tile-by-tile oracle, monotonicity."""

from math import ceil

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fpgacnn.config import HardwareConfig
from fpgacnn.ir import ops
from fpgacnn.plan.bram import engine_buffers, map_buffer_best
from fpgacnn.plan.dsp import engine_dsps
from fpgacnn.plan.engine import (ENGINE, Memory, block_planes, compute_cycles, layer_cycles,
                                 plan_layers)
from fpgacnn.plan.resources import MacArrayResources
from fpgacnn.plan.workload import Layer, layer_from_op, layers_from_graph, zhang_alexnet

# Zhang et al., FPGA'15, Table 4: <Tm, Tn> = <64, 7>, cycles of conv1..conv5 (one group).
ZHANG_CYCLES = [366_025, 255_150, 168_831, 127_764, 85_176]


def test_zhang_alexnet_compute_cycles():
    cfg = HardwareConfig(tm=64, tn=7, act_bits=32, weight_bits=32, acc_bits=32)
    plan = plan_layers(zhang_alexnet(), cfg, MacArrayResources(per_mac=5))
    assert [p.compute_cycles for p in plan.layers] == ZHANG_CYCLES
    assert plan.compute_cycles == 1_002_946
    assert plan.dsp == 2240


def test_zhang_layer_shapes():
    # Table 3 of the paper: conv1 M=48 N=3 R=C=55 K=11 S=4; conv2 M=128 N=48 R=C=27 K=5; ...
    shapes = [(l.m, l.n, l.r, l.c, l.kh, l.sh) for l in zhang_alexnet()]
    assert shapes == [(48, 3, 55, 55, 11, 4), (128, 48, 27, 27, 5, 1),
                      (192, 256, 13, 13, 3, 1), (192, 192, 13, 13, 3, 1),
                      (128, 192, 13, 13, 3, 1)]


class TwoBanks:
    """The ping-pong input/weight buffers, step by step: a step's load starts when the previous
    load has finished and its bank is free (the compute two steps back has finished); its
    compute when its load and the previous compute have finished."""

    def __init__(self):
        self.load_end, self.computed = 0, [0, 0]

    def step(self, load, comp):
        start = max(self.load_end, self.computed[-2])
        self.load_end = start + load
        self.computed.append(max(self.load_end, self.computed[-1]) + comp)

    @property
    def end(self):
        return self.computed[-1]


runs = st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300), st.integers(1, 4)),
                min_size=1, max_size=12)


@settings(max_examples=300)
@given(runs=runs)
def test_two_banks_reduce_to_pairs_of_a_compute_and_the_next_load(runs):
    # docs/planning.md: a load starts when the compute before it starts, so the computes end
    # at the first load + max(compute i - 1, load i) for each later step + the last compute
    steps = [(load, comp) for load, comp, count in runs for _ in range(count)]
    banks = TwoBanks()
    for load, comp in steps:
        banks.step(load, comp)
    loads, comps = zip(*steps)
    pairs = sum(max(comp, load) for comp, load in zip(comps, loads[1:]))
    assert banks.end == loads[0] + pairs + comps[-1]


def naive_cycles(layer, mem, tm, tn, tr, tc, t=ENGINE):
    """docs/planning.md's schedule step by step in the engine's order, with Python ints."""
    lat, wb = mem.latency, mem.word_bytes

    def data(words):
        return max(words, ceil((words - 1) * wb / mem.bytes_per_cycle))

    def beats(nbytes):
        return ceil(nbytes / wb)

    def issue(commands, words):
        return commands * (1 + ceil(words / mem.burst_len))

    def extents(out, tile, stride, kernel, dilation, size, full_out):
        """(output extent, input extent loaded) of each tile along one dimension."""
        def need(o):
            return (o - 1) * stride + (kernel - 1) * dilation + 1
        pad = ceil(max(0, need(full_out) - size) / 2) if size else 0
        after = max(0, need(out) - pad - size) if size else 0
        starts = range(0, out, min(tile, out))
        return [(min(tile, out - o), need(min(tile, out - o)) - (pad if o == 0 else 0)
                 - (after if o == starts[-1] else 0)) for o in starts]

    p = layer.pool
    if p > 1:
        tr, tc = max(p, tr - tr % p), max(p, tc - tc % p)
    rows = extents(layer.r - layer.r % p, tr, layer.sh, layer.kh, layer.dh, layer.in_h, layer.r)
    cols = extents(layer.c - layer.c % p, tc, layer.sw, layer.kw, layer.dw, layer.in_w, layer.c)
    k = layer.kh * layer.kw
    row_bytes = ceil(tn * mem.act_bits / 8)
    w_beats = beats(ceil(tm * tn * k * mem.weight_bits / 8))
    p_beats = beats(tm * 16)
    n_blocks, m_blocks = ceil(layer.n / tn), ceil(layer.m / tm)
    traffic, send, sent, port = 0, 0, 0, 0
    banks = TwoBanks()
    landing, index = {}, 0      # step index -> words written while that step's load runs
    for rr, lh in rows:
        for cc, lw in cols:
            row_beats = beats(lw * row_bytes)
            words = lh * row_beats + w_beats
            rows_issue = issue(lh, row_beats)         # before the weights' first burst
            load = t.load + lat + max(data(words), rows_issue + data(w_beats))
            load_p = t.load + lat + max(data(words + p_beats),
                                        rows_issue + data(w_beats + p_beats),
                                        rows_issue + issue(1, w_beats) + data(p_beats))
            comp = rr * cc * k + t.step
            for mb in range(m_blocks):
                for nb in range(n_blocks):
                    last = nb == n_blocks - 1
                    # a block's write-back starts when the next block's first compute does,
                    # with the load of the step after it: that load alternates its words
                    # with the written ones
                    cost = load_p if last else load
                    shared = min(landing.pop(index, 0), cost - t.load - lat)
                    banks.step(cost + shared, comp + (t.drain if last else 0))
                    index += 1
                loads = (n_blocks - 1) * load + load_p
                reads = loads - n_blocks * (t.load + lat)
                # the port's work: loads, written words, the writer's per-row costs when idle
                port += loads + sent + (send - sent) * max(send - reads, 0) // max(send, 1)
                # the planes of L channels block mb touches, up to the layer's last
                top = mb * tm // tn
                bottom = min((mb * tm + tm - 1) // tn, ceil(layer.m / tn) - 1)
                lines = (bottom - top + 1) * (rr // p)
                written = beats((cc // p) * row_bytes)
                sent = lines * data(written)
                send = sent + lines * t.write_row
                landing[index + 1] = sent
                traffic += n_blocks * words + p_beats + lines * written
    fetch = t.fetch + lat + data(beats(t.descriptor_bytes))
    total = fetch + max(banks.end, port) + send + lat + t.write_end
    passes = layer.groups * layer.batch
    return passes * total, passes * (traffic * wb + t.descriptor_bytes)


layers = st.builds(
    lambda m, n, r, c, k, s, g, b, p, pad: Layer(
        "x", "conv", m, n, r, c, k, k, s, s, groups=g, batch=b,
        in_h=max(1, (r - 1) * s + k - pad), in_w=max(1, (c - 1) * s + k - pad),
        pool=p if min(r, c) >= 2 else 1),
    st.integers(1, 70), st.integers(1, 70), st.integers(1, 40), st.integers(1, 40),
    st.integers(1, 7), st.integers(1, 3), st.integers(1, 2), st.integers(1, 2),
    st.sampled_from([1, 2]), st.integers(0, 4))
memories = st.builds(Memory, st.sampled_from([8, 16, 32]), st.sampled_from([4, 8, 16]),
                     st.just(32), st.sampled_from([1.0, 2.5, 8.0, 64.0]), st.integers(1, 40),
                     st.sampled_from([1, 4, 8, 16]), st.sampled_from([1, 8, 16, 256]))
tiles = st.tuples(st.integers(1, 80), st.integers(1, 80), st.integers(1, 48), st.integers(1, 48))


@settings(max_examples=150)
@given(layer=layers, mem=memories, t=tiles)
def test_vectorised_model_equals_tile_by_tile(layer, mem, t):
    cycles, traffic = layer_cycles(layer, mem, *t)
    assert (int(cycles), int(traffic)) == naive_cycles(layer, mem, *t)


@settings(max_examples=100)
@given(layer=layers, mem=memories, t=tiles)
def test_arrays_of_designs_equal_one_at_a_time(layer, mem, t):
    tm = np.array([t[0], t[0] + 1, 1])
    tn = np.array([t[1], 1, t[1] + 3])
    cycles, _ = layer_cycles(layer, mem, tm, tn, t[2], t[3])
    for i in range(3):
        assert int(cycles[i]) == int(layer_cycles(layer, mem, tm[i], tn[i], t[2], t[3])[0])


def test_fused_pool_from_a_graph():
    import numpy as np
    from fpgacnn.ir import Graph, Node

    conv = ops.Conv2d(3, 4, 3, padding=1, activation=ops.ReLU())
    params = {"weight": np.zeros((4, 3, 3, 3), np.float32), "bias": np.zeros(4, np.float32)}
    graph = Graph("g", {"x": (1, 3, 7, 7)}, [
        Node("c1", conv, ["x"], params), Node("p1", ops.MaxPool(2, 2), ["c1"]),
        Node("c2", ops.Conv2d(4, 4, 3, padding=1), ["p1"],
             {"weight": np.zeros((4, 4, 3, 3), np.float32), "bias": np.zeros(4, np.float32)}),
        Node("p2", ops.MaxPool(3, 2), ["c2"])], ["p2"])
    first, second = layers_from_graph(graph)
    assert (first.pool, first.rows, first.cols) == (2, 6, 6)      # 7x7 -> 3x3 windows
    assert second.pool == 1                                       # 3x3 pools are not fused
    mem = Memory(8, 8, 32, 1.0, 0)
    cycles, traffic = layer_cycles(first, mem, 4, 3, 6, 6)
    # one step on one 6x6 tile, byte-wide port at one byte a cycle, no latency: it loads 7 x 7
    # pixels of 3 channels (the padding row and column are not read) and 4 x 3 x 9 weights,
    # 255 bytes, and the 4 x 16 bytes of parameters: 3 + 319 cycles; the pixels take
    # 36 x 9 + 2 cycles and the drain 16 (342 > 322); it writes 2 rows of 3 channels (padded
    # to 3) x 3 pixels per pooled row, 6 commands of 9 bytes (6 x (9 + 3) cycles); the
    # descriptor (78 bytes) comes first, the response of the write last (3 cycles)
    assert int(traffic) == 255 + 64 + 54 + 78
    assert int(cycles) == (3 + 78) + 322 + 342 + 72 + 3


@settings(max_examples=200)
@given(layer=layers, tm=st.integers(1, 80), tn=st.integers(1, 80),
       grow=st.sampled_from(["m", "n"]))
def test_more_dsps_never_make_a_layer_slower(layer, tm, tn, grow):
    before = int(compute_cycles(layer, tm, tn))
    after = int(compute_cycles(layer, tm + (grow == "m"), tn + (grow == "n")))
    assert after <= before


def test_compute_cycles_are_a_lower_bound_of_cycles():
    mem = Memory(8, 8, 32, 8.0, 20)
    for layer in zhang_alexnet():
        for tm, tn in [(1, 1), (16, 8), (64, 7), (200, 300)]:
            assert int(layer_cycles(layer, mem, tm, tn, 13, 13)[0]) >= \
                int(compute_cycles(layer, tm, tn))


def test_linear_runs_as_1x1_convolution():
    layer = layer_from_op("fc", ops.Linear(100, 10), (3, 100))
    assert (layer.m, layer.n, layer.r, layer.c, layer.kh) == (10, 100, 1, 3, 1)
    assert int(compute_cycles(layer, 4, 8)) == ceil(10 / 4) * ceil(100 / 8) * 3


def test_grouped_convolution_counts_each_group():
    op = ops.Conv2d(8, 16, 3, padding=1, groups=4)
    layer = layer_from_op("g", op, (2, 8, 5, 5))
    assert (layer.m, layer.n, layer.groups, layer.batch) == (4, 2, 4, 2)
    assert layer.macs == 2 * 16 * 2 * 5 * 5 * 9
    assert int(compute_cycles(layer, 4, 2)) == 2 * 4 * 25 * 9


def test_plan_layers_takes_triples_and_reports_roofline():
    cfg = HardwareConfig(tm=8, tn=4, tr=8, tc=8, ddr_bytes_per_cycle=1.0, ddr_width_bits=64)
    triples = [("c1", ops.Conv2d(3, 16, 3, padding=1), (1, 3, 32, 32)),
               ("fc", ops.Linear(1024, 10), (1, 1024))]
    plan = plan_layers(triples, cfg)
    conv, fc = plan.layers
    assert conv.ops == 2 * 16 * 3 * 32 * 32 * 9
    # the FC layer reads 10 KB of weights for 20 K operations at 0.1 GB/s: memory bound
    assert fc.bound == "memory" and fc.attainable < fc.compute_roof
    assert fc.ctc == pytest.approx(fc.ops / fc.ddr_bytes)
    assert fc.attainable == pytest.approx(min(fc.compute_roof, fc.ctc * 0.1))
    assert fc.ddr_bytes >= 10 * 1024     # every weight is read at least once


def test_plan_counts_the_engine_as_generated_by_default():
    # DSPs: engine_dsps (held to yosys by tests/test_hw_synth.py); block RAM: each generated
    # buffer mapped one at a time; a layer's own buffers are sized for its own window
    cfg = HardwareConfig(device="xczu3eg", tm=16, tn=8, tr=8, tc=8, max_kernel=5,
                         max_stride=2)
    triples = [("c1", ops.Conv2d(8, 16, 3, padding=1), (1, 8, 16, 16)),
               ("c2", ops.Conv2d(16, 16, 5, stride=2), (1, 16, 16, 16))]
    plan = plan_layers(triples, cfg)

    def units(kernel, stride):
        buffers = engine_buffers(16, 8, 8, 8, 8, 8, 32, kernel, stride)
        return sum(map_buffer_best(width, depth).bram18 for width, depth in buffers.values())

    assert plan.dsp == engine_dsps(16, 8, 8, 8, 32, "DSP48E2") > 128
    assert plan.bram18 == units(5, 2)
    assert [(p.dsp, p.bram18) for p in plan.layers] == [(plan.dsp, units(3, 1)),
                                                        (plan.dsp, units(5, 2))]
    assert plan.resources.name == "engine"
    zhang = plan_layers(triples, cfg, MacArrayResources(per_mac=0.5))
    assert zhang.dsp == 64 and zhang.cycles == plan.cycles


# bench/sim_speed.py's ZC706-sized engine and the cycles Verilator simulated for VGG16's
# full-size 3x3 layers on it (docs/benchmarks.md, "MAC utilization", 2026-11-21)
ZC706 = HardwareConfig(device="xc7z045", clock_mhz=150.0, tm=64, tn=8, tr=14, tc=14,
                       act_bits=8, weight_bits=8, acc_bits=32, max_kernel=3, max_stride=1,
                       ddr_width_bits=64, burst_len=16, ddr_latency=20, ddr_bytes_per_cycle=8.0)


@pytest.mark.parametrize("cin,cout,size,simulated,tolerance", [
    (3, 64, 224, 690_852, 0.01 * 690_852),      # conv1_1, port-bound
    (64, 64, 224, 3_623_649, 1), (128, 256, 56, 1_812_193, 1), (512, 512, 14, 907_076, 1)],
    ids=["conv1_1", "conv1_2", "conv3_1", "conv5_1"])
def test_vgg16_layers_as_simulated_on_the_zc706_engine(cin, cout, size, simulated, tolerance):
    layer = layer_from_op("c", ops.Conv2d(cin, cout, 3, padding=1), (1, cin, size, size))
    planned, _ = layer_cycles(layer, Memory.of(ZC706), ZC706.tm, ZC706.tn, ZC706.tr, ZC706.tc)
    assert abs(int(planned) - simulated) <= tolerance


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300), st.integers(1, 64), st.integers(1, 32))
def test_block_planes_are_the_planes_each_block_touches(m, tm, tn):
    """Oracle: the plane (c // L) of every channel a block writes; the last block stops at
    the layer's last plane. Blocks of Q = tm channels need not start at lane 0."""
    from fpgacnn.plan.engine import block_planes

    end = -(-m // tn) * tn
    sizes = [len({c // tn for c in range(m0, min(m0 + tm, end))}) for m0 in range(0, m, tm)]
    planes, extra, last = (int(v) for v in block_planes(m, tm, tn))
    assert sizes[-1] == last
    assert sorted(sizes[:-1]) == [planes] * (len(sizes) - 1 - extra) + [planes + 1] * extra
    if tm % tn == 0:
        assert (planes, extra) == (tm // tn, 0)
    designs = np.array([tm, tm + 1, 2 * tm]), np.array([tn, tn, tn + 3])
    for i, (a, b) in enumerate(zip(*designs)):
        assert [int(v[i]) for v in block_planes(m, *designs)] == \
            [int(v) for v in block_planes(m, int(a), int(b))]
