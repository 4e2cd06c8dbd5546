"""Engine model: Zhang et al.'s published cycles, a tile-by-tile oracle, monotonicity."""

from math import ceil

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fpgacnn.config import HardwareConfig
from fpgacnn.ir import ops
from fpgacnn.plan.engine import Memory, compute_cycles, layer_cycles, plan_layers
from fpgacnn.plan.workload import Layer, layer_from_op, layers_from_graph, zhang_alexnet

# Zhang et al., FPGA'15, Table 4: <Tm, Tn> = <64, 7>, cycles of conv1..conv5 (one group).
ZHANG_CYCLES = [366_025, 255_150, 168_831, 127_764, 85_176]


def test_zhang_alexnet_compute_cycles():
    cfg = HardwareConfig(tm=64, tn=7, act_bits=32, weight_bits=32, acc_bits=32)
    plan = plan_layers(zhang_alexnet(), cfg, per_mac=5)
    assert [p.compute_cycles for p in plan.layers] == ZHANG_CYCLES
    assert plan.compute_cycles == 1_002_946
    assert plan.dsp == 2240


def test_zhang_layer_shapes():
    # Table 3 of the paper: conv1 M=48 N=3 R=C=55 K=11 S=4; conv2 M=128 N=48 R=C=27 K=5; ...
    shapes = [(l.m, l.n, l.r, l.c, l.kh, l.sh) for l in zhang_alexnet()]
    assert shapes == [(48, 3, 55, 55, 11, 4), (128, 48, 27, 27, 5, 1),
                      (192, 256, 13, 13, 3, 1), (192, 192, 13, 13, 3, 1),
                      (128, 192, 13, 13, 3, 1)]


def naive_cycles(layer, mem, tm, tn, tr, tc):
    """docs/planning.md's schedule, one tile at a time, written without the module's helpers."""
    def transfer(nbytes):
        return mem.latency + ceil(nbytes / mem.bytes_per_cycle)

    def in_extent(out, stride, kernel, dilation, size):
        need = (out - 1) * stride + (kernel - 1) * dilation + 1
        return min(need, size) if size else need

    def load_bytes(rr, cc, mm, nn):
        rows = in_extent(rr, layer.sh, layer.kh, layer.dh, layer.in_h)
        cols = in_extent(cc, layer.sw, layer.kw, layer.dw, layer.in_w)
        return (ceil(nn * rows * cols * mem.act_bits / 8)
                + ceil(mm * nn * layer.kh * layer.kw * mem.weight_bits / 8))

    p = layer.pool                      # a fused p x p pool: whole windows per tile
    rows_out, cols_out = layer.r - layer.r % p, layer.c - layer.c % p
    if p > 1:
        tr, tc = max(p, tr - tr % p), max(p, tc - tc % p)
    total, traffic, tiles = 0, 0, []
    for r0 in range(0, rows_out, tr):
        for c0 in range(0, cols_out, tc):
            for m0 in range(0, layer.m, tm):
                rr, cc = min(tr, rows_out - r0), min(tc, cols_out - c0)
                mm = min(tm, layer.m - m0)
                steps, port = 0, 0
                for n0 in range(0, layer.n, tn):
                    nn = min(tn, layer.n - n0)
                    load = load_bytes(rr, cc, mm, nn)
                    traffic += load
                    steps += max(rr * cc * layer.kh * layer.kw, transfer(load))
                    port += transfer(load)
                    if not tiles:
                        tiles.append(transfer(load))
                store = ceil(mm * (rr // p) * (cc // p) * mem.act_bits / 8)
                traffic += store
                port += transfer(store)
                total += max(steps, port)
                last_store = transfer(store)
    total += tiles[0] + last_store
    passes = layer.groups * layer.batch
    return passes * total, passes * traffic


layers = st.builds(
    lambda m, n, r, c, k, s, g, b, p: Layer(
        "x", "conv", m, n, r, c, k, k, s, s, groups=g, batch=b, in_h=(r - 1) * s + k,
        in_w=(c - 1) * s + k, pool=p if min(r, c) >= 2 else 1),
    st.integers(1, 70), st.integers(1, 70), st.integers(1, 40), st.integers(1, 40),
    st.integers(1, 7), st.integers(1, 3), st.integers(1, 2), st.integers(1, 2),
    st.sampled_from([1, 2]))
memories = st.builds(Memory, st.sampled_from([8, 16, 32]), st.sampled_from([4, 8, 16]),
                     st.just(32), st.sampled_from([1.0, 2.5, 8.0, 64.0]), st.integers(1, 40))
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
    # one step: load 3 ch x 7 x 7 + 4 x 3 x 9 weights = 255 bytes; 36 x 9 = 324 compute cycles;
    # store 4 ch x 3 x 3 = 36 bytes
    assert int(traffic) == 255 + 36
    assert int(cycles) == 255 + max(324, 255 + 36) + 36


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
