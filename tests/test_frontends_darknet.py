"""from_darknet: yolov3-tiny shapes, and .weights files written here checked against an
independent PyTorch/numpy implementation of Darknet's layers for small cfgs."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fpgacnn.errors import UserError
from fpgacnn.frontends.darknet import from_darknet
from fpgacnn.ir import ops, run_float, simplify

YOLO_CFG = Path(__file__).parents[1] / "src/fpgacnn/zoo/data/yolov3-tiny.cfg"
if not YOLO_CFG.is_file():
    YOLO_CFG = Path("/work/shared/data/darknet/yolov3-tiny.cfg")

SMALL_CFG = """
[net]
batch=64
subdivisions=16
width=13
height=13
channels=3

[convolutional]       # 0
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]             # 1: 13 -> 7 with Darknet's padding rule
size=2
stride=2

[convolutional]       # 2
filters=8
size=3
stride=1
pad=1
groups=2
activation=linear

[maxpool]             # 3: size 2 stride 1 keeps 7x7
size=2
stride=1

[convolutional]       # 4
batch_normalize=1
filters=4
size=1
stride=1
pad=1
activation=relu

[route]               # 5
layers=-1,-3

[convolutional]       # 6
batch_normalize=1
filters=12
size=3
stride=2
pad=1
activation=leaky

[upsample]            # 7: 4 -> 8
stride=2

[convolutional]       # 8
filters=12
size=2
stride=1
pad=0
activation=linear

[shortcut]            # 9: layer 8 (7x7 after the valid 2x2 conv) + layer 5
from=-4
activation=leaky

[route]               # 10
layers=9

[convolutional]       # 11
filters=21
size=1
stride=1
pad=1
activation=linear

[yolo]                # 12
mask=0,1,2
anchors=10,14, 23,27, 37,58, 81,82
classes=2
num=4

[route]               # 13
layers=4

[convolutional]       # 14
size=1
stride=1
pad=1
filters=14
activation=linear

[yolo]                # 15
mask=3
anchors=10,14, 23,27, 37,58, 81,82
classes=9
"""

CLASSIFIER_CFG = """
[net]
width=8
height=8
channels=2

[convolutional]
batch_normalize=1
filters=6
size=3
stride=1
pad=1
activation=leaky

[avgpool]

[connected]
output=5
batch_normalize=1
activation=relu

[dropout]
probability=.5

[connected]
output=4
activation=linear

[softmax]
groups=1
"""


# ---- an independent implementation of the Darknet layers used above ------------------------

def leaky(x):
    return np.where(x > 0, x, 0.1 * x)


def batchnorm(x, bn):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    normalized = (x - bn["mean"].reshape(shape)) / np.sqrt(bn["var"].reshape(shape) + 1e-5)
    return normalized * bn["scales"].reshape(shape) + bn["biases"].reshape(shape)


def conv(x, layer, stride, pad, groups=1):
    out = F.conv2d(torch.from_numpy(x), torch.from_numpy(layer["weights"]), None, stride, pad,
                   1, groups).numpy()
    if "scales" in layer:
        return batchnorm(out, layer)
    return out + layer["biases"].reshape(1, -1, 1, 1)


def darknet_maxpool(x, size, stride):
    """Darknet's maxpool_layer.c: offset -pad/2 with pad = size-1, out = (h+pad-size)/stride+1."""
    pad = size - 1
    n, c, h, w = x.shape
    oh, ow = (h + pad - size) // stride + 1, (w + pad - size) // stride + 1
    out = np.full((n, c, oh, ow), -np.inf, np.float32)
    for i in range(oh):
        for j in range(ow):
            for dy in range(size):
                for dx in range(size):
                    y, xx = i * stride + dy - pad // 2, j * stride + dx - pad // 2
                    if 0 <= y < h and 0 <= xx < w:
                        out[:, :, i, j] = np.maximum(out[:, :, i, j], x[:, :, y, xx])
    return out


def yolo(x, anchors_in_mask, classes):
    out = x.copy()
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for a in range(anchors_in_mask):
        base = a * (5 + classes)
        out[:, base:base + 2] = sigmoid(x[:, base:base + 2])
        out[:, base + 4:base + 5 + classes] = sigmoid(x[:, base + 4:base + 5 + classes])
    return out


