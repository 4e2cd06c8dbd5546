"""Engines whose output tile (tm = Q channels) is not a multiple of the plane (tn = L lanes).

An output block then starts inside a plane of the feature map and shares it with its
neighbours (docs/engine.md, the writer). Oracles: `fpgacnn.golden.run` for every integer
(through `simulate`, and by decoding the raw planes with numpy here, padding lanes included);
the planner's cycle model (within 3%); the loop nest written in Python for the sequencer.
"""

import numpy as np
import pytest
import torch
from torch import nn

from fpgacnn.cli import main
from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.frontends.torch import from_torch
from fpgacnn.golden import quantize_input, run as golden_run
from fpgacnn.quant import QuantConfig, quantize

pytest.importorskip("fpgacnn.hw.engine", reason="the engine top-level is not built yet")

from fpgacnn.hw.compiler import compile_network  # noqa: E402
from fpgacnn.sim.check import engine_device, simulate  # noqa: E402

# 12 = 8 + 4: blocks start at lane 0 or 4 of a plane; 24 = 16 + 8: at lane 0 or 8
TWELVE = HardwareConfig(tm=12, tn=8, tr=8, tc=8, max_kernel=7, max_stride=2,
                        ddr_width_bits=64, burst_len=8, ddr_latency=12, ddr_bytes_per_cycle=8.0)
TWENTY_FOUR = HardwareConfig(tm=24, tn=16, tr=6, tc=5, max_kernel=7, max_stride=2,
                             ddr_width_bits=128, burst_len=16, ddr_latency=20,
                             ddr_bytes_per_cycle=10.0)
FOUR = TWELVE.with_(tm=4, tr=5, tc=7)     # Q < L: two blocks share each plane
CONFIGS = {"12x8": TWELVE, "24x16": TWENTY_FOUR, "4x8": FOUR}
AFFINE = QuantConfig(scheme="affine", bits=8, per_channel=True)
POW2 = QuantConfig(scheme="pow2", bits=8, rounding="half_even")


@pytest.fixture(scope="module")
def devices():
    return {name: engine_device(config) for name, config in CONFIGS.items()}


def quantized(make_module, shape, qconfig, seed):
    """A quantized model whose weights and input both come from `seed`."""
    torch.manual_seed(seed)
    module = make_module().eval()
    x = torch.randn(*shape)
    qmodel = quantize(from_torch(module, x), x.numpy(), qconfig)
    return qmodel, quantize_input(qmodel, x.numpy()[:1])


def within_three_percent(cycles, planned):
    assert abs(cycles - planned) <= 0.03 * planned, f"simulated {cycles}, planned {planned}"


@pytest.mark.parametrize("name,cin,cout,size,k,stride", [
    ("12x8", 5, 20, 12, 3, 1),       # 20 channels: blocks at lanes 0 and 4, 2 + 2 planes
    ("12x8", 9, 36, 11, 3, 2),       # three blocks, the middle one across planes 1 and 2
    ("12x8", 16, 7, 10, 5, 1),       # one block, fewer channels than a plane
    ("24x16", 6, 20, 13, 3, 1),      # one block: lanes 20..31 of plane 1 written as 0
    ("24x16", 17, 40, 9, 3, 1),      # blocks at lanes 0 and 8, the second across 2 planes
    ("24x16", 3, 50, 14, 5, 2),
    ("4x8", 6, 13, 10, 3, 1)])
def test_conv_equals_golden_and_planner(devices, name, cin, cout, size, k, stride):
    qmodel, x = quantized(lambda: nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2),
                                                nn.ReLU()),
                          (1, cin, size, size), AFFINE, cout)
    (result,) = simulate(qmodel, x, CONFIGS[name], device=devices[name])
    assert result.mismatches == 0
    within_three_percent(result.cycles, result.planned_cycles)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fc_equals_golden_and_planner(devices, name):
    qmodel, x = quantized(lambda: nn.Sequential(nn.Linear(45, 30)), (1, 45), AFFINE, 7)
    (result,) = simulate(qmodel, x, CONFIGS[name], device=devices[name])
    assert result.mismatches == 0
    within_three_percent(result.cycles, result.planned_cycles)


def test_fused_pool_equals_golden_and_planner(devices):
    qmodel, x = quantized(lambda: nn.Sequential(nn.Conv2d(4, 20, 3, padding=1), nn.ReLU(),
                                                nn.MaxPool2d(2)),
                          (1, 4, 14, 14), POW2, 3)
    (result,) = simulate(qmodel, x, TWELVE, device=devices["12x8"])
    assert "+" in result.name                   # conv and pool ran as one engine step
    assert result.mismatches == 0
    within_three_percent(result.cycles, result.planned_cycles)


