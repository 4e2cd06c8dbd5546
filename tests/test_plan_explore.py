"""Exploration: Zhang et al.'s choice, exactness against brute force, budgets respected."""

from itertools import product
from math import ceil

import pytest
from hypothesis import given, settings, strategies as st

from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.plan.bram import engine_buffers, map_buffer_best
from fpgacnn.plan.devices import Device, load_device
from fpgacnn.plan.engine import Memory, layer_cycles, plan_layers
from fpgacnn.plan.explore import explore_engine, tile_candidates
from fpgacnn.plan.resources import EngineResources, MacArrayResources
from fpgacnn.plan.workload import Layer, zhang_alexnet

FP32 = HardwareConfig(act_bits=32, weight_bits=32, acc_bits=32, clock_mhz=100.0,
                      ddr_width_bits=1024, ddr_bytes_per_cycle=128.0)


def test_zhang_exploration_chooses_64_7():
    # Zhang et al., FPGA'15: 2240 DSPs at 5 per fp32 MAC on the VC707 -> <Tm, Tn> = <64, 7>.
    found = explore_engine(zhang_alexnet(), FP32, load_device("xc7vx485t"),
                           MacArrayResources(per_mac=5), max_dsp=2240)
    assert (found.config.tm, found.config.tn) == (64, 7)
    assert found.best.dsp == 2240
    assert found.front[-1] == found.best


@settings(max_examples=60)
@given(extents=st.lists(st.integers(1, 300), min_size=1, max_size=4), t=st.integers(1, 400))
def test_tile_candidates_lose_nothing(extents, t):
    # For any tile size there is a candidate no larger with the same chunk count everywhere.
    cands = [int(c) for c in tile_candidates(extents)]
    same = [c for c in cands if c <= t and all(ceil(x / c) == ceil(x / t) for x in extents)]
    assert same


def tiny_device(dsp, bram36):
    return Device("tiny", "test", dsp, "DSP48E1", bram36, 1000, 2000, 1.0, 100.0)


def buffer_units(mem, tm, tn, tr, kmax, smax):
    """Zhang et al.'s banked ping-pong buffers, from the BRAM model one buffer at a time."""
    side = (tr - 1) * smax + kmax
    return (map_buffer_best(mem.act_bits, side * side, 2 * tn).bram18
            + map_buffer_best(tn * mem.weight_bits, kmax * kmax, 2 * tm).bram18
            + map_buffer_best(mem.acc_bits, tr * tr, 2 * tm).bram18)


def engine_units(mem, tm, tn, tr, kmax, smax):
    """The generated engine's buffers (`engine_buffers`), each mapped one at a time."""
    buffers = engine_buffers(tm, tn, tr, tr, mem.act_bits, mem.weight_bits, mem.acc_bits,
                             kmax, smax)
    return sum(map_buffer_best(width, depth).bram18 for width, depth in buffers.values())


