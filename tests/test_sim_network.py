"""Whole networks on the simulated accelerator (Verilator) against the golden model.

Oracle: `fpgacnn.golden.run` (every layer's integers, exactly). One small configuration, its
simulator built once (cached under $FPGACNN_CACHE) and shared by the module.
"""

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from fpgacnn import golden, zoo
from fpgacnn.cli import main
from fpgacnn.config import HardwareConfig
from fpgacnn.frontends.torch import from_torch
from fpgacnn.hw.compiler import compile_network
from fpgacnn.quant import QuantConfig, quantize

pytest.importorskip("fpgacnn.hw.engine", reason="the engine top-level is not built yet")

from fpgacnn.sim.check import engine_device, first_mismatch, simulate  # noqa: E402
from fpgacnn.sim.network import run_program  # noqa: E402

SMALL = HardwareConfig(tm=8, tn=8, tr=8, tc=8, max_kernel=11, max_stride=4,
                       ddr_width_bits=64, burst_len=8, ddr_latency=12, ddr_bytes_per_cycle=8.0)


@pytest.fixture(scope="module")
def device():
    """The accelerator (engine + vector unit) when this version has it, else the engine; an
    engine-only program runs on either (unit 0 is the engine)."""
    try:
        from fpgacnn.hw.accelerator import accelerator_top
    except ImportError:
        return engine_device(SMALL)
    from fpgacnn.sim.runtime import SimulatedDevice

    return SimulatedDevice(accelerator_top(SMALL), SMALL)


@pytest.fixture(scope="module")
def digits():
    x_train = zoo.digits_data()[0]
    qmodel = quantize(zoo.load("digits"), x_train[:64], QuantConfig(bits=8))
    return qmodel, golden.quantize_input(qmodel, x_train[100:101])


