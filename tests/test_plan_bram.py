"""BRAM model: the published cases (ZynqNet, seed 003), a brute-force oracle, and the CLI."""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fpgacnn.cli import main
from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.plan.bram import (bram18_count_array, check_fits, engine_bram18, engine_buffers,
                               map_buffer, map_buffer_best, words_held_by)

# UG473 Table 1-7/1-8 (7-series) aspect ratios, written here independently of the module.
RAMB18 = [(16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)]
RAMB36 = [(32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72)]


def brute_force_count(width, depth, aspects):
    """Fewest primitives over every aspect ratio, counting columns and rows by enumeration.

    Like the model, this uses one aspect ratio for the whole memory (no mixed shapes), so it
    checks the closed form and the choice of aspect, not the mapping rule itself; the
    published cases above and the capacity bound below are the independent checks.
    """
    best = None
    for d, w in aspects:
        columns = 0
        while columns * w < width:
            columns += 1
        rows = 0
        while rows * d < depth:
            rows += 1
        if best is None or columns * rows < best:
            best = columns * rows
    return best


def test_zynqnet_weight_cache_needs_432_ramb36():
    # WBRAM[16][3][1024][9] of 32-bit words, fully partitioned on dims 1, 2 and 4:
    # 16 * 3 * 9 memories of 1024 words.
    m = map_buffer(32, 1024, copies=16 * 3 * 9, primitive="ramb36")
    assert m.count == 432
    assert m.words == 16 * 3 * 1024 * 9


def test_seed_003_weight_cache_needs_144_ramb18_and_128_overflow():
    # WBRAM[8][1][1024][9] of 32-bit words, partitioned on dim 1: 8 memories of 9216 words.
    m = map_buffer(32, 1024 * 9, copies=8, primitive="ramb18")
    assert m.count == 144
    assert m.words == 73_728
    assert words_held_by(32, 128, "ramb18") == 65_536
    with pytest.raises(UserError) as e:
        check_fits(m, 128)
    text = str(e.value)
    assert "73,728" in text and "65,536" in text and "8,192" in text
    check_fits(m, 144)


def test_true_dual_port_excludes_the_widest_aspect():
    assert map_buffer(36, 512, primitive="ramb18").count == 1
    assert map_buffer(36, 512, primitive="ramb18", true_dual_port=True).count == 2
    assert map_buffer(72, 512, primitive="ramb36").count == 1
    assert map_buffer(72, 512, primitive="ramb36", true_dual_port=True).count == 2


@settings(max_examples=300)
@given(width=st.integers(1, 300), depth=st.integers(1, 70_000), copies=st.integers(1, 40),
       primitive=st.sampled_from(["ramb18", "ramb36"]))
def test_count_is_the_brute_force_minimum_and_never_undercounts_bits(width, depth, copies,
                                                                     primitive):
    aspects = RAMB18 if primitive == "ramb18" else RAMB36
    m = map_buffer(width, depth, copies, primitive)
    assert m.count == copies * brute_force_count(width, depth, aspects)
    capacity = 18 * 1024 if primitive == "ramb18" else 36 * 1024
    assert m.count * capacity >= width * depth * copies
    assert 0 < m.efficiency <= 1
    d, w = m.aspect
    per_copy = m.count // copies
    assert per_copy * d * w >= width * depth      # the chosen shape really holds the words


@settings(max_examples=200)
@given(width=st.integers(1, 300), depth=st.integers(1, 70_000), copies=st.integers(1, 40))
def test_vectorised_count_matches_scalar(width, depth, copies):
    best = min(brute_force_count(width, depth, RAMB18),
               2 * brute_force_count(width, depth, RAMB36))
    assert map_buffer_best(width, depth, copies).bram18 == copies * best
    assert int(bram18_count_array(width, depth, copies)) == copies * best


def test_bad_parameters_name_the_field():
    with pytest.raises(UserError, match="width"):
        map_buffer(0, 10)
    with pytest.raises(UserError, match="depth"):
        map_buffer(8, 2.5)
    with pytest.raises(UserError, match="primitive"):
        map_buffer(8, 10, primitive="uram")


def test_cli_bram_json(capsys):
    assert main(["bram", "--width", "32", "--depth", "1024", "--copies", "432",
                 "--primitive", "ramb36", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["count"] == 432 and out["primitive"] == "ramb36"
    assert out["words"] == 442_368


def test_cli_bram_overflow_exit_2(capsys):
    status = main(["bram", "--width", "32", "--depth", "9216", "--copies", "8",
                   "--primitive", "ramb18", "--available", "128"])
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1
    assert "73,728" in err and "65,536" in err and "8,192" in err


def test_cli_bram_text_fits(capsys):
    assert main(["bram", "--width", "32", "--depth", "9216", "--copies", "8",
                 "--primitive", "ramb18", "--available", "144"]) == 0
    assert "144 RAMB18" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--width", "0", "--depth", "5"],
                                  ["--width", "8", "--depth", "x"],
                                  ["--width", "8", "--depth", "5", "--copies", "-1"]])
def test_cli_bram_bad_numbers_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        status = main(["bram"] + argv)
        raise SystemExit(status)
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("config", [
    HardwareConfig(tm=4, tn=4, tr=4, tc=4, ddr_width_bits=32, max_kernel=3, max_stride=1),
    HardwareConfig(),
    HardwareConfig(tm=64, tn=8, tr=14, tc=14, max_kernel=3, max_stride=1),
    HardwareConfig(tm=16, tn=4, tr=6, tc=5, act_bits=4, weight_bits=4, acc_bits=24,
                   ddr_width_bits=16),
])
def test_engine_buffers_are_the_memories_the_generator_builds(config):
    """The planner's list of the engine's memories against the Amaranth buffers (hw/)."""
    from amaranth.hdl import Fragment

    from fpgacnn.hw import buffers

    built = {"input": buffers.input_buffer(config), "weight": buffers.weight_buffer(config),
             "staging": buffers.staging_buffer(config)}
    # a ping-pong buffer is one memory holding both banks; the accumulators have one bank
    expected = {name: (b.width, 2 * b.depth) for name, b in built.items()}
    accumulators = buffers.AccumulatorBuffer(config)
    expected["accumulator"] = (accumulators.width, accumulators.depth)
    for built_buffer in (*built.values(), accumulators):
        Fragment.get(built_buffer, None)        # elaborated: the memories really are built
    c = config
    assert engine_buffers(c.tm, c.tn, c.tr, c.tc, c.act_bits, c.weight_bits, c.acc_bits,
                          c.max_kernel, c.max_stride) == expected


def test_engine_bram18_counts_arrays_of_designs_like_one():
    tm, tn, tr, tc = [4, 64, 16], [4, 8, 8], [4, 14, 16], [4, 14, 16]
    many = engine_bram18(np.array(tm), np.array(tn), np.array(tr), np.array(tc), 8, 8, 32, 3, 1)
    for i in range(3):
        buffers = engine_buffers(tm[i], tn[i], tr[i], tc[i], 8, 8, 32, 3, 1).values()
        assert many[i] == sum(map_buffer_best(w, d).bram18 for w, d in buffers)
