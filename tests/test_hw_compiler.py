"""The network compiler without a simulator: the mapping of each layer to a unit, the rules
that make a mapping exact (checked with the golden model), the program files and the errors.
The runs on the simulated accelerator are in test_sim_network.py."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from fpgacnn import golden, zoo
from fpgacnn.cli import main
from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.export.ddrmap import DdrMap
from fpgacnn.frontends.torch import from_torch
from fpgacnn.hw import compiler
from fpgacnn.hw.compiler import compile_network, plan_steps
from fpgacnn.hw.program import LayerDescriptor, pack_params
from fpgacnn.ir import ops
from fpgacnn.quant import QuantConfig, quantize

SMALL = HardwareConfig(tm=8, tn=8, tr=8, tc=8, ddr_width_bits=64, burst_len=8)


@pytest.fixture(scope="module")
def digits():
    """zoo:digits quantized on 64 of its training images."""
    return quantize(zoo.load("digits"), zoo.digits_data()[0][:64], QuantConfig(bits=8))


def quantized(module, shape, seed=0, qconfig=QuantConfig(bits=8)):
    torch.manual_seed(seed)
    x = torch.randn(*shape)
    return quantize(from_torch(module.eval(), x), x.numpy(), qconfig)


def steps_of(program):
    return [(s.unit, s.layers) for s in program.steps]


def test_digits_maps_to_four_engine_runs(digits):
    """conv1 | conv2 + pool1 fused | conv3 + pool2 fused | flatten read through by fc."""
    program = compile_network(digits, SMALL)
    assert steps_of(program) == [("engine", ("conv1",)), ("engine", ("conv2", "pool1")),
                                 ("engine", ("conv3", "pool2")), ("engine", ("fc",))]
    assert program.top == "engine"
    fc = program.steps[-1]
    words = program.image[fc.descriptor:fc.descriptor + 64]
    d = LayerDescriptor(**_unpack(words))
    # the FC reads pool2's 32 x 2 x 2 map as a 2 x 2 convolution, no flatten copy
    assert (d.kernel_h, d.kernel_w, d.in_h, d.in_w, d.in_blocks) == (2, 2, 2, 2, 4)
    assert d.in_addr == program.ddr_map.region("fmap.pool2").offset
    assert d.out_h == d.out_w == 1 and d.last == 1


def _unpack(blob):
    value = int.from_bytes(blob, "little")
    fields = {}
    for f in dataclasses.fields(LayerDescriptor):
        bits = f.metadata["bits"]
        raw = value & ((1 << bits) - 1)
        if f.metadata["signed"] and raw >> (bits - 1):
            raw -= 1 << bits
        fields[f.name] = raw
        value >>= bits
    return fields


def test_fused_pool_is_the_golden_pool_of_the_saturated_conv(digits):
    """The rule that allows the fusion, against the golden model: pool1 of digits equals the
    2x2 maximum of conv2's saturated output."""
    x = golden.quantize_input(digits, np.random.default_rng(3).standard_normal((2, 1, 8, 8)))
    values = golden.run(digits, x, keep=True)
    conv = values["conv2"]
    n, c, h, w = conv.shape
    pooled = conv[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
    np.testing.assert_array_equal(pooled.max(axis=(3, 5)), values["pool1"])


def test_pool_that_would_clip_is_not_fused(digits):
    """A pool whose saturation bounds are narrower than its input's is a layer of its own."""
    layers = [dataclasses.replace(l, out_hi=l.out_hi - 1) if l.name == "pool1" else l
              for l in digits.layers]
    narrowed = dataclasses.replace(digits, layers=tuple(layers))
    conv2 = digits.layer("conv2")
    assert compiler._Graph(digits, SMALL).fusable_pool(conv2).name == "pool1"
    assert compiler._Graph(narrowed, SMALL).fusable_pool(conv2) is None


def plan_steps_without_vector(qmodel):
    original = compiler.vector_program
    compiler.vector_program = lambda: None
    try:
        return plan_steps(qmodel, SMALL)
    except UserError as e:
        return e
    finally:
        compiler.vector_program = original


def test_fc_over_a_map_wider_than_the_kernel_limit_flattens_on_the_host(digits):
    steps = plan_steps(digits, SMALL.with_(max_kernel=1))
    assert [(s.unit, s.layers) for s in steps[-2:]] == [("host", ("flatten",)),
                                                        ("engine", ("fc",))]


def test_parameter_record_is_the_engines(digits):
    """The exporter's <layer>.params region holds the bytes hw.program.pack_params defines."""
    program = compile_network(digits, SMALL)
    for name in ("conv1", "conv2", "fc"):
        region = program.ddr_map.region(f"{name}.params")
        blob = pack_params(digits.layer(name), SMALL)
        assert program.image[region.offset:region.offset + len(blob)] == blob
        assert region.size == len(blob)


def test_host_ops_are_host_steps():
    qmodel = quantized(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(64, 5),
                                     nn.Softmax(dim=1)), (2, 3, 6, 6))
    assert [u for u, _ in steps_of(compile_network(qmodel, SMALL))] == \
        ["engine", "engine", "host"]


