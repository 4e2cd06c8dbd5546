"""`fpgacnn inspect`: per-layer MACs/params/bytes against independent counts, and its errors.

Oracles: hand-written layer walks (AlexNet, VGG16, YOLOv3-tiny formulas), published totals
(torchvision: AlexNet 0.71 GMACs, VGG16 15.5 GMACs; Darknet: YOLOv3-tiny 5.56 BFLOPs),
PyTorch (parameter numel, forward hooks reading the module's own output sizes).
"""

import json
import math
from pathlib import Path

import onnx
import pytest
import torch
from onnx import numpy_helper, shape_inference

from fpgacnn import zoo
from fpgacnn.cli import main
from fpgacnn.zoo.registry import DATA, MODELS


def inspect_json(capsys, *args):
    assert main(["inspect", *args, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def run_failing(capsys, *args):
    """(exit status, stdout, stderr) of a command that should fail; argparse exits itself."""
    try:
        status = main(["inspect", *args])
    except SystemExit as e:
        status = e.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def conv_out(size, kernel, stride=1, pad=0):
    return (size + 2 * pad - kernel) // stride + 1


def walk_macs(layers, size, channels=3):
    """MACs of a plain chain: ("conv", out, k, stride, pad), ("pool", k, stride), ("fc", out)."""
    macs, features = 0, None
    for layer in layers:
        if layer[0] == "conv":
            _, out, k, s, p = layer
            size = conv_out(size, k, s, p)
            macs += out * size * size * channels * k * k
            channels = out
        elif layer[0] == "pool":
            size = conv_out(size, layer[1], layer[2])
        elif layer[0] == "avg":  # adaptive pool to a fixed size
            size = layer[1]
        else:
            features = features or channels * size * size
            macs += layer[1] * features
            features = layer[1]
    return macs


ALEXNET = [("conv", 64, 11, 4, 2), ("pool", 3, 2), ("conv", 192, 5, 1, 2), ("pool", 3, 2),
           ("conv", 384, 3, 1, 1), ("conv", 256, 3, 1, 1), ("conv", 256, 3, 1, 1),
           ("pool", 3, 2), ("avg", 6), ("fc", 4096), ("fc", 4096), ("fc", 1000)]
VGG16 = [("conv", c, 3, 1, 1) if c != "M" else ("pool", 2, 2)
         for c in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                   512, 512, 512, "M")] + [("avg", 7), ("fc", 4096), ("fc", 4096), ("fc", 1000)]


def torch_param_count(name):
    with torch.device("meta"):
        return sum(p.numel() for p in MODELS[name].build().parameters())


def torch_macs(module, example):
    """MACs from forward hooks on the nn.Module: PyTorch's output sizes, the module's kernels."""
    total = 0

    def hook(layer, args, out):
        nonlocal total
        if isinstance(layer, torch.nn.Conv2d):
            kh, kw = layer.kernel_size
            total += out.numel() * layer.in_channels // layer.groups * kh * kw
        else:
            total += out.numel() * layer.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        module(example)
    for h in handles:
        h.remove()
    return total


def test_alexnet_at_224_matches_hand_count_and_published_figures(capsys):
    report = inspect_json(capsys, "zoo:alexnet")
    totals = report["totals"]
    assert totals["macs"] == walk_macs(ALEXNET, 224)
    assert abs(totals["macs"] / 1e9 - 0.71) < 0.01
    assert totals["params"] == torch_param_count("alexnet") == 61_100_840
    first = report["layers"][0]
    assert first["name"] == "features.0" and first["op"] == "Conv2d"
    assert first["activation"] == "ReLU"
    assert first["input_shape"] == [1, 3, 224, 224] and first["output_shape"] == [1, 64, 55, 55]
    assert first["macs"] == 64 * 55 * 55 * 3 * 11 * 11
    assert first["output_bytes"] == 64 * 55 * 55 and first["weight_bytes"] == 64 * 3 * 121 + 64


def test_vgg16_at_224_matches_hand_count_and_published_figures(capsys):
    totals = inspect_json(capsys, "zoo:vgg16", "--bits", "4")["totals"]
    assert totals["macs"] == walk_macs(VGG16, 224)
    assert abs(totals["macs"] / 1e9 - 15.5) < 0.1
    assert totals["params"] == torch_param_count("vgg16") == 138_357_544
    assert totals["weight_bytes"] == math.ceil(sum(_vgg16_layer_params()) * 4 / 8)
    assert totals["max_output_bytes"] == 64 * 224 * 224 * 4 // 8


def _vgg16_layer_params():
    channels, out = 3, []
    for layer in VGG16:
        if layer[0] == "conv":
            out.append(layer[1] * channels * 9 + layer[1])
            channels = layer[1]
    features = 512 * 7 * 7
    for layer in VGG16:
        if layer[0] == "fc":
            out.append(layer[1] * features + layer[1])
            features = layer[1]
    return out


@pytest.mark.parametrize("name,shape", [("squeezenet1_1", None), ("resnet18", None),
                                        ("mtcnn-pnet", "1,3,30,40"), ("mtcnn-rnet", None),
                                        ("mtcnn-onet", None), ("digits", "5,1,8,8")])
def test_macs_match_torch_forward_hooks(capsys, name, shape):
    args = [f"zoo:{name}"] + (["--input-shape", shape] if shape else [])
    report = inspect_json(capsys, *args)
    dims = None if shape is None else tuple(int(d) for d in shape.split(","))
    module, example = zoo.torch_module(name, dims)
    assert report["totals"]["macs"] == torch_macs(module, example)
    assert report["inputs"] == {"input": list(example.shape)}


def test_params_after_batchnorm_folding(capsys):
    """Folding leaves one bias per BatchNorm channel where PyTorch has gamma and beta."""
    module, _ = zoo.torch_module("resnet18")
    bn_channels = sum(m.num_features for m in module.modules()
                      if isinstance(m, torch.nn.BatchNorm2d))
    folded = inspect_json(capsys, "zoo:resnet18")["totals"]
    assert folded["params"] == torch_param_count("resnet18") - bn_channels
    assert abs(folded["macs"] / 1e9 - 1.81) < 0.01  # torchvision: 1.81 GFLOPS (MACs)
    raw = inspect_json(capsys, "zoo:resnet18", "--raw")["totals"]
    buffers = sum(b.numel() for n, b in module.named_buffers() if "running" in n)
    assert raw["params"] == torch_param_count("resnet18") + buffers


def test_yolov3_tiny_matches_the_cfg_walk_and_darknet_figure(capsys):
    report = inspect_json(capsys, "zoo:yolov3-tiny")
    # backbone 416 -> 13 (5 stride-2 pools, one stride-1), head at 13, branch at 26
    filters = [16, 32, 64, 128, 256, 512]
    macs, size, channels = 0, 416, 3
    for f in filters:
        macs += f * size * size * channels * 9
        channels, size = f, size // 2
    size = 13
    macs += 1024 * 169 * 512 * 9 + 256 * 169 * 1024 + 512 * 169 * 256 * 9 + 255 * 169 * 512
    macs += 128 * 169 * 256 + 256 * 676 * 384 * 9 + 255 * 676 * 256
    assert report["totals"]["macs"] == macs
    assert abs(2 * macs / 1e9 - 5.56) < 0.05  # Darknet prints 5.56 BFLOPs (2 per MAC)
    hosts = [layer["name"] for layer in report["layers"] if layer["host"]]
    assert hosts == ["layer16_yolo", "layer23_yolo"]
    route = next(layer for layer in report["layers"] if layer["op"] == "Concat")
    assert route["input_shapes"] == [[1, 128, 26, 26], [1, 256, 26, 26]]


def test_every_zoo_model_inspects_at_its_default_size(capsys):
    for name in zoo.names():
        if name in ("alexnet", "vgg16"):
            continue  # the tests above inspect these at 224
        report = inspect_json(capsys, f"zoo:{name}")
        assert report["inputs"]["input"] == list(MODELS[name].default_shape)
        assert len(report["layers"]) == report["totals"]["layers"] > 0


def test_table_has_one_row_per_layer_totals_and_host_marks(capsys):
    assert main(["inspect", "zoo:mtcnn-rnet", "--bits", "16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    report = inspect_json(capsys, "zoo:mtcnn-rnet", "--bits", "16")
    for layer in report["layers"]:
        row = next(line for line in lines if line.split()[1:2] == [layer["name"]])
        assert f"{layer['macs']:,}" in row and f"{layer['output_bytes']:,}" in row
        assert ("*" in row.split()) == layer["host"]
    total_line = next(line for line in lines if line.split()[:1] == ["total"])
    assert f"{report['totals']['params']:,}" in total_line
    assert report["totals"]["output_bytes"] == sum(2 * math.prod(layer["output_shape"])
                                                   for layer in report["layers"])


@pytest.mark.parametrize("args,field", [
    (["zoo:resnet50"], "zoo:resnet50: no such zoo model"),
    (["missing.onnx"], "missing.onnx"),
    (["missing.cfg"], "missing.cfg"),
    (["zoo:digits", "--input-shape", "1,1,8"], "--input-shape"),
    (["zoo:digits", "--input-shape", "1,1,a,8"], "--input-shape"),
    (["zoo:digits", "--input-shape", "0,1,8,8"], "--input-shape"),
    (["zoo:digits", "--input-shape", "1,1,4,4"], "zoo:digits: input shape (1, 1, 4, 4)"),
    (["zoo:digits", "--bits", "1"], "--bits"),
    (["zoo:digits", "--bits", "17"], "--bits"),
    (["zoo:digits", "--bits", "eight"], "--bits"),
])
def test_user_mistakes_exit_2_with_one_line(capsys, args, field):
    status, out, err = run_failing(capsys, *args)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and field in err and "Traceback" not in err


FACTORY = '''
import torch
from fpgacnn.zoo.mtcnn import PNet

def with_example():
    return PNet(), torch.zeros(1, 3, 20, 16)

def without_example():
    return PNet()
'''


def test_factory_and_darknet_model_names(capsys, tmp_path, monkeypatch):
    (tmp_path / "inspect_factory_mod.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    report = inspect_json(capsys, "inspect_factory_mod:with_example")
    assert report["inputs"]["input"] == [1, 3, 20, 16]
    assert report["totals"]["macs"] == torch_macs(*zoo.torch_module("mtcnn-pnet", (1, 3, 20, 16)))
    report = inspect_json(capsys, "inspect_factory_mod:without_example",
                          "--input-shape", "1,3,12,12")
    assert report["totals"]["params"] == torch_param_count("mtcnn-pnet")
    status, _, err = run_failing(capsys, "inspect_factory_mod:without_example")
    assert status == 2 and "--input-shape" in err
    dotted = inspect_json(capsys, "fpgacnn.zoo.mtcnn:ONet", "--input-shape", "1,3,48,48")
    assert dotted["totals"]["params"] == torch_param_count("mtcnn-onet")
    from_file = inspect_json(capsys, str(DATA / "yolov3-tiny.cfg"), "--input-shape", "1,3,64,64")
    from_zoo = inspect_json(capsys, "zoo:yolov3-tiny", "--input-shape", "1,3,64,64")
    assert from_file["layers"] == from_zoo["layers"]


LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
# densenet121 and inception_v2 scale channels with Mul/Add nodes, which the ONNX frontend
# imports as extra BatchNorm-shaped nodes: their parameter count is the frontend's choice.
LIGHT_MODELS = {"bvlc_alexnet": True, "squeezenet": True, "resnet50": True,
                "inception_v1": True, "zfnet512": True, "vgg19": True,
                "densenet121": False, "inception_v2": False, "shufflenet": True}


def onnx_counts(path):
    """(params, MACs) of Conv/Gemm/BatchNormalization/PRelu nodes, from onnx's own shape
    inference and the shapes of the ConstantOfShape tensors the light models hold weights in."""
    graph = shape_inference.infer_shapes(onnx.load(path)).graph
    dims = {i.name: tuple(i.dims) for i in graph.initializer}
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "ConstantOfShape":
            dims[node.output[0]] = tuple(int(v) for v in values[node.input[0]])
    for info in list(graph.value_info) + list(graph.output) + list(graph.input):
        dims.setdefault(info.name, tuple(d.dim_value for d in info.type.tensor_type.shape.dim))
    params = macs = 0
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm", "BatchNormalization", "PRelu"):
            params += sum(math.prod(dims[t]) for t in node.input[1:] if t)
        out = math.prod(dims.get(node.output[0], ()))
        if node.op_type == "Conv":
            macs += out * math.prod(dims[node.input[1]][1:])
        elif node.op_type == "Gemm":  # out = N x F, weight holds F x K products
            macs += out * math.prod(dims[node.input[1]]) // dims[node.output[0]][1]
    return params, macs


@pytest.mark.parametrize("name", sorted(LIGHT_MODELS))
def test_light_onnx_models_against_onnx_shape_inference(capsys, name):
    path = LIGHT / f"light_{name}.onnx"
    params, macs = onnx_counts(path)
    totals = inspect_json(capsys, str(path), "--raw")["totals"]
    assert totals["macs"] == macs
    if LIGHT_MODELS[name]:
        assert totals["params"] == params
    assert inspect_json(capsys, str(path))["totals"]["macs"] == macs  # folding keeps MACs
