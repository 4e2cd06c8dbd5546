"""The vector unit (inside the accelerator) in Verilator, against the golden model.

Oracle: `fpgacnn.golden.run` (the numeric contract), bit for bit. Each case quantizes a tiny
PyTorch model, puts the golden model's input tensors of one layer into the exporter's DDR
image, runs that layer's descriptor on the accelerator (unit 1) and decodes its output region
with the exporter's layout. One accelerator build (cached) serves every test.
"""

from dataclasses import replace
from math import ceil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch import nn

from fpgacnn.config import HardwareConfig
from fpgacnn.export.ddr import build_ddr_image, tensor_shapes
from fpgacnn.frontends.torch import from_torch
from fpgacnn.golden import quantize_input, run as golden_run
from fpgacnn.hw.accelerator import ENGINE, VECTOR, accelerator_top
from fpgacnn.hw.program import compile_layer, pack_params
from fpgacnn.hw.vector_program import compile_concat_input, compile_vector_layer, vector_params
from fpgacnn.ir import ops
from fpgacnn.quant import QuantConfig, quantize
from fpgacnn.sim.runtime import SimulatedDevice, SimulationError

SMALL = HardwareConfig(tm=8, tn=8, tr=8, tc=8, max_kernel=11, max_stride=4,
                       ddr_width_bits=64, burst_len=8, ddr_latency=12, ddr_bytes_per_cycle=8.0)
AFFINE = QuantConfig(scheme="affine", bits=8)
SINGLE = QuantConfig(scheme="affine", bits=8, mode="single_round")
POW2 = QuantConfig(scheme="pow2", bits=8, rounding="half_even")
POW2_UP = QuantConfig(scheme="pow2", bits=8, rounding="half_up")
SLOW_FIXTURE = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
SCHEMES = {"affine": AFFINE, "single_round": SINGLE, "pow2": POW2, "pow2_half_up": POW2_UP}


@pytest.fixture(scope="module")
def device():
    return SimulatedDevice(accelerator_top(SMALL), SMALL)


@pytest.fixture(autouse=True)
def _seeded():
    """Modules are built in the tests: their weights come from this seed."""
    torch.manual_seed(1234)


def quantized(module, shape, qconfig, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(*shape)
    qmodel = quantize(from_torch(module.eval(), x), x.numpy(), qconfig)
    return qmodel, quantize_input(qmodel, x.numpy())


class _Image:
    """The exporter's image with `fmaps` filled in, plus appended parameters and descriptors."""

    def __init__(self, qmodel, fmaps):
        image, self.ddr_map = build_ddr_image(qmodel, SMALL, fmaps=fmaps)
        self.bytes = bytearray(image)

    def append(self, blob):
        align = self.ddr_map.alignment
        offset = ceil(len(self.bytes) / align) * align
        self.bytes.extend(bytes(offset - len(self.bytes)) + blob)
        return offset

    def fmap(self, name):
        return self.ddr_map.region(f"fmap.{name}").offset

    def finished(self):
        align = self.ddr_map.alignment
        return bytes(self.bytes) + bytes(ceil(len(self.bytes) / align) * align - len(self.bytes))


def _golden(qmodel, x):
    values = golden_run(qmodel, x[:1], keep=True)
    return values, {t: values[t] for t in values if t not in qmodel.input_shapes}


def run_vector_layer(device, qmodel, x, name, max_cycles=200_000):
    """Run layer `name` of `qmodel` on the vector unit; (got, want, RunResult)."""
    values, fmaps = _golden(qmodel, x)
    layer = qmodel.layer(name)
    inputs = {t: values[t] for t in layer.inputs}
    image = _Image(qmodel, fmaps=inputs)
    shapes = tensor_shapes(qmodel)
    addresses = {"inputs": [image.fmap(t) for t in layer.inputs], "output": image.fmap(name),
                 "params": image.append(vector_params(layer, SMALL))}
    desc = compile_vector_layer(layer, SMALL, addresses,
                                input_shapes=[shapes[t] for t in layer.inputs],
                                input_formats=[qmodel.format_of(t) for t in layer.inputs],
                                rounding=qmodel.rounding)
    at = image.append(desc.to_bytes())
    device.load(image.finished())
    device.start(at, VECTOR)
    result = device.wait(max_cycles)
    got = image.ddr_map.read_tensor(device.memory, f"fmap.{name}")
    region = image.ddr_map.region(f"fmap.{name}")
    if np.array_equal(got, values[name]):     # then padding lanes too: the exporter's bytes
        assert device.read(region.offset, region.size) == region.encode(values[name]).tobytes()
    return got, values[name], result


def _check(device, module, shape, qconfig, kind, seed=0):
    qmodel, x = quantized(module, shape, qconfig, seed)
    layers = [layer for layer in qmodel.layers if layer.kind == kind]
    assert layers, f"no {kind} layer in {[layer.kind for layer in qmodel.layers]}"
    got, want, result = run_vector_layer(device, qmodel, x, layers[-1].name)
    assert got.shape == want.shape
    assert np.count_nonzero(got != want) == 0, (got - want)
    assert result.finished
    return result


POOLS = [  # (channels, size, torch pool)
    (5, 9, nn.MaxPool2d(2, 2)),
    (11, 10, nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)),
    (8, 7, nn.MaxPool2d(3, 1, padding=1)),
    (3, 11, nn.MaxPool2d(3, 2, ceil_mode=True)),
    (9, 8, nn.AvgPool2d(2, 2)),
    (6, 7, nn.AvgPool2d(3, 1, padding=1)),
    (13, 5, nn.AdaptiveAvgPool2d(1)),
]


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("case", range(len(POOLS)))
def test_pooling_equals_the_golden_model(device, case, scheme):
    channels, size, pool = POOLS[case]
    module = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), pool)
    kind = {nn.MaxPool2d: "MaxPool", nn.AvgPool2d: "AvgPool",
            nn.AdaptiveAvgPool2d: "GlobalAvgPool"}[type(pool)]
    _check(device, module, (1, 3, size, size), SCHEMES[scheme], kind, seed=case)