@pytest.mark.parametrize("name,cout", [("12x8", 20), ("24x16", 40), ("24x16", 20),
                                       ("4x8", 13)])
def test_every_lane_of_every_plane_is_written(devices, name, cout):
    """The output region starts as 0xA5 garbage: after the run each plane holds the golden
    channels in its lanes and 0 in the lanes beyond the real channels (decoded with numpy
    from the "(n cb h w) l" convention, not by the exporter)."""
    config = CONFIGS[name]
    qmodel, x = quantized(lambda: nn.Sequential(nn.Conv2d(3, cout, 3, padding=1)),
                          (1, 3, 9, 9), AFFINE, 11)
    program = compile_network(qmodel, config)
    (step,) = program.steps
    region = program.ddr_map.region(f"fmap.{step.output}")
    image = bytearray(program.image_with_input(x))
    image[region.offset:region.offset + region.size] = b"\xa5" * region.size
    device = devices[name]
    device.load(bytes(image))
    device.start(step.descriptor)
    device.wait()
    l, planes = config.tn, -(-cout // config.tn)
    raw = np.frombuffer(device.read(region.offset, planes * 9 * 9 * l), np.uint8)
    got = raw.reshape(planes, 9, 9, l).transpose(0, 3, 1, 2).reshape(planes * l, 9, 9)
    want = golden_run(qmodel, x)[qmodel.outputs[0]][0]
    assert not qmodel.layers[0].output.signed
    np.testing.assert_array_equal(got[:cout], want)
    assert not got[cout:].any()


def test_next_layer_reads_the_shared_planes(devices):
    """conv 3 -> 20 writes planes shared by two blocks; conv 20 -> 13 and the FC after a
    flatten (run as a 3x3 convolution over them) read them back."""
    qmodel, x = quantized(lambda: nn.Sequential(
        nn.Conv2d(3, 20, 3, padding=1), nn.ReLU(), nn.Conv2d(20, 13, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(13 * 3 * 3, 10)), (1, 3, 8, 8), AFFINE, 5)
    for name in sorted(CONFIGS):
        results = simulate(qmodel, x, CONFIGS[name], device=devices[name])
        assert [r.unit for r in results] == ["engine"] * 3
        assert [r.mismatches for r in results] == [0, 0, 0], name
        for r in results:
            within_three_percent(r.cycles, r.planned_cycles)


def test_sequencer_places_blocks_inside_planes():
    """The step sequencer's output addresses against the loop nest: block mb starts in plane
    mb * Q // L (test_hw_controller's model, which was written for that formula)."""
    from test_hw_controller import FMT, conv_layer, model_steps, simulate as run_sequencer

    from fpgacnn.hw.program import compile_layer

    ddr = {"input": 0x1000, "output": 0x40000, "weight": 0x80000, "params": 0xC0000}
    for tm, tn, m in [(12, 8, 44), (6, 4, 23), (3, 4, 13), (20, 8, 41)]:
        config = HardwareConfig(tm=tm, tn=tn, tr=4, tc=3, ddr_width_bits=tn * 8)
        desc = compile_layer(conv_layer(3, m, 3, 1, 1), config, ddr, input_shape=(1, 3, 7, 5),
                             input_format=FMT)
        assert run_sequencer(config, desc) == model_steps(config, 3, m, 7, 5, 3, 1, 1, False,
                                                          ddr)


def test_what_is_still_refused(tmp_path, capsys):
    """Shared planes are kept apart by byte strobes: the lanes of gcd(tm, tn) channels must
    be whole bytes. 48 x 32 (the VGG16 target) and 12 x 8 are built."""
    assert HardwareConfig(tm=48, tn=32, ddr_width_bits=256).engine_problems() == []
    assert TWELVE.engine_problems() == []
    assert HardwareConfig(tm=6, tn=16, act_bits=4, weight_bits=4).engine_problems() == []
    bad = HardwareConfig(tm=5, tn=16, act_bits=4, weight_bits=4)     # 4-bit lanes, odd lane
    (problem,) = bad.engine_problems()
    assert problem.startswith("gcd(tm, tn) * act_bits = 4 must be a multiple of 8")
    qmodel, _ = quantized(lambda: nn.Sequential(nn.Conv2d(3, 6, 3)), (1, 3, 6, 6),
                          QuantConfig(bits=4), 0)
    qmodel.save(tmp_path / "q.npz")
    bad.save(tmp_path / "hw.toml")
    code = main(["compile", str(tmp_path / "q.npz"), "--config", str(tmp_path / "hw.toml"),
                 "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "gcd(tm, tn) * act_bits = 4" in err
    with pytest.raises(UserError):
        from fpgacnn.hw.program import check_config
        check_config(bad)