def engine_dsps_by_hand(tm, tn, mem):
    """The engine's DSPs for these tests' widths, counted by hand (docs/engine.md): 4- and
    8-bit rows in pairs sharing one slice per input (4 + 8 + 1 = 13 and 8 + 16 + 1 = 25 bits
    of packed weights fit a DSP48E1's A port and a DSP48E2's), an odd last row alone; 16-bit
    data one slice per MAC (17 x 16; 49 bits would not pack); per output row a
    post-processing lane of 4 + 2 slices (33 x 33 and 42 x 18 products, either DSP type)."""
    assert mem.acc_bits == 32 and mem.act_bits == mem.weight_bits in (4, 8, 16)
    macs = -(-tm // 2) * tn if mem.act_bits <= 8 else tm * tn
    return macs + 6 * tm


def costs(model, mem):
    """(dsp(tm, tn), bram(tm, tn, tr, kmax, smax)) of a resource model, one design at a
    time: "engine" or a MAC-array model's DSPs per MAC."""
    if model == "engine":
        return (lambda tm, tn: engine_dsps_by_hand(tm, tn, mem)), engine_units
    return (lambda tm, tn: ceil(tm * tn * model)), buffer_units


def resources_of(model, dsp_type="DSP48E1"):
    return EngineResources(dsp_type) if model == "engine" else MacArrayResources(model)


def brute_force(layers, mem, model, max_dsp, max_bram):
    """Every candidate design, evaluated one at a time; the best and the Pareto front
    (None when no design fits)."""
    dsp_of, bram_of = costs(model, mem)
    kmax = max(l.kh for l in layers)
    smax = max(l.sh for l in layers)
    designs = []
    for tm, tn, tr in product(tile_candidates([l.m for l in layers]),
                              tile_candidates([l.n for l in layers]),
                              tile_candidates([l.r for l in layers] + [l.c for l in layers])):
        tm, tn, tr = int(tm), int(tn), int(tr)
        dsp = dsp_of(tm, tn)
        if dsp > max_dsp:
            continue
        bram = bram_of(mem, tm, tn, tr, kmax, smax)
        if bram > max_bram:
            continue
        cycles = sum(int(layer_cycles(l, mem, tm, tn, tr, tr)[0]) for l in layers)
        designs.append((cycles, dsp, bram))
    if not designs:
        return None
    best = min(designs)
    front, last = [], None
    for cycles, dsp, _ in sorted(designs, key=lambda d: (d[1], d[0])):
        if last is None or cycles < last:
            front.append((dsp, cycles))
            last = cycles
    return best, front


small_layers = st.lists(st.builds(
    lambda m, n, r, k, s: Layer("l", "conv", m, n, r, r, k, k, s, s,
                                in_h=(r - 1) * s + k, in_w=(r - 1) * s + k),
    st.integers(1, 24), st.integers(1, 24), st.integers(1, 12), st.sampled_from([1, 3]),
    st.integers(1, 2)), min_size=1, max_size=2)


@settings(max_examples=40)
@given(layers=small_layers, dsp=st.integers(1, 400), bram36=st.integers(4, 60),
       bytes_per_cycle=st.sampled_from([1.0, 4.0, 16.0]),
       model=st.sampled_from(["engine", 0.5, 1]))
def test_exploration_equals_brute_force(layers, dsp, bram36, bytes_per_cycle, model):
    cfg = HardwareConfig(ddr_width_bits=128, ddr_bytes_per_cycle=bytes_per_cycle,
                         ddr_latency=5)
    mem = Memory.of(cfg)
    device = tiny_device(dsp, bram36)
    expected = brute_force(layers, mem, model, dsp, 2 * bram36)
    if expected is None:
        with pytest.raises(UserError, match="no design fits"):
            explore_engine(layers, cfg, device, resources_of(model))
        return
    expected_best, expected_front = expected
    found = explore_engine(layers, cfg, device, resources_of(model))
    assert (found.best.cycles, found.best.dsp, found.best.bram18) == expected_best
    assert [(d.dsp, d.cycles) for d in found.front] == expected_front


@settings(max_examples=15)
@given(layers=small_layers, budget=st.integers(9, 300), extra=st.integers(1, 100),
       model=st.sampled_from(["engine", 1]))
def test_more_dsps_never_make_the_plan_slower(layers, budget, extra, model):
    # 9 DSPs hold at least one 8-bit MAC (a slice) and its post-processing lane (6)
    device = tiny_device(budget + extra, 200)
    cfg = HardwareConfig(ddr_bytes_per_cycle=4.0)
    small = explore_engine(layers, cfg, device, resources_of(model), max_dsp=budget)
    large = explore_engine(layers, cfg, device, resources_of(model), max_dsp=budget + extra)
    assert large.best.cycles <= small.best.cycles


@settings(max_examples=15)
@given(name=st.sampled_from(["xc7z020", "xczu3eg", "xc7z045"]), layers=small_layers,
       fraction=st.floats(0.05, 1.0), bits=st.sampled_from([8, 16]))
def test_chosen_design_never_exceeds_the_device(name, layers, fraction, bits):
    # the engine as generated (the default), counted one design at a time by `costs`
    device = load_device(name)
    max_dsp = max(1, int(device.dsp * fraction))
    cfg = HardwareConfig(device=name, act_bits=bits, weight_bits=bits)
    found = explore_engine(layers, cfg, device, max_dsp=max_dsp)
    plan = plan_layers(layers, found.config)
    c, mem = found.config, Memory.of(found.config)
    dsp_of, bram_of = costs("engine", mem)
    assert plan.dsp == found.best.dsp == dsp_of(c.tm, c.tn) <= max_dsp <= device.dsp
    assert plan.bram18 == found.best.bram18 <= device.bram18
    assert plan.bram18 == bram_of(mem, c.tm, c.tn, c.tr, c.max_kernel, c.max_stride)
    assert plan.cycles == found.best.cycles


def rtl_builds(cfg) -> bool:
    """The engine's structure stated by hand (docs/engine.md), the oracle for what the
    explorer may propose: a memory word holds one feature row of tn activations; a Q x L
    weight row and a channel block's parameters (four int32 per channel) are whole words;
    every output block (Q channels) starts on a byte of its channel plane's words (the writer
    keeps the lanes of the block before it by byte strobes); kernel and stride fit the
    descriptor's 4- and 3-bit fields; the post-processing datapath takes at most 16-bit
    activations and weights."""
    word = cfg.ddr_width_bits
    block_starts = {k * cfg.tm % cfg.tn for k in range(cfg.tn)}
    return (cfg.tn * cfg.act_bits == word
            and all(lane * cfg.act_bits % 8 == 0 for lane in block_starts)
            and (cfg.tm * cfg.tn * cfg.weight_bits) % word == 0
            and (cfg.tm * 4 * 32) % word == 0
            and cfg.max_kernel < 16 and cfg.max_stride < 8
            and max(cfg.act_bits, cfg.weight_bits) <= 16)


def buildable_brute_force(layers, cfg, model, max_dsp, max_bram):
    """Every (tm, tn) the RTL engine can build (`rtl_builds`) with tm a multiple of tn (the
    explorer's buildable space), with every candidate row tile (the same Tr space as
    `brute_force`), one at a time."""
    mem = Memory.of(cfg)
    dsp_of, bram_of = costs(model, mem)
    kmax = max(l.kh for l in layers)
    smax = max(l.sh for l in layers)
    designs = []
    rows = tile_candidates([l.r for l in layers] + [l.c for l in layers])
    for tm, tn, tr in product(range(1, 33), range(1, 17), (int(t) for t in rows)):
        if tm % tn or not rtl_builds(cfg.with_(tm=tm, tn=tn, max_kernel=kmax,
                                                max_stride=smax)):
            continue
        dsp = dsp_of(tm, tn)
        bram = bram_of(mem, tm, tn, tr, kmax, smax)
        if dsp > max_dsp or bram > max_bram:
            continue
        designs.append((sum(int(layer_cycles(l, mem, tm, tn, tr, tr)[0]) for l in layers),
                        dsp, bram))
    return min(designs) if designs else None


@settings(max_examples=8, deadline=None)
@given(layers=small_layers, dsp=st.integers(8, 700), bram36=st.integers(8, 60),
       bits=st.sampled_from([4, 8, 16]), model=st.sampled_from(["engine", 1]))
def test_buildable_exploration_equals_brute_force_and_compiles(layers, dsp, bram36, bits,
                                                               model):
    from fpgacnn.errors import UserError
    from fpgacnn.hw.program import check_config

    cfg = HardwareConfig(act_bits=bits, weight_bits=bits, ddr_width_bits=64,
                         ddr_bytes_per_cycle=4.0, ddr_latency=5)
    expected = buildable_brute_force(layers, cfg, model, dsp, 2 * bram36)
    try:
        found = explore_engine(layers, cfg, tiny_device(dsp, bram36), resources_of(model),
                               buildable=True)
    except UserError:
        assert expected is None
        return
    assert (found.best.cycles, found.best.dsp, found.best.bram18) == expected
    assert rtl_builds(found.config)
    check_config(found.config)


def test_engine_problems_agree_with_the_hand_written_structure():
    from fpgacnn.errors import UserError
    from fpgacnn.hw.program import check_config

    for tm, tn, bits, width, kernel, stride in product(
            [4, 7, 8, 12, 16, 24, 64], [2, 4, 7, 8, 16], [4, 8, 16, 32], [32, 64, 128],
            [3, 15, 16], [1, 7, 8]):
        cfg = HardwareConfig(tm=tm, tn=tn, act_bits=bits, weight_bits=bits,
                             ddr_width_bits=width, max_kernel=kernel, max_stride=stride)
        assert (not cfg.engine_problems()) == rtl_builds(cfg), cfg
    # 2-bit weights with 16-bit activations: a weight row of tm * 4 * 2 bits in 64-bit words
    for tm, expected in [(4, False), (8, True), (12, False), (16, True)]:
        cfg = HardwareConfig(tm=tm, tn=4, act_bits=16, weight_bits=2, ddr_width_bits=64)
        assert (not cfg.engine_problems()) == rtl_builds(cfg) == expected, cfg
    # 12-bit activations in 48-bit words: tm * 128 parameter bits in whole words
    for tm, expected in [(4, False), (8, False), (12, True)]:
        cfg = HardwareConfig(tm=tm, tn=4, act_bits=12, weight_bits=12, ddr_width_bits=48)
        assert (not cfg.engine_problems()) == rtl_builds(cfg) == expected, cfg


def test_check_config_raises_every_engine_problem():
    import pytest
    from fpgacnn.errors import UserError
    from fpgacnn.hw.program import check_config

    check_config(HardwareConfig())
    check_config(HardwareConfig(tm=12, tn=8))     # blocks start on lanes 0 and 4: bytes
    # 4-bit lanes: a block of 5 channels starts on lanes 1, 2, 3 of 4, inside a byte
    bad = HardwareConfig(tm=5, tn=4, act_bits=4, weight_bits=4, ddr_width_bits=16,
                         max_kernel=16)
    with pytest.raises(UserError) as e:
        check_config(bad)
    message = str(e.value)
    assert "gcd(tm, tn) * act_bits = 4 must be a multiple of 8" in message
    assert "max_kernel = 16" in message
    assert "\n" not in message


def test_zhang_fp32_design_is_not_buildable_by_the_rtl_engine():
    # <64, 7> in fp32 is the paper's design, not ours: the explorer must not be held to the
    # RTL's constraints for it (the CLI explores --float32 without them).
    cfg = HardwareConfig(tm=64, tn=7, act_bits=32, weight_bits=32, acc_bits=32)
    assert len(cfg.engine_problems()) >= 2
