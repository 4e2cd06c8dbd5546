"""Shift-only post-processing lanes (`post_multipliers = false`): the lane against the golden
"shift" requantization, the compiler's refusals, the planner's DSPs against yosys, and
pow2 networks on the Verilator engine against the golden model."""

import json

import numpy as np
import pytest
import torch
from hypothesis import Phase, given, settings, strategies as st
from torch import nn

from fpgacnn.cli import main
from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.frontends.torch import from_torch
from fpgacnn.golden import quantize_input
from fpgacnn.golden.arith import ROUNDINGS
from fpgacnn.golden.requant import finish, requantize
from fpgacnn.hw.compiler import compile_network
from fpgacnn.hw.program import MODES
from fpgacnn.ir import ops
from fpgacnn.quant import QuantConfig, quantize
from fpgacnn.quant.model import QLayer, Requant, TensorFormat
from test_hw_postproc import simulate

Q = 4
LANES = HardwareConfig(tm=Q, tn=4, ddr_width_bits=32, post_multipliers=False)
INT32 = (-(1 << 31), (1 << 31) - 1)
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
SHIFT_ONLY = HardwareConfig(tm=8, tn=8, tr=8, tc=8, ddr_width_bits=64, burst_len=8,
                            ddr_latency=12, post_multipliers=False)
POW2 = QuantConfig(scheme="pow2", bits=8, rounding="half_even")


def simulate_lanes(accs, bias, shift, ctrl):
    """Feed `accs` (cycles x Q) one row per cycle to shift-only lanes; the outputs."""
    return simulate(accs, bias, [1] * Q, shift, [0] * Q, ctrl, config=LANES)


def golden_lanes(accs, bias, shift, rounding, act, out_zero, lo, hi):
    """golden.requant: "shift" mode with M = 1, then a zero slope when `act`."""
    fmt = TensorFormat(16, True, 1.0, out_zero)
    layer = QLayer("conv", ops.Conv2d(Q, Q, 1), ("x",), fmt, lo, hi,
                   act_multiplier=np.zeros(Q, np.int64) if act else None, act_shift=0)
    acc = np.asarray(accs, np.int64) + np.asarray(bias, np.int64)
    return finish(requantize(acc, Requant("shift", np.ones(Q, np.int64), np.asarray(shift),
                                          rounding)), layer)


def ctrl_of(rounding, act, out_zero, lo, hi):
    return dict(mode=MODES.index("shift"), rq_rounding=ROUNDINGS.index(rounding),
                act_rounding=0, act=int(act), act_shift=0, out_zero=out_zero, out_lo=lo,
                out_hi=hi)


def check_lanes(accs, bias, shift, rounding, act=False, out_zero=0, lo=-(1 << 15),
                hi=(1 << 15) - 1):
    got = simulate_lanes(accs, bias, shift, ctrl_of(rounding, act, out_zero, lo, hi))
    want = golden_lanes(accs, bias, shift, rounding, act, out_zero, lo, hi)
    np.testing.assert_array_equal(got, want)


lanes = lambda s: st.lists(s, min_size=Q, max_size=Q)  # noqa: E731
edge_acc = st.one_of(st.integers(*INT32), st.integers(-(1 << 12), 1 << 12), st.sampled_from(
    [INT32[0], INT32[1], 0, -1, 1, 1 << 30, -(1 << 30), 12345, -12345]))


@settings(max_examples=40, deadline=None, phases=NO_SHRINK)
@given(st.data())
def test_shift_only_lanes_match_golden_shift_mode(data):
    # left shifts up to 29 keep |acc + bias| * 2**left inside the golden model's 64 bits
    n = data.draw(st.integers(1, 10))
    accs = data.draw(st.lists(lanes(edge_acc), min_size=n, max_size=n))
    bias = data.draw(lanes(st.one_of(st.integers(-(1 << 20), 1 << 20),
                                     st.integers(-INT32[1], INT32[1]))))
    shift = data.draw(lanes(st.one_of(st.integers(-29, 0), st.integers(0, 20),
                                      st.integers(0, 61))))
    lo = data.draw(st.integers(-(1 << 15), (1 << 15) - 1))
    hi = data.draw(st.integers(lo, (1 << 15) - 1))
    check_lanes(accs, bias, shift, data.draw(st.sampled_from(ROUNDINGS)),
                act=data.draw(st.booleans()), out_zero=data.draw(st.integers(lo, hi)),
                lo=lo, hi=hi)


