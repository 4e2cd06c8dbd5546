"""from_onnx against onnxruntime (models exported by torch and built with onnx.helper) and
against the expected outputs that the onnx package ships (light models, pytorch cases)."""

import glob
import io
import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from fpgacnn.errors import UserError
from fpgacnn.frontends.onnx import from_onnx
from fpgacnn.ir import ops, run_float, simplify

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
RNG = np.random.default_rng(0)


def ort_run(model: onnx.ModelProto, inputs: dict, outputs=None) -> list[np.ndarray]:
    if outputs:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        for name in outputs:
            model.graph.output.append(helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def relative_error(got, want) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


def check_with_ort(model, x, input_name="x", tol=1e-5, **kwargs):
    """Convert, run the raw and the simplified graph, compare every output with onnxruntime."""
    want = ort_run(model, {input_name: x})
    graph = from_onnx(model, **kwargs)
    for g in (graph, simplify(graph)):
        got = run_float(g, x)
        assert len(g.outputs) == len(want)
        for name, w in zip(g.outputs, want):
            assert got[name].shape == w.shape, name
            assert relative_error(got[name], w) < tol, name
    return graph


def kinds(graph):
    return [n.op.kind for n in graph.nodes]


# ---- models exported by torch.onnx.export ---------------------------------------------------

class Exported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.prelu = nn.PReLU(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.fc = nn.Linear(16 * 4 * 4, 10)
        self.drop = nn.Dropout()

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        y = F.leaky_relu(self.prelu(self.conv2(x)), 0.2) + F.relu6(x)
        y = F.avg_pool2d(y, 3, 2, 1, ceil_mode=True, count_include_pad=False)
        z = torch.clamp(y, -0.5, 2.0)
        z = torch.cat([z, F.interpolate(F.max_pool2d(y, 2), scale_factor=2, mode="nearest")], 1)
        f = self.fc(self.drop(z.view(z.size(0), -1)))
        return torch.softmax(f, 1), F.adaptive_avg_pool2d(z, 1)


@pytest.mark.parametrize("opset, fold", [(9, True), (11, False), (13, True), (17, True)])
def test_torch_exported_model_matches_onnxruntime_and_torch(opset, fold):
    torch.manual_seed(opset)
    module = Exported().eval()
    with torch.no_grad():
        module.bn.running_mean.uniform_(-1, 1)
        module.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 3, 15, 15)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buffer, opset_version=opset, dynamo=False,
                          input_names=["image"], do_constant_folding=fold)
    model = onnx.load_from_string(buffer.getvalue())
    graph = check_with_ort(model, x.numpy(), "image")
    assert list(graph.inputs) == ["image"]
    with torch.no_grad():
        want = module(x)
    got = run_float(graph, x.numpy())
    for name, w in zip(graph.outputs, want):
        assert relative_error(got[name], w.numpy()) < 1e-5
    assert {"Conv2d", "MaxPool", "AvgPool", "Upsample", "Concat", "Flatten", "Linear",
            "Softmax", "Clip", "PReLU", "LeakyReLU", "Add"} <= set(kinds(graph))


# ---- models built with onnx.helper ----------------------------------------------------------

def make_model(nodes, x_shape, y_names, inits=(), opset=13, x_dims=None):
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims or list(x_shape))]
    outputs = [helper.make_empty_tensor_value_info(y) for y in y_names]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("attrs", [
    dict(auto_pad="SAME_UPPER", strides=[2, 2]),
    dict(auto_pad="SAME_LOWER", strides=[2, 2]),
    dict(auto_pad="SAME_UPPER", strides=[3, 1]),
    dict(auto_pad="VALID", strides=[1, 2]),
    dict(pads=[0, 1, 2, 1], strides=[2, 1], dilations=[1, 2], group=2),
])
def test_conv_padding_modes(attrs):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[4, 3], **attrs)]
    model = make_model(nodes, (1, 4, 9, 10), ["y"], {"w": randn(6, 4 // attrs.get("group", 1),
                                                                4, 3), "b": randn(6)})
    check_with_ort(model, randn(1, 4, 9, 10))


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(kernel_shape=[2, 3], strides=[2, 2], auto_pad="SAME_LOWER"),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 1], ceil_mode=1),
    dict(kernel_shape=[3, 2], strides=[2, 3], pads=[1, 1, 0, 1], ceil_mode=1,
         count_include_pad=1),
    dict(kernel_shape=[2, 2], strides=[2, 2], auto_pad="VALID"),
])
def test_pool_padding_modes(op, attrs):
    if op == "MaxPool":
        attrs = {k: v for k, v in attrs.items() if k != "count_include_pad"}
    model = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], (1, 2, 8, 9), ["y"])
    check_with_ort(model, randn(1, 2, 8, 9))