@settings(max_examples=15, deadline=None, suppress_health_check=SLOW_FIXTURE)
@given(st.data())
def test_random_pools_equal_the_golden_model(device, data):
    """Kernels 1-5, strides 1-3, padding up to half the kernel, ceil mode, odd sizes."""
    torch.manual_seed(data.draw(st.integers(0, 99)))
    k = data.draw(st.integers(1, 5))
    stride = data.draw(st.integers(1, 3))
    pad = data.draw(st.integers(0, k // 2))
    size = data.draw(st.integers(k, k + 7))
    maximum = data.draw(st.booleans())
    pool = nn.MaxPool2d(k, stride, pad, ceil_mode=data.draw(st.booleans())) if maximum \
        else nn.AvgPool2d(k, stride, pad)
    channels = data.draw(st.integers(1, 20))
    module = nn.Sequential(nn.Conv2d(2, channels, 1), pool)
    scheme = SCHEMES[data.draw(st.sampled_from(sorted(SCHEMES)))]
    _check(device, module, (1, 2, size, size + 1), scheme, "MaxPool" if maximum else "AvgPool",
           seed=data.draw(st.integers(0, 99)))


@pytest.mark.parametrize("scheme", ["affine", "pow2"])
def test_darknet_same_max_pool_pads_right_and_bottom(device, scheme):
    """YOLOv3-tiny's layer 11: size 2, stride 1, one padding column/row on the right/bottom."""
    module = nn.Sequential(nn.Conv2d(3, 10, 3, padding=1), nn.MaxPool2d(3, 1, padding=1))
    qmodel, x = quantized(module, (1, 3, 7, 7), SCHEMES[scheme])
    pool = qmodel.layers[-1]
    darknet = replace(pool, op=ops.MaxPool(2, 1, padding=(0, 0, 1, 1)))
    qmodel = replace(qmodel, layers=tuple(qmodel.layers[:-1]) + (darknet,))
    got, want, _ = run_vector_layer(device, qmodel, x, darknet.name)
    assert np.array_equal(got, want)


class Residual(nn.Module):
    def __init__(self, channels, gain):
        super().__init__()
        self.a = nn.Conv2d(3, channels, 3, padding=1)
        self.b = nn.Conv2d(3, channels, 1)
        with torch.no_grad():
            self.b.weight *= gain

    def forward(self, x):
        return torch.relu(self.a(x) + self.b(x))


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_residual_add_of_differently_scaled_inputs(device, scheme):
    qmodel, x = quantized(Residual(11, 6.0), (1, 3, 6, 5), SCHEMES[scheme])
    a, b = qmodel.layer("a").output, qmodel.layer("b").output
    assert a.scale != b.scale
    got, want, _ = run_vector_layer(device, qmodel, x, qmodel.layers[-1].name)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("scheme", ["affine", "pow2"])
def test_upsample_and_standalone_activations(device, scheme):
    module = nn.Sequential(nn.Conv2d(3, 9, 3, padding=1), nn.MaxPool2d(2), nn.LeakyReLU(0.1),
                           nn.Upsample(scale_factor=2), nn.MaxPool2d(1), nn.PReLU(9))
    qmodel, x = quantized(module, (1, 3, 10, 6), SCHEMES[scheme])
    kinds = [layer.kind for layer in qmodel.layers]
    for kind in ("LeakyReLU", "Upsample", "PReLU"):
        assert kind in kinds, kinds
        name = qmodel.layers[kinds.index(kind)].name
        got, want, _ = run_vector_layer(device, qmodel, x, name)
        assert np.array_equal(got, want), kind


@settings(max_examples=10, deadline=None, suppress_health_check=SLOW_FIXTURE)
@given(st.data())
def test_random_adds_and_upsamples_equal_the_golden_model(device, data):
    """Adds of inputs up to 8x coarser or 8x finer than each other, upsample x2 and x3."""
    channels, h, w = (data.draw(st.integers(1, 20)), data.draw(st.integers(1, 7)),
                      data.draw(st.integers(1, 7)))
    scheme = SCHEMES[data.draw(st.sampled_from(sorted(SCHEMES)))]
    seed = data.draw(st.integers(0, 99))
    torch.manual_seed(seed)
    if data.draw(st.booleans()):
        gain = data.draw(st.floats(0.125, 8.0))
        _check(device, Residual(channels, gain), (1, 3, h, w), scheme, "Add", seed)
    else:
        module = nn.Sequential(nn.Conv2d(3, channels, 1),
                               nn.Upsample(scale_factor=data.draw(st.integers(2, 3))))
        _check(device, module, (1, 3, h, w), scheme, "Upsample", seed)


class Route(nn.Module):
    """YOLOv3-tiny's route: two branches of different scales joined on channels (seed 002)."""

    def __init__(self, first=8, second=5, gain=9.0):
        super().__init__()
        self.a = nn.Conv2d(3, first, 3, padding=1)
        self.b = nn.Conv2d(3, second, 1)
        with torch.no_grad():
            self.b.weight *= gain

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], 1)