LIMITS = [[INT32[0], INT32[1], 0, -1], [INT32[1], INT32[0], 1, -INT32[1]],
          [1 << 30, -(1 << 30), 12345, -12345]]
TIES = [[-3, 3, -1, 1], [-5, 5, -7, 7], [-(1 << 20) - 1, (1 << 20) + 1, 2, -2]]


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("accs, bias, shift", [
    (LIMITS, [INT32[1]] * Q, [0, 1, 31, 61]),            # |acc + bias| up to 2**32 - 1
    (LIMITS, [-INT32[1]] * Q, [33, 32, 60, 2]),
    (LIMITS, [0] * Q, [-1, -9, -17, -29]),               # left shifts: saturate
    (TIES, [0] * Q, [1, 1, 2, 3]),                       # halves: every rounding differs
    ([[1, -1, 0, 3]], [0] * Q, [-42, -41, -60, -17]),    # the largest left shifts
])
def test_shift_only_lanes_at_the_extremes(accs, bias, shift, rounding):
    check_lanes(accs, bias, shift, rounding)
    check_lanes(accs, bias, shift, rounding, act=True, out_zero=-3, lo=-128, hi=127)


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_shift_only_lanes_left_shifts_at_the_widest_output(rounding):
    # 16-bit outputs (the golden model's widest): 2**16 - 2**15 saturates to 2**15 - 1,
    # 2**15 - 2**15 does not; every larger shift saturates
    check_lanes([[1, -1, 1, -1], [3, 0, -2, 1]], [0] * Q, [-15, -16, -17, -20], rounding,
                out_zero=-(1 << 15), lo=-(1 << 15), hi=(1 << 15) - 1)


def test_shift_only_lanes_known_values():
    """Hand-checked: 1000 / 16 = 62.5 -> 62 (half_even), 63 (half_up), 62 (truncate);
    -5 * 2**3 = -40, ReLU'd by a zero slope to 0."""
    for rounding, expected in (("half_even", 62), ("half_up", 63), ("truncate", 62)):
        got = simulate_lanes([[1000, 1000, -5, -5]], [0] * Q, [4, 4, -3, -3],
                             ctrl_of(rounding, act=False, out_zero=0, lo=-128, hi=127))
        assert got.tolist() == [[expected, expected, -40, -40]]
    got = simulate_lanes([[1000, 1000, -5, -5]], [0] * Q, [4, 4, -3, -3],
                         ctrl_of("half_up", act=True, out_zero=0, lo=-128, hi=127))
    assert got.tolist() == [[63, 63, 0, 0]]


# ---- the compiler ----------------------------------------------------------------------------