def small_reference(x, L):
    l0 = leaky(conv(x, L[0], 1, 1))
    l1 = darknet_maxpool(l0, 2, 2)
    l2 = conv(l1, L[2], 1, 1, groups=2)
    l3 = darknet_maxpool(l2, 2, 1)
    l4 = np.maximum(conv(l3, L[4], 1, 0), 0)
    l5 = np.concatenate([l4, l2], axis=1)
    l6 = leaky(conv(l5, L[6], 2, 1))
    l7 = l6.repeat(2, axis=2).repeat(2, axis=3)
    l8 = conv(l7, L[8], 1, 0)
    l9 = leaky(l8 + l5)
    l11 = conv(l9, L[11], 1, 0)
    l14 = conv(l4, L[14], 1, 0)
    return [yolo(l11, 3, 2), yolo(l14, 1, 9)]


def classifier_reference(x, L):
    l0 = leaky(conv(x, L[0], 1, 1))
    l1 = l0.mean(axis=(2, 3))
    l2 = np.maximum(batchnorm(l1 @ L[2]["weights"].T, L[2]), 0)
    l4 = l2 @ L[4]["weights"].T + L[4]["biases"]
    e = np.exp(l4 - l4.max(axis=1, keepdims=True))
    return [e / e.sum(axis=1, keepdims=True)]


# ---- writing .weights files -----------------------------------------------------------------

def random_layer(rng, shape, bn):
    n = shape[0]
    layer = {"biases": rng.standard_normal(n), "weights": rng.standard_normal(shape) * 0.3}
    if bn:
        layer |= {"scales": 0.5 + rng.random(n), "mean": 0.1 * rng.standard_normal(n),
                  "var": 0.5 + rng.random(n)}
    return {k: v.astype(np.float32) for k, v in layer.items()}


def write_weights(path, layers, kinds, major=0, minor=2, transpose_fc=False):
    """Darknet's order: conv = biases [scales mean var] weights; connected = biases weights
    [scales mean var]."""
    header = np.array([major, minor, 0], "<i4").tobytes()
    wide_seen = major * 10 + minor >= 2 and major < 1000 and minor < 1000  # parser.c's rule
    header += np.array([12345], "<i8" if wide_seen else "<i4").tobytes()
    chunks = []
    for index in sorted(layers):
        layer, bn = layers[index], ["scales", "mean", "var"]
        bn = bn if "scales" in layer else []
        fc_stored_transposed = transpose_fc and kinds[index] == "fc"
        weights = layer["weights"].T if fc_stored_transposed else layer["weights"]
        order = (["biases"] + bn + ["weights"] if kinds[index] == "conv"
                 else ["biases", "weights"] + bn)
        chunks += [np.ascontiguousarray(weights if k == "weights" else layer[k]).ravel()
                   for k in order]
    Path(path).write_bytes(header + np.concatenate(chunks).astype("<f4").tobytes())


def small_layers(rng):
    shapes = {0: ((8, 3, 3, 3), True), 2: ((8, 4, 3, 3), False), 4: ((4, 8, 1, 1), True),
              6: ((12, 12, 3, 3), True), 8: ((12, 12, 2, 2), False), 11: ((21, 12, 1, 1), False),
              14: ((14, 4, 1, 1), False)}
    return {i: random_layer(rng, s, bn) for i, (s, bn) in shapes.items()}


@pytest.fixture
def small_cfg(tmp_path):
    path = tmp_path / "small.cfg"
    path.write_text(SMALL_CFG)
    return path


def check_against(graph, x, want):
    for g in (graph, simplify(graph)):
        got = run_float(g, x)
        for name, w in zip(g.outputs, want):
            assert got[name].shape == w.shape
            np.testing.assert_allclose(got[name], w, rtol=1e-4, atol=1e-4 * np.abs(w).max())


@pytest.mark.parametrize("major, minor", [(0, 2), (0, 1), (1, 0)])
def test_small_cfg_with_weights_matches_reference(small_cfg, tmp_path, major, minor):
    layers = small_layers(np.random.default_rng(major * 10 + minor))
    weights = tmp_path / "small.weights"
    write_weights(weights, layers, {i: "conv" for i in layers}, major, minor)
    graph = from_darknet(small_cfg, weights)
    assert graph.inputs == {"input": (1, 3, 13, 13)}  # batch=64 is for training
    assert graph.outputs == ("layer12_yolo", "layer15_yolo")
    x = np.random.default_rng(5).standard_normal((1, 3, 13, 13)).astype(np.float32)
    check_against(graph, x, small_reference(x, layers))


def test_classifier_cfg_connected_layers(tmp_path):
    cfg = tmp_path / "cls.cfg"
    cfg.write_text(CLASSIFIER_CFG)
    rng = np.random.default_rng(3)
    layers = {0: random_layer(rng, (6, 2, 3, 3), True), 2: random_layer(rng, (5, 6), True),
              4: random_layer(rng, (4, 5), False)}
    kinds = {0: "conv", 2: "fc", 4: "fc"}
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    for transpose, major in ((False, 0), (True, 1001)):
        weights = tmp_path / f"cls{major}.weights"
        write_weights(weights, layers, kinds, major=major, minor=2, transpose_fc=transpose)
        graph = from_darknet(cfg, weights)
        assert graph.outputs == ("layer5_softmax",)
        check_against(graph, x, classifier_reference(x, layers))