def test_concat_of_inputs_in_its_format_costs_nothing():
    qmodel = same_format_concat()
    program = compile_network(qmodel, SMALL)
    assert steps_of(program)[-1] == ("address", ("cat",))
    cat = program.ddr_map.region("fmap.cat")
    assert program.ddr_map.region("fmap.a").offset == cat.offset


class TwoConvCat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 1)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], 1)


def same_format_concat():
    """Two convs whose outputs get the concat's format, so that no input is requantized."""
    qmodel = quantized(TwoConvCat(), (2, 3, 6, 6))
    cat = next(l for l in qmodel.layers if isinstance(l.op, ops.Concat))
    layers = [dataclasses.replace(l, output=cat.output, out_lo=cat.out_lo, out_hi=cat.out_hi)
              if l.name in cat.inputs else
              dataclasses.replace(l, name="cat", input_requants=(None, None)) if l is cat else l
              for l in qmodel.layers]
    renamed = [dataclasses.replace(l, name=n) for l, n in zip(layers, ("a", "b", "cat"))]
    renamed[2] = dataclasses.replace(renamed[2], inputs=("a", "b"))
    return dataclasses.replace(qmodel, layers=tuple(renamed), outputs=("cat",))


def test_requantized_concat_input_needs_the_vector_unit():
    error = plan_steps_without_vector(quantized(TwoConvCat(), (2, 3, 6, 6)))
    assert isinstance(error, UserError) and "Concat runs on the vector unit" in str(error)


def test_unsupported_layers_are_named(digits):
    layers = [dataclasses.replace(l, op=ops.ChannelShuffle(2)) if l.name == "conv3" else l
              for l in digits.layers]
    shuffled = dataclasses.replace(digits, layers=tuple(layers))
    with pytest.raises(UserError, match=r"layer 'conv3': ChannelShuffle runs neither"):
        compile_network(shuffled, SMALL)
    depthwise = quantized(nn.Sequential(nn.Conv2d(4, 4, 3, groups=4)), (2, 4, 6, 6))
    with pytest.raises(UserError, match=r"layer '0': grouped convolution"):
        compile_network(depthwise, SMALL)


def test_compile_command_writes_the_program(digits, tmp_path, capsys):
    digits.save(tmp_path / "digits.npz")
    SMALL.save(tmp_path / "hw.toml")
    x = np.random.default_rng(1).standard_normal((1, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "prog"
    assert main(["compile", str(tmp_path / "digits.npz"), "--config", str(tmp_path / "hw.toml"),
                 "--input", str(tmp_path / "x.npy"), "-o", str(out)]) == 0
    assert "4 steps (4 engine)" in capsys.readouterr().out
    program = json.loads((out / "program.json").read_text())
    assert [s["layers"] for s in program["steps"]] == [["conv1"], ["conv2", "pool1"],
                                                      ["conv3", "pool2"], ["fc"]]
    ddr_map = DdrMap.load(out / "ddr_map.json")
    image = (out / "ddr.bin").read_bytes()
    assert len(image) == ddr_map.size
    np.testing.assert_array_equal(ddr_map.read_tensor(image, "fmap.input"),
                                  golden.quantize_input(digits, x))
    first = program["steps"][0]["descriptor"]
    assert ddr_map.region("conv1.descriptor").offset == first


def test_compile_command_refuses_without_writing(tmp_path, capsys):
    qmodel = quantized(nn.Sequential(nn.Conv2d(4, 4, 3, groups=4)), (2, 4, 6, 6))
    qmodel.save(tmp_path / "dw.npz")
    status = main(["compile", str(tmp_path / "dw.npz"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "layer '0'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_darknet_pools_with_unread_padding_are_fused():
    """YOLOv3-tiny's 2x2/2 pools pad bottom/right by one, which an even map never reads; the
    size-2 stride-1 pool (layer 11) is not a 2x2/2 pool and stays on the vector unit."""
    graph = zoo.load("yolov3-tiny", (1, 3, 32, 32))
    qmodel = quantize(graph, np.random.default_rng(0).standard_normal((2, 3, 32, 32))
                      .astype(np.float32), QuantConfig(bits=8))
    assert qmodel.layer("layer1_maxpool").op.padding == (0, 0, 1, 1)
    steps = [(s.unit, s.layers) for s in plan_steps(qmodel, SMALL)]
    assert ("engine", ("layer0_conv", "layer1_maxpool")) in steps
    assert ("vector", ("layer11_maxpool",)) in steps
    x = golden.quantize_input(qmodel, np.random.default_rng(1).standard_normal((1, 3, 32, 32)))
    values = golden.run(qmodel, x, keep=True)
    conv = values["layer0_conv"]
    pooled = conv.reshape(1, 16, 16, 2, 16, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(pooled, values["layer1_maxpool"])


def test_fc_too_wide_for_the_descriptor_is_named():
    """3 x 512 x 7 x 7 flattened inputs as a 1x1 conv: 3,136 input blocks of 8, more than the
    descriptor holds; the error names the layer."""
    qmodel = quantized(nn.Sequential(nn.Flatten(), nn.Linear(512 * 7 * 7, 4)), (2, 512, 7, 7))
    with pytest.raises(UserError, match=r"layer '1': descriptor field in_blocks = 3136"):
        compile_network(qmodel, SMALL.with_(max_kernel=3))
