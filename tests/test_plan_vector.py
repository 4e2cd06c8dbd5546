"""The vector unit's cycle model (`fpgacnn.plan.vector`) against the unit in Verilator.

Oracle: the simulator's cycle count of each run (the RTL against the DDR model), and its
byte counters for the model's word counts (exact). Each case quantizes a tiny PyTorch model
and runs one layer on the accelerator with `run_vector_layer` of tests/test_sim_vector.py
(its output checked against the golden model too); the whole-network test goes through
`fpgacnn.sim.check.simulate`, which plans every step.
"""

import copy
import doctest
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_sim_vector import (AFFINE, SMALL, POW2, Residual, Route, _golden, _Image, quantized,
                             run_vector_layer)
from torch import nn

from fpgacnn.export.ddr import tensor_shapes
from fpgacnn.hw import vector as hw_vector
from fpgacnn.hw.accelerator import VECTOR, accelerator_top
from fpgacnn.hw.vector_program import (COPY, PARAM_ROWS, VECTOR_BITS, compile_concat_input,
                                       compile_vector_layer, record_bytes, vector_params)
from fpgacnn.plan import vector as plan_vector
from fpgacnn.plan.vector import (VECTOR as TIMING, block_reads, block_writes, descriptor_words,
                                 record_words, vector_cycles)
from fpgacnn.sim.check import simulate
from fpgacnn.sim.runtime import SimulatedDevice

# one DDR word per 4 cycles (a quarter of the 64-bit port), shared by reads and writes
MEMORY_BOUND = replace(SMALL, ddr_bytes_per_cycle=2.0, ddr_latency=20)
# below 2/3 of a word per cycle a pool's or an add's writes cost turns; below 1/2 its reads
# wait for the credit over several turns
PAIRED = replace(SMALL, ddr_bytes_per_cycle=5.0, ddr_latency=20)
WAITING = replace(SMALL, ddr_bytes_per_cycle=2.5, ddr_latency=20)
WORST = {}              # kind of run -> (largest relative error, its cycles, planned)


@pytest.fixture(scope="module")
def devices():
    """The accelerator of SMALL; the slower memories run the same simulator binary (the DDR
    model's rate and latency are run-time flags of the harness)."""
    fast = SimulatedDevice(accelerator_top(SMALL), SMALL)
    devices = {"fast": fast}
    for name, config in (("memory-bound", MEMORY_BOUND), ("paired", PAIRED),
                         ("waiting", WAITING)):
        devices[name] = copy.copy(fast)
        devices[name].config = config
    yield devices
    if WORST:
        print("\nworst error of each kind (simulated, planned cycles):")
        for kind, (error, cycles, planned) in sorted(WORST.items()):
            print(f"  {kind:<36}{error:+7.2%}{cycles:>8}{planned:>8}")


def within_three_percent(kind, cycles, planned):
    error = (planned - cycles) / cycles
    if kind not in WORST or abs(error) > abs(WORST[kind][0]):
        WORST[kind] = (error, cycles, planned)
    assert abs(error) <= 0.03, f"{kind}: simulated {cycles}, planned {planned}"


def descriptor_of(qmodel, name, config):
    """The layer's descriptor as run_vector_layer compiles it (the model reads no address)."""
    layer = qmodel.layer(name)
    shapes = tensor_shapes(qmodel)
    addresses = {"inputs": [0] * len(layer.inputs), "output": 0, "params": 0}
    return compile_vector_layer(layer, config, addresses,
                                input_shapes=[shapes[t] for t in layer.inputs],
                                input_formats=[qmodel.format_of(t) for t in layer.inputs],
                                rounding=qmodel.rounding)


def check_run(device, desc, result, kind):
    """Cycles within 3%; the words read and written exactly as the model counts them."""
    config = device.config
    word = config.ddr_width_bits // 8
    reads = descriptor_words(config) + desc.blocks * (record_words(config) + block_reads(desc))
    assert result.bytes_read == reads * word
    assert result.bytes_written == desc.blocks * block_writes(desc) * word
    within_three_percent(kind, result.cycles, vector_cycles(desc, config))


def conv_then(layer, channels):
    """A 1x1 conv into `layer`, so that `layer` reads a quantized feature map of `channels`."""
    return nn.Sequential(nn.Conv2d(3, channels, 1), layer)


KINDS = {  # name -> (module factory of channels, the QLayer kind the vector unit runs)
    "max 2x2/2": (lambda c: conv_then(nn.MaxPool2d(2, 2), c), "MaxPool"),
    "max 3x3/2 pad 1": (lambda c: conv_then(nn.MaxPool2d(3, 2, 1, ceil_mode=True), c),
                        "MaxPool"),
    "avg 2x2/2": (lambda c: conv_then(nn.AvgPool2d(2, 2), c), "AvgPool"),
    "avg 3x3/2 pad 1": (lambda c: conv_then(nn.AvgPool2d(3, 2, 1), c), "AvgPool"),
    "global avg": (lambda c: conv_then(nn.AdaptiveAvgPool2d(1), c), "GlobalAvgPool"),
    "add": (lambda c: Residual(c, 3.0), "Add"),
    "upsample x2": (lambda c: conv_then(nn.Upsample(scale_factor=2), c), "Upsample"),
    "upsample x3": (lambda c: conv_then(nn.Upsample(scale_factor=3), c), "Upsample"),
    "leaky relu": (lambda c: conv_then(nn.Sequential(nn.MaxPool2d(1), nn.LeakyReLU(0.1)), c),
                   "LeakyReLU"),
}