@pytest.mark.parametrize("opset, node, inits, kind", [
    (9, helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=0.7), {}, "Clip"),
    (9, helper.make_node("Clip", ["x"], ["y"], min=0.0), {}, "ReLU"),
    (11, helper.make_node("Clip", ["x", "lo", "hi"], ["y"]),
     {"lo": np.float32(-0.3), "hi": np.float32(0.4)}, "Clip"),
    (13, helper.make_node("Clip", ["x", "", "hi"], ["y"]), {"hi": np.float32(0.4)}, "Clip"),
    (13, helper.make_node("Clip", ["x", "lo"], ["y"]), {"lo": np.float32(0.0)}, "ReLU"),
])
def test_clip_attributes_before_opset_11_and_inputs_after(opset, node, inits, kind):
    model = make_model([node], (2, 3, 4, 4), ["y"], inits, opset=opset)
    assert kinds(check_with_ort(model, randn(2, 3, 4, 4))) == [kind]


SCALES = np.array([1, 1, 2, 2], np.float32)


@pytest.mark.parametrize("opset, node, inits", [
    (9, helper.make_node("Upsample", ["x", "s"], ["y"], mode="nearest"), {"s": SCALES}),
    (10, helper.make_node("Resize", ["x", "s"], ["y"], mode="nearest"), {"s": SCALES}),
    (11, helper.make_node("Resize", ["x", "roi", "s"], ["y"], mode="nearest"),
     {"roi": np.zeros(0, np.float32), "s": np.array([1, 1, 3, 3], np.float32)}),
    (13, helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
     {"sizes": np.array([1, 2, 20, 20], np.int64)}),
    (17, helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest",
                          coordinate_transformation_mode="pytorch_half_pixel"), {"s": SCALES}),
])
def test_upsample_and_resize_nearest(opset, node, inits):
    model = make_model([node], (1, 2, 5, 5), ["y"], inits, opset=opset)
    assert kinds(check_with_ort(model, randn(1, 2, 5, 5))) == ["Upsample"]


