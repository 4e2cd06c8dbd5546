"""The engine in Verilator, against the golden model, the planner and yosys.

Oracles: `fpgacnn.golden.run` (the numeric contract, bit for bit) for the outputs; the
planner's cycle model (within 3%) and its DSP/BRAM estimate (within 10%) for the figures.
"""

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch import nn

from fpgacnn.cli import main
from fpgacnn.config import HardwareConfig
from fpgacnn.frontends.torch import from_torch
from fpgacnn.golden import quantize_input
from fpgacnn.quant import QuantConfig, quantize

pytest.importorskip("fpgacnn.hw.engine", reason="the engine top-level is not built yet")

from fpgacnn.sim.check import engine_device, simulate  # noqa: E402

SMALL = HardwareConfig(tm=8, tn=8, tr=8, tc=8, max_kernel=11, max_stride=4,
                       ddr_width_bits=64, burst_len=8, ddr_latency=12, ddr_bytes_per_cycle=8.0)
NARROW = HardwareConfig(tm=16, tn=4, tr=6, tc=5, max_kernel=11, max_stride=4,
                        ddr_width_bits=32, burst_len=16, ddr_latency=20,
                        ddr_bytes_per_cycle=3.0)
# one output block of two planes a tile: each block is one step (docs/planning.md)
WIDE = HardwareConfig(tm=16, tn=8, tr=8, tc=8, max_kernel=11, max_stride=4,
                      ddr_width_bits=64, burst_len=8, ddr_latency=12, ddr_bytes_per_cycle=8.0)
CONFIGS = {"small": SMALL, "narrow": NARROW, "wide": WIDE}
SCHEMES = [QuantConfig(scheme="affine", bits=8, per_channel=True),
           QuantConfig(scheme="affine", bits=8, mode="single_round"),
           QuantConfig(scheme="pow2", bits=8, rounding="half_even"),
           QuantConfig(scheme="pow2", bits=8, rounding="half_up"),
           QuantConfig(scheme="pow2", bits=8, rounding="truncate")]


@pytest.fixture(scope="module")
def devices():
    return {name: engine_device(config) for name, config in CONFIGS.items()}


def quantized(module, shape, qconfig, seed):
    torch.manual_seed(seed)
    x = torch.randn(*shape)
    qmodel = quantize(from_torch(module.eval(), x), x.numpy(), qconfig)
    return qmodel, quantize_input(qmodel, x.numpy())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_conv_layer_equals_the_golden_model(devices, data):
    name = data.draw(st.sampled_from(sorted(CONFIGS)))
    config = CONFIGS[name]
    k = data.draw(st.integers(1, 11))
    stride = data.draw(st.integers(1, 4))
    pad = data.draw(st.integers(0, min(3, k - 1)))
    size = data.draw(st.integers(max(k - 2 * pad, 1), k + 6))
    cin, cout = data.draw(st.integers(1, 11)), data.draw(st.integers(1, 19))
    act = data.draw(st.sampled_from([nn.Identity(), nn.ReLU()]))
    module = nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad), act)
    qmodel, x = quantized(module, (2, cin, size, size), data.draw(st.sampled_from(SCHEMES)),
                          data.draw(st.integers(0, 99)))
    (result,) = simulate(qmodel, x, config, device=devices[name])
    assert result.mismatches == 0


@pytest.mark.parametrize("qconfig", SCHEMES[:3], ids=["affine", "single_round", "pow2"])
def test_fc_layer_equals_the_golden_model(devices, qconfig):
    qmodel, x = quantized(nn.Sequential(nn.Linear(37, 21)), (4, 37), qconfig, 5)
    (result,) = simulate(qmodel, x, SMALL, device=devices["small"])
    assert result.mismatches == 0