def test_node_names_carry_layer_indices(small_cfg):
    graph = from_darknet(small_cfg)
    names = [n.name for n in graph.nodes]
    assert names[:4] == ["layer0_conv", "layer0_bn", "layer0_leaky", "layer1_maxpool"]
    assert {"layer5_route", "layer7_upsample", "layer9_shortcut", "layer9_leaky",
            "layer10_route", "layer12_yolo"} <= set(names)
    assert graph.node("layer3_maxpool").op == ops.MaxPool(2, 1, padding=(0, 0, 1, 1))
    assert graph.node("layer5_route").inputs == ("layer4_relu", "layer2_conv")
    assert isinstance(graph.node("layer10_route").op, ops.Identity)
    simple = simplify(graph)
    assert "layer0_conv" in [n.name for n in simple.nodes]
    assert simple.node("layer0_conv").op.activation == ops.LeakyReLU(0.1)


def test_yolov3_tiny_imports_with_yolo_shapes():
    graph = from_darknet(YOLO_CFG)
    assert graph.inputs == {"input": (1, 3, 416, 416)}
    assert graph.outputs == ("layer16_yolo", "layer23_yolo")
    assert graph.shapes["layer16_yolo"] == (1, 255, 13, 13)
    assert graph.shapes["layer23_yolo"] == (1, 255, 26, 26)
    assert graph.shapes["layer11_maxpool"] == (1, 512, 13, 13)
    assert graph.node("layer20_route").inputs == ("layer19_upsample", "layer8_leaky")
    assert graph.shapes["layer20_route"] == (1, 384, 26, 26)
    head = graph.node("layer16_yolo").op
    assert head.mask == (3, 4, 5) and head.classes == 80 and head.anchors[5] == (344, 319)
    small = from_darknet(YOLO_CFG, input_shape=(1, 3, 320, 320))
    assert small.shapes["layer16_yolo"] == (1, 255, 10, 10)


def test_random_weights_are_seeded_and_sensible(small_cfg):
    a, b = from_darknet(small_cfg), from_darknet(small_cfg)
    for na, nb in zip(a.nodes, b.nodes):
        for key in na.params:
            np.testing.assert_array_equal(na.params[key], nb.params[key])
    w = a.node("layer6_conv").params["weight"]
    assert 0.5 < w.std() * np.sqrt(12 * 9 / 2) < 1.5  # He normal: std = sqrt(2 / fan_in)
    assert not np.allclose(a.node("layer0_bn").params["var"], 1)


def test_wrong_size_weights_files(small_cfg, tmp_path):
    layers = small_layers(np.random.default_rng(0))
    good = tmp_path / "good.weights"
    write_weights(good, layers, {i: "conv" for i in layers})
    data = good.read_bytes()
    short = tmp_path / "short.weights"
    short.write_bytes(data[:-4 * 15])  # cuts into layer 14's weights (14 * 4 values)
    with pytest.raises(UserError, match=r"too short: small.cfg: layer 14 \[convolutional\]"):
        from_darknet(small_cfg, short)
    long = tmp_path / "long.weights"
    long.write_bytes(data + np.zeros(3, "<f4").tobytes())
    with pytest.raises(UserError, match="too long: 3 float32 values left"):
        from_darknet(small_cfg, long)


@pytest.mark.parametrize("text, words", [
    ("[net]\n[convolutional]\nfilters=4\nactivation=leaky\n[region]\nclasses=1\n",
     ["'layer1'", "[region]", "[convolutional]"]),
    ("[net]\n[convolutional]\nfilters=4\nactivation=mish\n", ["layer0", "mish", "leaky"]),
    ("[net]\n[convolutional]\nfilters=4\n", ["logistic"]),
    ("[net]\n[convolutional]\nfilters=x\nactivation=relu\n", ["layer 0", "'filters'"]),
    ("[net]\n[route]\nlayers=-1\n", ["layer 0", "not before it"]),
    ("[net]\n[convolutional]\nfilters=4\nactivation=relu\n[yolo]\nmask=0\nanchors=1,2\n",
     ["'layer1_yolo'", "channels"]),
])
def test_cfg_mistakes_are_user_errors(tmp_path, text, words):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(text)
    with pytest.raises(UserError) as info:
        from_darknet(cfg, input_shape=(1, 3, 8, 8))
    for word in words:
        assert word in str(info.value)