@pytest.mark.parametrize("node, inits, words", [
    (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear"), {"s": SCALES}, "linear"),
    (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest"),
     {"s": np.array([1, 1, 1.5, 1.5], np.float32)}, "not an integer"),
    (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest", nearest_mode="floor"),
     {"s": SCALES}, "not an integer"),  # half_pixel + floor reads the previous pixel
])
def test_resize_that_is_not_integer_nearest_is_refused(node, inits, words):
    with pytest.raises(UserError, match=words):
        from_onnx(make_model([node], (1, 2, 4, 4), ["y"], inits))


def test_constants_fold_into_weights():
    """Weights from ConstantOfShape/Constant, a Shape->Gather->Unsqueeze->Concat->Reshape
    flatten, a Cast, and MatMul + Add becoming one Linear with a bias."""
    w_value = helper.make_tensor("v", TensorProto.FLOAT, [1], [0.05])
    nodes = [
        helper.make_node("Constant", [], ["wshape"], value=numpy_helper.from_array(
            np.array([4, 3, 3, 3], np.int64))),
        helper.make_node("ConstantOfShape", ["wshape"], ["w"], value=w_value),
        helper.make_node("Constant", [], ["bias64"], value=numpy_helper.from_array(
            np.arange(4, dtype=np.float64))),
        helper.make_node("Cast", ["bias64"], ["bias"], to=TensorProto.FLOAT),
        helper.make_node("Conv", ["x", "w", "bias"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Shape", ["r"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["r", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "m"], ["mm"]),
        helper.make_node("Add", ["mm", "mb"], ["y"]),
    ]
    inits = {"zero": np.array(0, np.int64), "axes": np.array([0], np.int64),
             "minus1": np.array([-1], np.int64), "m": randn(4 * 4 * 4, 5),
             "mb": randn(1, 5)}
    model = make_model(nodes, (2, 3, 6, 6), ["y"], inits)
    graph = check_with_ort(model, randn(2, 3, 6, 6))
    assert kinds(graph) == ["Conv2d", "ReLU", "Flatten", "Linear"]
    np.testing.assert_array_equal(graph.nodes[0].params["weight"],
                                  np.full((4, 3, 3, 3), 0.05, np.float32))
    assert graph.nodes[-1].op.bias


@pytest.mark.parametrize("attrs, c", [
    (dict(transB=1, alpha=0.5, beta=2.0), randn(5)),
    (dict(transB=0), randn(1, 5)),
    (dict(alpha=1.5), None),
])
def test_gemm_attributes(attrs, c):
    b = randn(5, 12) if attrs.get("transB") else randn(12, 5)
    names = ["x", "b"] + (["c"] if c is not None else [])
    inits = {"b": b} | ({"c": c} if c is not None else {})
    model = make_model([helper.make_node("Gemm", names, ["y"], **attrs)], (3, 12), ["y"], inits)
    assert kinds(check_with_ort(model, randn(3, 12))) == ["Linear"]


def test_many_ops_in_one_graph():
    c = 4
    nodes = [
        helper.make_node("BatchNormalization", ["x", "g", "bt", "mu", "var"], ["bn"],
                         epsilon=1e-3),
        helper.make_node("PRelu", ["bn", "slope"], ["p"]),
        helper.make_node("LeakyRelu", ["p"], ["l"], alpha=0.3),
        helper.make_node("Mul", ["l", "scale"], ["m"]),
        helper.make_node("Add", ["shift", "m"], ["a"]),
        helper.make_node("Sum", ["a", "x", "l"], ["s"]),
        helper.make_node("LRN", ["s"], ["lrn"], size=3, alpha=0.01, beta=0.6, bias=1.5),
        helper.make_node("Dropout", ["lrn"], ["d"]),
        helper.make_node("Identity", ["d"], ["i"]),
        helper.make_node("GlobalAveragePool", ["i"], ["gap"]),
        helper.make_node("Squeeze", ["gap", "sq"], ["flat"]),
        helper.make_node("Softmax", ["flat"], ["y"], axis=-1),
        helper.make_node("GlobalMaxPool", ["i"], ["y2"]),
        helper.make_node("Flatten", ["i"], ["y3"], axis=1),
    ]
    inits = {"g": randn(c), "bt": randn(c), "mu": randn(c), "var": 0.5 + RNG.random(c,
                                                                                     np.float32),
             "slope": RNG.random((c, 1, 1), np.float32), "scale": randn(1, c, 1, 1),
             "shift": randn(c, 1, 1), "sq": np.array([2, 3], np.int64)}
    model = make_model(nodes, (2, c, 5, 5), ["y", "y2", "y3"], inits)
    graph = check_with_ort(model, randn(2, c, 5, 5))
    assert {"BatchNorm", "PReLU", "LeakyReLU", "Add", "LRN", "Dropout", "Identity",
            "GlobalAvgPool", "Flatten", "Softmax", "MaxPool"} <= set(kinds(graph))


def test_dynamic_input_shape_and_override():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1] * 4)]
    model = make_model(nodes, None, ["y"], {"w": randn(2, 3, 3, 3)}, x_dims=["N", 3, 8, 8])
    assert from_onnx(model).inputs == {"x": (1, 3, 8, 8)}  # a dynamic batch is one image
    free = make_model(nodes, None, ["y"], {"w": randn(2, 3, 3, 3)}, x_dims=["N", 3, "H", "W"])
    with pytest.raises(UserError, match="'x' has a dynamic shape"):
        from_onnx(free)
    graph = check_with_ort(free, randn(2, 3, 7, 9), input_shape=(2, 3, 7, 9))
    assert graph.shapes[graph.outputs[0]] == (2, 2, 7, 9)


@pytest.mark.parametrize("nodes, inits, opset, words", [
    ([helper.make_node("Sigmoid", ["x"], ["y"], name="act1")], {}, 13,
     ["node 'act1'", "op Sigmoid is not supported", "Conv", "Resize", "MaxPool"]),
    ([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 1, 3])], {}, 13,
     ["node 'y'", "Transpose"]),
    ([helper.make_node("Softmax", ["x"], ["y"], axis=1)], {}, 11, ["before opset 13"]),
    ([helper.make_node("Reshape", ["x", "s"], ["y"])], {"s": np.array([2, 12, 4])}, 13,
     ["reshaping (2, 3, 4, 4) to (2, 12, 4)"]),
    ([helper.make_node("Conv", ["x", "x"], ["y"], kernel_shape=[4, 4])], {}, 13,
     ["Conv weight must be a constant"]),
    ([helper.make_node("Relu", ["x"], ["y"])], {}, 5, ["opset 5 is not supported"]),
])
def test_unsupported_is_a_one_line_user_error(nodes, inits, opset, words):
    with pytest.raises(UserError) as info:
        from_onnx(make_model(nodes, (2, 3, 4, 4), ["y"], inits, opset=opset))
    assert "\n" not in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        from_onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\x00 not a protobuf")
    with pytest.raises(UserError, match="not a readable ONNX model"):
        from_onnx(junk)