def test_sim_command_json(devices, tmp_path, capsys):
    qmodel, _ = quantized(nn.Sequential(nn.Conv2d(5, 9, 3, padding=1), nn.ReLU()),
                          (2, 5, 12, 12), SCHEMES[0], 1)
    qmodel.save(tmp_path / "conv.npz")
    SMALL.save(tmp_path / "hw.toml")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((1, 5, 12, 12)))
    argv = ["sim", str(tmp_path / "conv.npz"), "--config", str(tmp_path / "hw.toml"),
            "--input", str(tmp_path / "x.npy")]
    assert main(argv + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [layer["name"] for layer in report["layers"]] == [qmodel.layers[0].name]
    assert report["total_mismatches"] == 0
    assert report["total_cycles"] == report["layers"][0]["cycles"] > 0
    assert main(argv + ["--max-cycles", "50"]) == 2
    assert "cycle limit of 50 cycles; controller at" in capsys.readouterr().err


def within_three_percent(cycles, planned):
    assert abs(cycles - planned) <= 0.03 * planned, f"simulated {cycles}, planned {planned}"


@pytest.mark.parametrize("name,cin,cout,size,k,stride", [
    ("small", 16, 16, 16, 3, 1), ("small", 8, 24, 20, 5, 1), ("small", 32, 8, 10, 1, 1),
    ("small", 5, 9, 12, 3, 1), ("small", 6, 10, 19, 3, 2),
    ("small", 3, 8, 27, 11, 4),
    ("narrow", 6, 20, 14, 3, 1), ("narrow", 9, 17, 13, 5, 2), ("wide", 5, 16, 12, 3, 1)])
def test_cycles_within_three_percent_of_the_planner(devices, name, cin, cout, size, k, stride):
    # "narrow" is memory-bound: 3 bytes a cycle on a 4-byte port, Q x L = 16 x 4
    qmodel, x = quantized(nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=k // 2)),
                          (1, cin, size, size), SCHEMES[0], 2)
    (result,) = simulate(qmodel, x, CONFIGS[name], device=devices[name])
    assert result.mismatches == 0
    within_three_percent(result.cycles, result.planned_cycles)


def test_fc_cycles_within_three_percent_of_the_planner(devices):
    qmodel, x = quantized(nn.Sequential(nn.Linear(300, 70)), (1, 300), SCHEMES[0], 3)
    (result,) = simulate(qmodel, x, SMALL, device=devices["small"])
    assert result.mismatches == 0
    within_three_percent(result.cycles, result.planned_cycles)


def test_pooled_layer_equals_golden_and_planner(devices):
    """A conv with the fused 2x2 max-pool: the descriptor of the image is replaced by the
    pooled one; the output is compared with the golden conv output pooled by numpy."""
    from dataclasses import replace

    from fpgacnn.golden import run as golden_run
    from fpgacnn.hw.program import compile_layer
    from fpgacnn.plan.engine import Memory, layer_cycles
    from fpgacnn.plan.workload import layer_from_op
    from fpgacnn.sim.check import build_engine_image

    qmodel, x = quantized(nn.Sequential(nn.Conv2d(5, 11, 3, padding=1), nn.ReLU()),
                          (1, 5, 18, 18), SCHEMES[2], 4)
    (layer,) = qmodel.layers
    engine_image = build_engine_image(qmodel, SMALL, x)
    ddr = engine_image.ddr_map
    addresses = {"input": ddr.region(f"fmap.{layer.inputs[0]}").offset,
                 "output": ddr.region(f"fmap.{layer.name}").offset,
                 "weight": ddr.region(f"{layer.name}.weight").offset}
    at = engine_image.descriptors[layer.name]
    image = bytearray(engine_image.image)
    pooled = compile_layer(layer, SMALL, {**addresses, "params": _param_addr(image, at)},
                           input_shape=(1, 5, 18, 18),
                           input_format=qmodel.format_of(layer.inputs[0]),
                           rounding=qmodel.rounding, pool=True)
    image[at:at + len(pooled.to_bytes())] = pooled.to_bytes()
    device = devices["small"]
    device.load(bytes(image))
    device.start(at)
    run = device.wait()
    conv = golden_run(qmodel, x, keep=True)[layer.name][0]            # (11, 18, 18)
    want = conv.reshape(11, 9, 2, 9, 2).max(axis=(2, 4))
    l = SMALL.tn
    raw = device.read(addresses["output"], 2 * 9 * 9 * l)
    values = np.frombuffer(raw, np.int8 if layer.output.signed else np.uint8).astype(np.int64)
    got = values.reshape(2, 9, 9, l).transpose(0, 3, 1, 2).reshape(2 * l, 9, 9)[:11]
    np.testing.assert_array_equal(got, want)
    planned = replace(layer_from_op(layer.name, layer.op, (1, 5, 18, 18)), pool=2)
    cycles, _ = layer_cycles(planned, Memory.of(SMALL), SMALL.tm, SMALL.tn, SMALL.tr, SMALL.tc)
    within_three_percent(run.cycles, int(cycles))


def _param_addr(image, at):
    """The parameter address of the descriptor at `at` (its last field, 32 bits)."""
    from fpgacnn.hw.program import DESCRIPTOR_BITS, DESCRIPTOR_WORDS

    value = int.from_bytes(image[at:at + 4 * DESCRIPTOR_WORDS], "little")
    return value >> (DESCRIPTOR_BITS - 32) & 0xFFFFFFFF


def test_engine_timing_is_the_planners():
    from fpgacnn.hw.engine import timing
    from fpgacnn.plan.engine import ENGINE

    assert timing() == ENGINE