@pytest.mark.parametrize("scheme, first, second, gain", [
    ("affine", 8, 5, 9.0), ("single_round", 16, 11, 0.1), ("pow2", 8, 5, 9.0),
    ("pow2_half_up", 8, 3, 0.05)])
def test_concat_input_is_requantized_into_its_slice(device, scheme, first, second, gain):
    qmodel, x = quantized(Route(first, second, gain), (1, 3, 7, 9), SCHEMES[scheme])
    cat = qmodel.layers[-1]
    values, _ = _golden(qmodel, x)
    image = _Image(qmodel, fmaps={t: values[t] for t in cat.inputs})
    shapes = tensor_shapes(qmodel)
    starts = np.cumsum([0] + [shapes[t][1] for t in cat.inputs])
    copied = 0
    for k, source in enumerate(cat.inputs):
        region = image.ddr_map.region(f"fmap.{cat.name}.in{k}")
        if not region.requantize:
            continue
        addresses = {"inputs": [image.fmap(source)], "output": region.offset,
                     "params": image.append(vector_params(cat, SMALL, k))}
        desc = compile_concat_input(cat, k, SMALL, addresses, input_shape=shapes[source],
                                    input_format=qmodel.format_of(source),
                                    rounding=qmodel.rounding)
        at = image.append(desc.to_bytes())
        device.load(image.finished())
        device.start(at, VECTOR)
        device.wait(200_000)
        got = image.ddr_map.read_tensor(device.memory, region.name)
        assert np.array_equal(got, values[cat.name][:, starts[k]:starts[k + 1]])
        copied += 1
    assert copied >= 1


def test_engine_then_vector_unit_in_one_image(device):
    """Unit 0 runs the conv on the engine, unit 1 pools its output: both equal golden."""
    module = nn.Sequential(nn.Conv2d(3, 10, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
    qmodel, x = quantized(module, (1, 3, 9, 9), AFFINE)
    values, _ = _golden(qmodel, x)
    conv, pool = qmodel.layers
    image = _Image(qmodel, fmaps={})
    image.ddr_map.write_tensor(image.bytes, f"fmap.{conv.inputs[0]}", x[:1])
    shapes = tensor_shapes(qmodel)
    conv_desc = compile_layer(conv, SMALL, {
        "input": image.fmap(conv.inputs[0]), "output": image.fmap(conv.name),
        "weight": image.ddr_map.region(f"{conv.name}.weight").offset,
        "params": image.append(pack_params(conv, SMALL))},
        input_shape=shapes[conv.inputs[0]], input_format=qmodel.format_of(conv.inputs[0]),
        rounding=qmodel.rounding)
    conv_at = image.append(conv_desc.to_bytes())
    pool_desc = compile_vector_layer(pool, SMALL, {
        "inputs": [image.fmap(conv.name)], "output": image.fmap(pool.name),
        "params": image.append(vector_params(pool, SMALL))},
        input_shapes=[shapes[conv.name]], input_formats=[conv.output], rounding=qmodel.rounding)
    pool_at = image.append(pool_desc.to_bytes())
    device.load(image.finished())
    device.start(conv_at, ENGINE)
    device.wait(500_000)
    device.start(pool_at, VECTOR)
    device.wait(200_000)
    for layer in (conv, pool):
        got = image.ddr_map.read_tensor(device.memory, f"fmap.{layer.name}")
        assert np.array_equal(got, values[layer.name]), layer.name


def test_a_stopped_run_names_the_vector_unit(device):
    """The cycle limit's message decodes the accelerator's status: unit, state, block, row."""
    qmodel, x = quantized(nn.Sequential(nn.Conv2d(3, 4, 1), nn.MaxPool2d(2)), (1, 3, 8, 8),
                          AFFINE)
    with pytest.raises(SimulationError, match="unit=vector state=") as error:
        run_vector_layer(device, qmodel, x, qmodel.layers[-1].name, max_cycles=60)
    assert "block=0" in str(error.value)