def quantized(module, shape, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(*shape)
    qmodel = quantize(from_torch(module.eval(), x), x.numpy(), QuantConfig(bits=8))
    return qmodel, golden.quantize_input(qmodel, x.numpy()[:1])


def test_digits_end_to_end(device, digits):
    qmodel, x = digits
    results = simulate(qmodel, x, SMALL, device=device)
    assert [r.name for r in results] == ["conv1", "conv2+pool1", "conv3+pool2", "fc"]
    assert all(r.mismatches == 0 and r.cycles > 0 and r.elements > 0 for r in results)
    outputs, runs = run_program(compile_network(qmodel, SMALL), device, x)
    np.testing.assert_array_equal(outputs["fc"], golden.run(qmodel, x)["fc"])
    assert [r.step.name for r in runs] == [r.name for r in results]


def test_first_wrong_element_is_located(device, digits):
    """A corrupted bias of conv1's channel 3 in the image: the report names conv1, channel 3."""
    qmodel, x = digits
    program = compile_network(qmodel, SMALL)
    region = program.ddr_map.region("conv1.params")
    image = bytearray(program.image)
    bias_of_channel_3 = region.offset + 3 * 4          # row 0 holds the biases, int32 each
    image[bias_of_channel_3 + 3] ^= 0x10               # + 2**28: channel 3 saturates
    broken = dataclasses.replace(program, image=bytes(image))
    results = simulate(qmodel, x, SMALL, device=device, program=broken)
    wrong = first_mismatch(results)
    assert wrong.name == "conv1" and wrong.first_mismatch[:2] == (0, 3)
    expected = golden.run(qmodel, x, keep=True)["conv1"]
    assert wrong.mismatches == np.count_nonzero(expected[0, 3] != qmodel.layer("conv1").out_hi)


def test_softmax_runs_on_the_host_between_engine_runs(device):
    qmodel, x = quantized(nn.Sequential(nn.Conv2d(3, 12, 3), nn.ReLU(), nn.Flatten(),
                                        nn.Linear(12 * 16, 9), nn.Softmax(dim=1)),
                          (4, 3, 6, 6))
    results = simulate(qmodel, x, SMALL, device=device)
    assert [r.unit for r in results] == ["engine", "engine", "host"]
    assert sum(r.mismatches for r in results) == 0 and results[-1].elements == 9


def test_concat_by_address(device):
    """Producers write straight into their channel ranges of the concat's region."""
    from test_hw_compiler import same_format_concat

    qmodel = same_format_concat()
    x = golden.quantize_input(qmodel, np.random.default_rng(4).standard_normal((1, 3, 6, 6)))
    results = simulate(qmodel, x, SMALL, device=device)
    assert [(r.name, r.unit) for r in results] == [("a", "engine"), ("b", "engine"),
                                                   ("cat", "address")]
    assert sum(r.mismatches for r in results) == 0 and results[-1].elements == 16 * 36


def test_sim_command_reports_every_step(device, digits, tmp_path, capsys, monkeypatch):
    """The command on the module's simulator (building another one costs half a minute)."""
    import fpgacnn.sim.network

    monkeypatch.setattr(fpgacnn.sim.network, "program_device", lambda program, config: device)
    qmodel, x = digits
    qmodel.save(tmp_path / "digits.npz")
    SMALL.save(tmp_path / "hw.toml")
    np.save(tmp_path / "x.npy", x)
    status = main(["sim", str(tmp_path / "digits.npz"), "--config", str(tmp_path / "hw.toml"),
                   "--input", str(tmp_path / "x.npy"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["total_mismatches"] == 0
    assert [layer["name"] for layer in report["layers"]][-1] == "fc"
    assert report["total_cycles"] == sum(layer["cycles"] for layer in report["layers"]) > 0


# ---- the vector unit: zoo models and seed 002's route ------------------------------------------

@pytest.fixture(scope="module")
def accelerator(device):
    pytest.importorskip("fpgacnn.hw.accelerator")
    return device


@pytest.fixture(scope="module")
def yolo():
    graph = zoo.load("yolov3-tiny", (1, 3, 32, 32))
    calib = np.random.default_rng(8).standard_normal((2, 3, 32, 32)).astype(np.float32)
    return quantize(graph, calib, QuantConfig(bits=8))


def route_of(yolo):
    """Seed 002's route at its real size: layer 18's 13x13x128 output upsampled to 26x26,
    joined with layer 8's 26x26x256 output; the two inputs have different scales."""
    names = ("layer19_upsample", "layer20_route")
    inputs = {"layer18_conv": (1, 128, 13, 13), "layer8_conv": (1, 256, 26, 26)}
    return dataclasses.replace(
        yolo, name="route", input_shapes=inputs,
        input_formats={t: yolo.format_of(t) for t in inputs},
        layers=tuple(yolo.layer(n) for n in names), outputs=("layer20_route",))


def test_seed_002_route_gives_the_golden_concat(accelerator, yolo):
    """The upsampled input is requantized into its slice by the vector unit; layer 8, which
    has the concat's format, is stored in its slice (here as the graph input)."""
    route = route_of(yolo)
    cat = route.layer("layer20_route")
    assert route.format_of(cat.inputs[0]).scale != route.format_of(cat.inputs[1]).scale
    assert cat.input_requants[0] is not None and route.format_of(cat.inputs[1]) == cat.output
    rng = np.random.default_rng(2)
    x = {t: rng.integers(fmt.lo, fmt.hi + 1, (1,) + route.input_shapes[t][1:])
         for t, fmt in route.input_formats.items()}
    program = compile_network(route, SMALL)
    assert [(s.unit, s.name) for s in program.steps] == [
        ("vector", "layer19_upsample"), ("vector", "layer20_route.in0")]
    outputs, _ = run_program(program, accelerator, x)
    want = golden.run(route, x)["layer20_route"]
    assert want.shape == (1, 384, 26, 26)
    np.testing.assert_array_equal(outputs["layer20_route"], want)


# Full width, reduced input sizes; the FC layers keep their full size (AlexNet's and VGG16's
# stream 58 and 124 MB of weights: most of their simulated cycles).
ZOO_CASES = [("mtcnn-pnet", 12), ("mtcnn-rnet", 24), ("mtcnn-onet", 48), ("squeezenet1_1", 17),
             ("alexnet", 63), ("vgg16", 32), ("resnet18", 32), ("yolov3-tiny", 32)]


@pytest.mark.parametrize("name, size", ZOO_CASES, ids=[c[0] for c in ZOO_CASES])
def test_zoo_model_equals_the_golden_model(accelerator, name, size):
    shape = (1, 3, size, size)
    graph = zoo.load(name, shape)
    calib = np.random.default_rng(0).standard_normal((2,) + shape[1:]).astype(np.float32)
    qmodel = quantize(graph, calib, QuantConfig(bits=8))
    x = golden.quantize_input(qmodel, calib[:1])
    results = simulate(qmodel, x, SMALL, device=accelerator)
    assert sum(r.mismatches for r in results) == 0, first_mismatch(results)
    assert sum(r.elements for r in results) > 0 and all(
        r.cycles > 0 for r in results if r.unit in ("engine", "vector"))
