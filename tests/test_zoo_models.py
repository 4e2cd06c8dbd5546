"""The zoo's PyTorch-defined models: layouts, seeded weights, sizes, and the float reference.

Oracles: the nn.Module itself (PyTorch), torchvision's published parameter counts and
state_dict layouts, and PyTorch's own AdaptiveAvgPool2d.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fpgacnn import zoo
from fpgacnn.errors import UserError
from fpgacnn.frontends import load_model
from fpgacnn.ir import ops, run_float
from fpgacnn.zoo.adaptive import fixed_pool
from fpgacnn.zoo.registry import MODELS, check_input_shape

# Reduced sizes keep the float runs cheap; alexnet's and vgg16's avgpool becomes an upsample.
FLOAT_CASES = [
    ("digits", None),
    ("alexnet", (1, 3, 67, 67)),
    ("vgg16", (1, 3, 32, 32)),
    ("squeezenet1_1", (2, 3, 48, 48)),
    ("resnet18", (2, 3, 32, 32)),
    ("mtcnn-pnet", (2, 3, 19, 27)),
    ("mtcnn-rnet", (3, 3, 24, 24)),
    ("mtcnn-onet", (1, 3, 48, 48)),
]

# torchvision's documented parameter counts (torchvision.models weights tables).
TORCHVISION_PARAMS = {"alexnet": 61_100_840, "vgg16": 138_357_544,
                      "squeezenet1_1": 1_235_496, "resnet18": 11_689_512}


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _rel_error(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_names_lists_every_model_of_the_issue():
    assert zoo.names() == sorted(["digits", "alexnet", "vgg16", "yolov3-tiny", "mtcnn-pnet",
                                  "mtcnn-rnet", "mtcnn-onet", "squeezenet1_1", "resnet18"])


def test_unknown_name_is_a_user_error_listing_the_known_ones():
    with pytest.raises(UserError, match="zoo:resnet50: no such zoo model; known: alexnet, "
                                        "digits"):
        zoo.load("resnet50")
    with pytest.raises(UserError, match="Darknet"):
        zoo.torch_module("yolov3-tiny")


@pytest.mark.parametrize("name,shape", FLOAT_CASES)
def test_float_reference_matches_the_module(name, shape):
    module, example = zoo.torch_module(name, shape)
    assert not module.training
    with torch.no_grad():
        want = _as_tuple(module(example))
    graph = load_model(f"zoo:{name}", shape)
    got = run_float(graph, example.numpy())
    assert len(graph.outputs) == len(want)
    for tensor, expected in zip(graph.outputs, want):
        assert got[tensor].shape == tuple(expected.shape)
        assert _rel_error(got[tensor], expected.numpy()) <= 1e-5, tensor


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_torchvision_layouts_have_the_published_parameter_counts(name):
    with torch.device("meta"):
        module = MODELS[name].build()
    assert sum(p.numel() for p in module.parameters()) == TORCHVISION_PARAMS[name]


def test_torchvision_state_dict_keys_and_shapes():
    expected = {
        "alexnet": {"features.0.weight": (64, 3, 11, 11), "features.10.bias": (256,),
                    "classifier.1.weight": (4096, 9216), "classifier.6.weight": (1000, 4096)},
        "vgg16": {"features.0.weight": (64, 3, 3, 3), "features.28.weight": (512, 512, 3, 3),
                  "classifier.0.weight": (4096, 25088), "classifier.6.bias": (1000,)},
        "squeezenet1_1": {"features.3.squeeze.weight": (16, 64, 1, 1),
                          "features.12.expand3x3.weight": (256, 64, 3, 3),
                          "classifier.1.weight": (1000, 512, 1, 1)},
        "resnet18": {"conv1.weight": (64, 3, 7, 7), "bn1.running_var": (64,),
                     "layer2.0.downsample.0.weight": (128, 64, 1, 1),
                     "layer4.1.bn2.weight": (512,), "fc.weight": (1000, 512)},
    }
    counts = {"alexnet": 16, "vgg16": 32, "squeezenet1_1": 52, "resnet18": 122}
    for name, keys in expected.items():
        with torch.device("meta"):
            state = MODELS[name].build().state_dict()
        assert len(state) == counts[name], name
        for key, shape in keys.items():
            assert tuple(state[key].shape) == shape, (name, key)


def test_seeded_weights_are_reproducible_and_distinct():
    a, _ = zoo.torch_module("resnet18")
    b, _ = zoo.torch_module("resnet18")
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), key
    # BatchNorm statistics of a random batch, so that folding them is not the identity
    bn = a.layer1[0].bn1
    assert (bn.running_var - 1).abs().max() > 0.1 and bn.running_mean.abs().max() > 0.1
    assert a.bn1.weight.std() > 0.1  # random gamma
    # He-normal: a conv's weight std is sqrt(2 / fan_in)
    w = a.layer3[0].conv1.weight.detach()
    assert abs(float(w.std()) / np.sqrt(2 / w[0].numel()) - 1) < 0.02


def test_activations_keep_a_sensible_range_through_deep_models():
    module, x = zoo.torch_module("resnet18", (1, 3, 64, 64))
    with torch.no_grad():
        x = module.maxpool(module.relu(module.bn1(module.conv1(x))))
        features = module.layer4(module.layer3(module.layer2(module.layer1(x))))
    assert 0.05 < float(features.abs().mean()) < 100


def test_mtcnn_heads_and_ceil_mode_pooling():
    graph = load_model("zoo:mtcnn-onet")
    assert [graph.shapes[t] for t in graph.outputs] == [(1, 2), (1, 4), (1, 10)]
    assert isinstance(graph.node(graph.outputs[0]).op, ops.Softmax)
    pools = [n.op for n in graph.nodes if isinstance(n.op, ops.MaxPool)]
    assert len(pools) == 3 and all(p.ceil_mode for p in pools)
    prelu = [n for n in graph.nodes if isinstance(getattr(n.op, "activation", None), ops.PReLU)]
    assert len(prelu) == 5
    # P-Net is fully convolutional: each output pixel is a 12x12 window, stride 2
    graph = load_model("zoo:mtcnn-pnet", (1, 3, 40, 30))
    assert graph.shapes[graph.outputs[0]] == (1, 2, 15, 10)
    assert graph.shapes[graph.outputs[1]] == (1, 4, 15, 10)


def test_residual_adds_and_fire_concats_are_in_the_graphs():
    resnet = load_model("zoo:resnet18", (1, 3, 32, 32))
    adds = [n for n in resnet.nodes if isinstance(n.op, ops.Add)]
    assert len(adds) == 8 and all(isinstance(n.op.activation, ops.ReLU) for n in adds)
    assert not any(isinstance(n.op, ops.BatchNorm) for n in resnet.nodes)  # all folded
    squeeze = load_model("zoo:squeezenet1_1", (1, 3, 64, 64))
    assert sum(isinstance(n.op, ops.Concat) for n in squeeze.nodes) == 8
    assert any(isinstance(n.op, ops.GlobalAvgPool) for n in squeeze.nodes)


@pytest.mark.parametrize("name", ["alexnet", "vgg16", "squeezenet1_1", "mtcnn-pnet",
                                  "mtcnn-rnet", "mtcnn-onet", "digits"])
def test_documented_smallest_input_is_the_smallest(name):
    model = MODELS[name]
    n, c, h, w = model.smallest_shape
    assert check_input_shape(model, model.smallest_shape) == model.smallest_shape
    with pytest.raises(UserError, match=f"zoo:{name}: input shape"):
        check_input_shape(model, (n, c, h - 1, w - 1))


def test_bad_input_shapes_are_user_errors():
    model = MODELS["alexnet"]
    for shape, reason in [((1, 3, 67), "N,C,H,W"), (("a", 3, 67, 67), "N,C,H,W"),
                          (5, "N,C,H,W"), ((1, 1, 67, 67), "3 channel"),
                          ((1, 3, 170, 170), "neither a pooling nor an upsampling")]:
        with pytest.raises(UserError, match=reason):
            zoo.load("alexnet", shape)
    assert check_input_shape(model, (2, 3, 224, 224)) == (2, 3, 224, 224)
    _, example = zoo.torch_module("digits", (3, 1, 9, 10))
    assert example.shape == (3, 1, 9, 10)


@settings(max_examples=40)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.booleans())
def test_fixed_pool_equals_adaptive_pool(size, factor_h, factor_w, upsample):
    factor_w = factor_h if upsample else factor_w
    in_hw = (size, size) if upsample else (size * factor_h, size * factor_w)
    out_hw = (size * factor_h, size * factor_w) if upsample else (size, size)
    adaptive = torch.nn.AdaptiveAvgPool2d(out_hw)
    x = torch.randn((2, 3) + in_hw, generator=torch.Generator().manual_seed(size))
    fixed = fixed_pool(adaptive, in_hw, "pool")
    torch.testing.assert_close(fixed(x), adaptive(x), rtol=1e-6, atol=1e-6)


def test_uneven_adaptive_pool_is_a_user_error_naming_the_layer():
    with pytest.raises(UserError, match="avgpool: adaptive average pool from 4x4 to 6x6"):
        fixed_pool(torch.nn.AdaptiveAvgPool2d(6), (4, 4), "avgpool")


def test_yolov3_tiny_from_the_bundled_cfg():
    graph = load_model("zoo:yolov3-tiny", (1, 3, 64, 64))
    assert [graph.shapes[t] for t in graph.outputs] == [(1, 255, 2, 2), (1, 255, 4, 4)]
    assert all(graph.node(t).op.host for t in graph.outputs)  # yolo heads run on the host
    kinds = [n.op.kind for n in graph.nodes]
    assert kinds.count("Conv2d") == 13 and "Upsample" in kinds and "Concat" in kinds
    stride_one = [n.op for n in graph.nodes if isinstance(n.op, ops.MaxPool)][-1]
    assert stride_one.stride == (1, 1) and stride_one.padding == (0, 0, 1, 1)
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    first, second = run_float(graph, x), run_float(load_model("zoo:yolov3-tiny", x.shape), x)
    for key in first:  # the same seeded weights every time
        np.testing.assert_array_equal(first[key], second[key])
    assert zoo.load("yolov3-tiny", (1, 3, 32, 32)).shapes["layer23_yolo"] == (1, 255, 2, 2)
    with pytest.raises(UserError, match="multiples of 32"):
        zoo.load("yolov3-tiny", (1, 3, 48, 64))


def _alexnet_features_size(size):
    for kernel, stride, pad in [(11, 4, 2), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 2, 0)]:
        size = (size + 2 * pad - kernel) // stride + 1
    return size


@settings(max_examples=40, deadline=None)
@given(st.integers(40, 480), st.integers(40, 480))
def test_alexnet_accepts_exactly_the_sizes_its_adaptive_pool_can_be_fixed_at(h, w):
    fh, fw = _alexnet_features_size(h), _alexnet_features_size(w)
    pooling = fh >= 6 and fw >= 6 and fh % 6 == 0 and fw % 6 == 0
    upsampling = fh >= 1 and fh == fw and 6 % fh == 0
    try:
        check_input_shape(MODELS["alexnet"], (1, 3, h, w))
        accepted = True
    except UserError:
        accepted = False
    assert accepted == (pooling or upsampling), (h, w, fh, fw)


@settings(max_examples=8, deadline=None)
@given(st.sampled_from(["mtcnn-pnet", "squeezenet1_1", "resnet18"]), st.integers(8, 70),
       st.integers(8, 70))
def test_any_accepted_size_matches_the_module(name, h, w):
    shape = (1, 3, h, w)
    try:
        module, example = zoo.torch_module(name, shape)
    except UserError:
        smallest = MODELS[name].smallest_shape[2]
        assert min(h, w) < smallest
        return
    with torch.no_grad():
        want = _as_tuple(module(example))
    graph = load_model(f"zoo:{name}", shape)
    got = run_float(graph, example.numpy())
    for tensor, expected in zip(graph.outputs, want):
        assert _rel_error(got[tensor], expected.numpy()) <= 1e-5, tensor