CASES = [  # (kind, channels, height, width, device)
    ("max 2x2/2", 16, 16, 16, "fast"), ("max 2x2/2", 5, 9, 11, "fast"),
    ("max 2x2/2", 8, 26, 26, "fast"),
    ("max 3x3/2 pad 1", 11, 10, 10, "fast"), ("max 3x3/2 pad 1", 24, 13, 13, "fast"),
    ("avg 2x2/2", 9, 8, 8, "fast"), ("avg 3x3/2 pad 1", 40, 10, 10, "fast"),
    ("global avg", 13, 5, 5, "fast"), ("global avg", 20, 7, 7, "fast"),
    ("add", 11, 6, 5, "fast"), ("add", 16, 16, 16, "fast"),
    ("upsample x2", 9, 13, 13, "fast"), ("upsample x3", 8, 6, 6, "fast"),
    ("leaky relu", 20, 12, 12, "fast"), ("leaky relu", 3, 7, 15, "fast"),
    ("max 2x2/2", 16, 16, 16, "memory-bound"), ("max 3x3/2 pad 1", 24, 13, 13, "memory-bound"),
    ("global avg", 20, 7, 7, "memory-bound"), ("add", 16, 16, 16, "memory-bound"),
    ("upsample x2", 16, 16, 16, "memory-bound"), ("leaky relu", 20, 12, 12, "memory-bound"),
    ("max 2x2/2", 16, 16, 16, "paired"), ("add", 16, 16, 16, "paired"),
    ("global avg", 20, 7, 7, "paired"), ("leaky relu", 20, 12, 12, "paired"),
    ("global avg", 16, 16, 16, "waiting"), ("max 2x2/2", 16, 16, 16, "waiting"),
    ("max 3x3/2 pad 1", 24, 13, 13, "waiting"), ("add", 16, 16, 16, "waiting"),
]


@pytest.mark.parametrize("kind, channels, h, w, memory", CASES)
def test_each_kind_of_step_within_three_percent(devices, kind, channels, h, w, memory):
    factory, layer_kind = KINDS[kind]
    torch.manual_seed(channels)
    qmodel, x = quantized(factory(channels), (1, 3, h, w), AFFINE)
    name = [layer.name for layer in qmodel.layers if layer.kind == layer_kind][-1]
    device = devices[memory]
    got, want, result = run_vector_layer(device, qmodel, x, name)
    assert np.array_equal(got, want)
    check_run(device, descriptor_of(qmodel, name, SMALL), result, f"{kind} ({memory})")


@pytest.mark.parametrize("memory", ["fast", "memory-bound"])
def test_concat_copy_within_three_percent(devices, memory):
    """Seed 002's route: the input of another scale is copied, requantized, into its slice."""
    qmodel, x = quantized(Route(8, 13, 9.0), (1, 3, 11, 9), POW2)
    device, cat = devices[memory], qmodel.layers[-1]
    values, _ = _golden(qmodel, x)
    image = _Image(qmodel, fmaps={t: values[t] for t in cat.inputs})
    k = next(k for k in range(2) if image.ddr_map.region(f"fmap.{cat.name}.in{k}").requantize)
    source, shapes = cat.inputs[k], tensor_shapes(qmodel)
    region = image.ddr_map.region(f"fmap.{cat.name}.in{k}")
    addresses = {"inputs": [image.fmap(source)], "output": region.offset,
                 "params": image.append(vector_params(cat, SMALL, k))}
    desc = compile_concat_input(cat, k, SMALL, addresses, input_shape=shapes[source],
                                input_format=qmodel.format_of(source), rounding=qmodel.rounding)
    at = image.append(desc.to_bytes())
    device.load(image.finished())
    device.start(at, VECTOR)
    result = device.wait(200_000)
    start = sum(shapes[t][1] for t in cat.inputs[:k])
    want = values[cat.name][:, start:start + shapes[source][1]]
    assert np.array_equal(image.ddr_map.read_tensor(device.memory, region.name), want)
    check_run(device, desc, result, f"concat copy ({memory})")


class Network(nn.Module):
    """Every kind of vector step in one program: add, upsample, pool, concat copies,
    activation, global pool, then a softmax on the host."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(3, 8, 1)
        self.up, self.pool = nn.Upsample(scale_factor=2), nn.MaxPool2d(2, 2)
        self.act, self.gap = nn.LeakyReLU(0.1), nn.AdaptiveAvgPool2d(1)
        with torch.no_grad():
            self.b.weight *= 5.0

    def forward(self, x):
        a = self.a(x)
        pooled = self.pool(self.up(torch.relu(a + self.b(x))))
        return torch.softmax(self.gap(self.act(torch.cat([pooled, a], 1))), 1)


def test_simulate_plans_every_vector_step(devices):
    torch.manual_seed(7)
    qmodel, x = quantized(Network(), (1, 3, 10, 10), AFFINE)
    results = simulate(qmodel, x, SMALL, device=devices["fast"])
    units = [r.unit for r in results]
    assert units.count("vector") == 7 and units.count("host") == 1, units
    for r in results:
        assert r.mismatches == 0, r.name
        if r.unit == "vector":
            within_three_percent(f"network {r.name}", r.cycles, r.planned_cycles)
        if r.unit == "host":
            assert r.cycles == 0 and r.planned_cycles == 0


def test_timing_constants_are_the_rtl_s():
    assert TIMING.descriptor_bits == VECTOR_BITS
    assert TIMING.record_rows == len(PARAM_ROWS)
    assert TIMING.drain == hw_vector.DRAIN_CYCLES
    assert TIMING.copy_op == COPY
    for config in (SMALL, replace(SMALL, tn=4, act_bits=16), replace(SMALL, ddr_width_bits=128,
                                                                      tn=16)):
        assert record_words(config) * config.ddr_width_bits // 8 == record_bytes(config)


def test_docstring_examples():
    assert doctest.testmod(plan_vector).failed == 0
