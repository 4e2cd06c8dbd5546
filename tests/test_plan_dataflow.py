"""Layer-parallel allocation: optimal against brute force, buffers, budgets."""

from itertools import product
from math import ceil

import pytest
from hypothesis import given, settings, strategies as st

from fpgacnn.errors import UserError
from fpgacnn.plan.bram import map_buffer_best
from fpgacnn.plan.dataflow import allocate
from fpgacnn.plan.workload import Layer, zhang_alexnet


def stage_cycles(layer, tm, tn):
    return ceil(layer.m / tm) * ceil(layer.n / tn) * layer.r * layer.c * layer.kh * layer.kw


def brute_force(layers, budget, per_mac, cost=max):
    """Smallest cost (max or sum of stage cycles) over every (tm, tn) of every layer."""
    options = [[(ceil(tm * tn * per_mac), stage_cycles(l, tm, tn))
                for tm in range(1, l.m + 1) for tn in range(1, l.n + 1)] for l in layers]
    best = None
    for choice in product(*options):
        if sum(d for d, _ in choice) <= budget:
            value = cost(c for _, c in choice)
            best = value if best is None else min(best, value)
    return best


small = st.lists(st.builds(lambda m, n, r, k: Layer("l", "conv", m, n, r, r, k, k),
                           st.integers(1, 6), st.integers(1, 6), st.integers(1, 5),
                           st.sampled_from([1, 3])), min_size=1, max_size=3)


@settings(max_examples=25)
@given(layers=small, budget=st.integers(3, 60), per_mac=st.sampled_from([0.5, 1, 2]))
def test_allocation_is_optimal(layers, budget, per_mac):
    expected = brute_force(layers, budget, per_mac)
    if expected is None:
        with pytest.raises(UserError, match="DSP needed"):
            allocate(layers, 8, 8, per_mac, budget)
        return
    plan = allocate(layers, 8, 8, per_mac, budget)
    assert plan.interval == expected
    assert plan.dsp <= budget
    for stage, layer in zip(plan.stages, layers):
        assert stage.cycles == stage_cycles(layer, stage.tm, stage.tn)
        assert stage.dsp == ceil(stage.tm * stage.tn * per_mac)
    assert plan.latency == sum(s.cycles for s in plan.stages)
    assert (plan.dsp, plan.interval) in set(plan.front) or any(
        d <= plan.dsp and c <= plan.interval for d, c in plan.front)


@settings(max_examples=25)
@given(layers=small, budget=st.integers(3, 60), per_mac=st.sampled_from([0.5, 1, 2]))
def test_latency_allocation_is_optimal(layers, budget, per_mac):
    expected = brute_force(layers, budget, per_mac, cost=sum)
    if expected is None:
        with pytest.raises(UserError, match="DSP needed"):
            allocate(layers, 8, 8, per_mac, budget, objective="latency")
        return
    plan = allocate(layers, 8, 8, per_mac, budget, objective="latency")
    assert plan.latency == expected
    assert plan.dsp <= budget
    for stage, layer in zip(plan.stages, layers):
        assert stage.cycles == stage_cycles(layer, stage.tm, stage.tn)
    assert plan.front[-1][1] == expected
    for d, c in plan.front:     # each front point is the brute-force optimum at its budget
        assert c == brute_force(layers, d, per_mac, cost=sum)


def test_stage_buffers_follow_the_bram_model():
    layer = Layer("c", "conv", 32, 16, 20, 20, 3, 3, in_h=22, in_w=22)
    plan = allocate([layer], 8, 8, 1, 64)
    s = plan.stages[0]
    weights = map_buffer_best(s.tn * 8, ceil(32 / s.tm) * ceil(16 / s.tn) * 9, s.tm).bram18
    line = map_buffer_best(8, 3 * 22 * ceil(16 / s.tn), s.tn).bram18
    assert (s.weight_bram18, s.line_bram18) == (weights, line)


def test_zhang_alexnet_on_900_dsps_balances_the_pipeline():
    plan = allocate(zhang_alexnet(), 8, 8, 1, 900, 1090)
    assert plan.dsp <= 900 and plan.bram18 <= 1090
    # conv1 cannot go below R*C*K*K = 55*55*121 cycles, whatever its array
    assert plan.interval >= 366_025
    assert max(s.cycles for s in plan.stages) == plan.interval


def test_weights_that_do_not_fit_on_chip_are_an_error():
    fc = Layer("fc6", "linear", 4096, 9216, 1, 1)
    with pytest.raises(UserError, match="RAMB18 needed .* fc6.*available 280"):
        allocate([fc], 8, 8, 1, 220, 280)