# ---- the expected outputs shipped with the onnx package -------------------------------------

def light_input(graph):
    """The input onnx's backend test runner feeds the light models: arange(n) / n."""
    (shape,) = graph.inputs.values()
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


@pytest.mark.parametrize("name", ["bvlc_alexnet", "squeezenet", "resnet50", "inception_v1", "shufflenet",
                                  pytest.param("densenet121", marks=pytest.mark.slow)])
def test_light_models_match_shipped_outputs_and_onnxruntime(name):
    """densenet121's shipped output is the one far from uniform: the strongest of these checks
    (its BatchNorm + Mul + Add chains go in as BatchNorm nodes)."""
    path = os.path.join(DATA, "light", f"light_{name}.onnx")
    graph = from_onnx(path)
    x = light_input(graph)
    got = run_float(graph, x, keep=True)
    want = numpy_helper.to_array(onnx.load_tensor(path.replace(".onnx", "_output_0.pb")))
    np.testing.assert_allclose(got[graph.outputs[0]], want, rtol=1e-3, atol=1e-7)
    model = onnx.load(path)
    softmax = [n for n in model.graph.node if n.op_type == "Softmax"]
    if not softmax:
        return
    # most shipped outputs are nearly uniform softmaxes: also compare the logits with ORT
    (softmax,) = softmax
    (logits,) = ort_run(model, {next(iter(graph.inputs)): x}, [softmax.input[0]])[1:]
    ir_name = graph.node(graph.outputs[0]).inputs[0]
    assert relative_error(got[ir_name].reshape(logits.shape), logits) < 1e-4


def test_light_shufflenet_channel_shuffles_become_one_op():
    graph = from_onnx(os.path.join(DATA, "light", "light_shufflenet.onnx"))
    shuffles = [n for n in graph.nodes if isinstance(n.op, ops.ChannelShuffle)]
    assert shuffles and all(n.op.groups == 4 for n in shuffles)


def test_transpose_outside_a_channel_shuffle_is_refused():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])
    node = helper.make_node("Transpose", ["x"], ["y"], perm=[0, 1, 3, 2])
    model = helper.make_model(helper.make_graph([node], "t", [x], [y]))
    with pytest.raises(UserError, match="Transpose is supported only inside a channel shuffle"):
        from_onnx(model)


SHIPPED_MUST_PASS = [
    "test_AvgPool2d", "test_AvgPool2d_stride", "test_BatchNorm1d_3d_input_eval",
    "test_BatchNorm2d_eval", "test_BatchNorm2d_momentum_eval", "test_Conv2d",
    "test_Conv2d_depthwise", "test_Conv2d_depthwise_padded", "test_Conv2d_depthwise_strided",
    "test_Conv2d_depthwise_with_multiplier", "test_Conv2d_dilated", "test_Conv2d_groups",
    "test_Conv2d_groups_thnn", "test_Conv2d_no_bias", "test_Conv2d_padding",
    "test_Conv2d_strided", "test_LeakyReLU", "test_LeakyReLU_with_negval", "test_Linear",
    "test_Linear_no_bias", "test_BatchNorm3d_eval", "test_BatchNorm3d_momentum_eval",
    "test_PReLU_3d", "test_PReLU_3d_multiparam",
    "test_MaxPool2d", "test_PReLU_1d", "test_PReLU_1d_multiparam", "test_PReLU_2d",
    "test_PReLU_2d_multiparam", "test_ReLU", "test_Softmax", "test_softmax_lastdim",
    "test_softmax_functional_dim3", "test_operator_clip", "test_operator_concat2",
    "test_operator_conv", "test_operator_flatten", "test_operator_mm",
]