def quantized(module, shape, qconfig, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(*shape)
    qmodel = quantize(from_torch(module.eval(), x), x.numpy(), qconfig)
    return qmodel, quantize_input(qmodel, x.numpy()[:1])


def conv_relu_pool_fc():
    return nn.Sequential(nn.Conv2d(3, 11, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(11 * 5 * 5, 13))


def refusal(module, shape, qconfig):
    qmodel, _ = quantized(module, shape, qconfig)
    compile_network(qmodel, SHIFT_ONLY.with_(post_multipliers=True))   # runs with multipliers
    with pytest.raises(UserError) as caught:
        compile_network(qmodel, SHIFT_ONLY)
    return qmodel, str(caught.value)


@pytest.mark.parametrize("qconfig, field", [
    (QuantConfig(scheme="affine", bits=8), "requant mode 'gemmlowp'"),
    (QuantConfig(scheme="affine", bits=8, mode="single_round"), "requant mode 'single_round'"),
])
def test_compiler_refuses_affine_models_on_shift_only_lanes(qconfig, field):
    qmodel, message = refusal(conv_relu_pool_fc(), (4, 3, 10, 10), qconfig)
    assert message.startswith(f"layer {qmodel.layers[0].name!r}: {field} needs multipliers")
    assert "post_multipliers = false" in message and "\n" not in message


def test_compiler_refuses_a_leaky_relu_slope_on_shift_only_lanes():
    module = nn.Sequential(nn.Conv2d(3, 6, 3), nn.LeakyReLU(0.125))
    qmodel, message = refusal(module, (4, 3, 8, 8), POW2)
    layer = next(l for l in qmodel.layers if l.act_multiplier is not None)
    assert message.startswith(f"layer {layer.name!r}: activation slope ")
    assert "is not 0" in message


def test_compiler_refuses_an_average_pool_multiplier_on_shift_only_lanes():
    # the vector unit's lanes are shift-only too: a pow2 average pool multiplies by
    # round(2**15 / 4) = 8192
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AvgPool2d(2))
    qmodel, message = refusal(module, (4, 3, 8, 8), POW2)
    pool = next(l for l in qmodel.layers if isinstance(l.op, ops.AvgPool))
    assert message.startswith(f"layer {pool.name!r}: requant multiplier 8192 is not 1")


def test_compile_and_sim_commands_refuse_with_exit_2(tmp_path, capsys):
    qmodel, x = quantized(conv_relu_pool_fc(), (4, 3, 10, 10), QuantConfig(bits=8))
    qmodel.save(tmp_path / "affine.npz")
    SHIFT_ONLY.save(tmp_path / "hw.toml")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((1, 3, 10, 10)))
    common = [str(tmp_path / "affine.npz"), "--config", str(tmp_path / "hw.toml")]
    for argv in (["compile"] + common + ["-o", str(tmp_path / "out")],
                 ["sim"] + common + ["--input", str(tmp_path / "x.npy")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"layer {qmodel.layers[0].name!r}: requant mode" in err
    assert not (tmp_path / "out").exists()


# ---- the planner -----------------------------------------------------------------------------

def plan_json(argv, capsys):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_honours_post_multipliers_false_from_the_config_file(capsys, tmp_path):
    # digits on the xc7z020 (220 DSPs): a 32 x 8 engine needs 128 packed pairs + 32 lanes of
    # 6 = 320 DSP48E1 with multipliers, the 128 pairs alone with shift-only lanes
    toml = tmp_path / "hw.toml"
    HardwareConfig(post_multipliers=False).save(toml)
    argv = ["plan", "zoo:digits", "--device", "xc7z020", "--config", str(toml)]
    fixed = plan_json(argv + ["--set", "tm=32,tn=8"], capsys)
    assert fixed["totals"]["dsp"] == 16 * 8
    assert fixed["config"]["post_multipliers"] is False
    explored = plan_json(argv + ["--explore", "-o", str(tmp_path / "out.toml")], capsys)
    c = HardwareConfig.from_toml(tmp_path / "out.toml")
    assert c.post_multipliers is False
    assert explored["totals"]["dsp"] == (c.tm + 1) // 2 * c.tn <= 220
    front = explored["exploration"]["front"]
    assert front and all(d["dsp"] == (d["tm"] + 1) // 2 * d["tn"] for d in front)


# ---- the engine: yosys and Verilator -------------------------------------------------------

def test_yosys_maps_the_shift_only_engine_as_planned(capsys, tmp_path):
    # the 2 x 2 engine: one packed pair of rows on 2 DSP48E1, lanes without a DSP
    HardwareConfig(tm=2, tn=2, tr=2, tc=2, ddr_width_bits=16, max_kernel=3, max_stride=1,
                   post_multipliers=False).save(tmp_path / "hw.toml")
    assert main(["synth", "--config", str(tmp_path / "hw.toml"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["yosys"]["dsp"] == report["cells"]["DSP48E1"] == report["planned"]["dsp"] \
        == (2 + 1) // 2 * 2


@pytest.fixture(scope="module")
def shift_only_device():
    pytest.importorskip("fpgacnn.hw.engine", reason="the engine top-level is not built yet")
    from fpgacnn.sim.check import engine_device

    return engine_device(SHIFT_ONLY)


@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_pow2_conv_relu_pool_fc_on_shift_only_lanes(shift_only_device, rounding):
    from fpgacnn.sim.check import simulate

    qconfig = QuantConfig(scheme="pow2", bits=8, rounding=rounding)
    qmodel, x = quantized(conv_relu_pool_fc(), (4, 3, 10, 10), qconfig, seed=3)
    results = simulate(qmodel, x, SHIFT_ONLY, device=shift_only_device)
    conv, pool, _, fc = (layer.name for layer in qmodel.layers)     # the ReLU is fused
    assert [(r.unit, r.name) for r in results] == [("engine", f"{conv}+{pool}"),
                                                   ("engine", fc)]
    assert all(r.mismatches == 0 and r.elements > 0 for r in results)


def test_pow2_fc_on_shift_only_lanes(shift_only_device):
    from fpgacnn.sim.check import simulate

    qmodel, x = quantized(nn.Sequential(nn.Linear(37, 21), nn.ReLU()), (4, 37), POW2, seed=5)
    (result,) = simulate(qmodel, x, SHIFT_ONLY, device=shift_only_device)
    assert result.mismatches == 0 and result.elements == 21