def shipped_case(directory):
    """The model with every input but the first made an initializer, the input, the outputs."""
    model = onnx.load(os.path.join(directory, "model.onnx"))
    data = sorted(glob.glob(os.path.join(directory, "test_data_set_*")))[0]
    load = lambda pattern: [numpy_helper.to_array(onnx.load_tensor(p))  # noqa: E731
                            for p in sorted(glob.glob(os.path.join(data, pattern)))]
    inputs, outputs = load("input_*.pb"), load("output_*.pb")
    initialized = {i.name for i in model.graph.initializer}
    free = [i for i in model.graph.input if i.name not in initialized]
    for info, value in list(zip(free, inputs))[1:]:
        model.graph.initializer.append(numpy_helper.from_array(value, info.name))
    return model, inputs[0], outputs


SHIPPED = sorted(glob.glob(os.path.join(DATA, "pytorch-converted", "test_*"))
                 + glob.glob(os.path.join(DATA, "pytorch-operator", "test_*")))


@pytest.mark.parametrize("directory", SHIPPED, ids=os.path.basename)
def test_pytorch_cases_shipped_with_onnx(directory):
    """The supported cases match the shipped outputs; every other case is a UserError."""
    model, x, outputs = shipped_case(directory)
    name = os.path.basename(directory)
    if name not in SHIPPED_MUST_PASS:
        if x.dtype != np.float32:
            pytest.skip("float64 test data (uninitialised values in the onnx package)")
        with pytest.raises(UserError):
            graph = from_onnx(model)
            run_float(graph, x)
        return
    graph = from_onnx(model)
    got = run_float(graph, x)
    for out, want in zip(graph.outputs, outputs):
        np.testing.assert_allclose(got[out], want, rtol=1e-4, atol=1e-6)


def test_bias_add_is_not_folded_into_a_matmul_used_twice():
    nodes = [helper.make_node("MatMul", ["x", "m"], ["mm"]),
             helper.make_node("Add", ["mm", "b"], ["y"]),
             helper.make_node("Relu", ["mm"], ["y2"])]
    model = make_model(nodes, (3, 6), ["y", "y2"], {"m": randn(6, 4), "b": randn(4)})
    graph = check_with_ort(model, randn(3, 6))
    assert kinds(graph) == ["Linear", "BatchNorm", "ReLU"]
    assert not graph.nodes[0].op.bias


PADS = np.array([0, 0, 1, 2, 0, 0, 2, 0], np.int64)


@pytest.mark.parametrize("opset, pad_node, inits, after", [
    (11, helper.make_node("Pad", ["x", "pads"], ["p"]), {"pads": PADS},
     helper.make_node("Conv", ["p", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 0, 0, 1])),
    (9, helper.make_node("Pad", ["x"], ["p"], pads=PADS.tolist()), {},
     helper.make_node("Conv", ["p", "w"], ["y"], kernel_shape=[3, 3], auto_pad="SAME_UPPER",
                      strides=[2, 2])),
    (13, helper.make_node("Pad", ["x", "pads", "zero"], ["p"]),
     {"pads": PADS, "zero": np.array(0, np.float32)},
     helper.make_node("AveragePool", ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                      pads=[1, 0, 0, 0], count_include_pad=1)),
])
def test_zero_pad_folds_into_the_next_conv_or_average_pool(opset, pad_node, inits, after):
    model = make_model([pad_node, after], (1, 2, 7, 8), ["y"],
                       inits | {"w": randn(3, 2, 3, 3)}, opset=opset)
    graph = check_with_ort(model, randn(1, 2, 7, 8))
    assert len(graph.nodes) == 1


@pytest.mark.parametrize("pad_node, after, words", [
    (helper.make_node("Pad", ["x", "pads"], ["p"]), helper.make_node("Relu", ["p"], ["y"]),
     "reads a Pad"),
    (helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect"),
     helper.make_node("Conv", ["p", "w"], ["y"], kernel_shape=[3, 3]), "only zero padding"),
    (helper.make_node("Pad", ["x", "pads"], ["p"]),
     helper.make_node("MaxPool", ["p"], ["y"], kernel_shape=[2, 2]), "reads a Pad"),
])
def test_other_pads_are_refused(pad_node, after, words):
    model = make_model([pad_node, after], (1, 2, 7, 8), ["y"],
                       {"pads": PADS, "w": randn(3, 2, 3, 3)})
    with pytest.raises(UserError, match=words):
        from_onnx(model)
