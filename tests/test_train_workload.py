"""The training-step workload: each listed backward Conv2d/Linear, run by the float reference
executor on the tensors it names, computes torch autograd's gradient; MAC counts match the
textbook formulas."""

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from fpgacnn.ir import ops
from fpgacnn.ir.graph import Graph, Node
from fpgacnn.ir.reference import run_node
from fpgacnn.train.workload import training_step_layers


def conv_graph(op: ops.Conv2d, in_shape, first: bool) -> Graph:
    """`op` in a graph; unless `first`, behind a 1x1 conv so that its input gradient is needed."""
    rng = np.random.default_rng(0)
    nodes = []
    src = "x"
    if not first:
        pre = ops.Conv2d(op.in_channels, op.in_channels, 1, bias=False)
        nodes.append(Node("pre", pre, ("x",), {"weight": rng.standard_normal(
            (op.in_channels, op.in_channels, 1, 1))}))
        src = "pre"
    params = {"weight": rng.standard_normal((op.out_channels, op.in_channels // op.groups)
                                            + op.kernel)}
    if op.bias:
        params["bias"] = rng.standard_normal(op.out_channels)
    nodes.append(Node("conv", op, (src,), params))
    return Graph("g", {"x": in_shape}, nodes, ("conv",))


def apply(op, x, weight):
    return run_node(Node("w", op), [torch.as_tensor(x)], {"weight": torch.as_tensor(weight)})


@settings(max_examples=40)
@given(st.integers(1, 2), st.integers(1, 2), st.integers(1, 3), st.integers(1, 3),
       st.tuples(st.integers(1, 3), st.integers(1, 3)), st.tuples(st.integers(1, 3),
                                                                   st.integers(1, 3)),
       st.tuples(st.integers(1, 2), st.integers(1, 2)), st.tuples(*[st.integers(0, 2)] * 4),
       st.tuples(st.integers(5, 9), st.integers(5, 9)))
def test_conv_backward_ops_compute_the_autograd_gradients(n, g, cin_g, cout_g, kernel, stride,
                                                          dilation, pads, hw):
    op = ops.Conv2d(cin_g * g, cout_g * g, kernel, stride, pads, dilation, g, bias=True)
    in_shape = (n, op.in_channels) + hw
    graph = conv_graph(op, in_shape, first=False)
    items = {name: (o, s) for name, o, s in training_step_layers(graph, n)}
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.standard_normal(in_shape), requires_grad=True)
    w = torch.tensor(graph.node("conv").params["weight"], requires_grad=True)
    b = torch.tensor(graph.node("conv").params["bias"], requires_grad=True)
    y = run_node(graph.node("conv"), [x], {"weight": w, "bias": b})
    dy = torch.tensor(rng.standard_normal(tuple(y.shape)))
    y.backward(dy)
    oh, ow = y.shape[2:]
    macs = n * op.out_channels * oh * ow * cin_g * kernel[0] * kernel[1]

    # input gradient: dY with stride-1 zeros inserted, cropped to the listed input shape
    gi_op, gi_shape = items["conv.grad_input"]
    zeros = torch.zeros(n, op.out_channels, (oh - 1) * stride[0] + 1, (ow - 1) * stride[1] + 1,
                        dtype=torch.float64)
    zeros[:, :, ::stride[0], ::stride[1]] = dy
    top = max(0, pads[0] - (kernel[0] - 1) * dilation[0])
    left = max(0, pads[1] - (kernel[1] - 1) * dilation[1])
    expanded = zeros[:, :, top:top + gi_shape[2], left:left + gi_shape[3]]
    assert tuple(expanded.shape) == gi_shape
    rotated = w.detach().reshape(g, cout_g, cin_g, *kernel).transpose(1, 2)
    rotated = rotated.reshape(op.in_channels, cout_g, *kernel).flip(2, 3)
    np.testing.assert_allclose(apply(gi_op, expanded, rotated).numpy(), x.grad.numpy(),
                               rtol=1e-9, atol=1e-9)

    # weight gradient: X as (Cin/g, g*N, H, W), dY as the (Cout, N, OH, OW) kernel
    gw_op, gw_shape = items["conv.grad_weight"]
    xs = x.detach().reshape(n, g, cin_g, *hw).permute(2, 1, 0, 3, 4).reshape(cin_g, g * n, *hw)
    xs = xs[:, :, :gw_shape[2], :gw_shape[3]]
    kernel_dy = dy.reshape(n, g, cout_g, oh, ow).permute(1, 2, 0, 3, 4).reshape(-1, n, oh, ow)
    dw = apply(gw_op, xs, kernel_dy).transpose(0, 1)
    np.testing.assert_allclose(dw.numpy(), w.grad.numpy(), rtol=1e-9, atol=1e-9)

    # the same gradient in GEMM form: dY (Cout/g, N*OH*OW) times im2col(X)^T, one per group
    gemm = {name: (o, s) for name, o, s in training_step_layers(graph, n, weight_grad="gemm")}
    xpad = F.pad(x.detach(), (pads[1], pads[3], pads[0], pads[2]))
    cols = F.unfold(xpad, kernel, dilation, 0, stride)    # (N, Cin*kh*kw, OH*OW), c-major
    for i in range(g):
        name = "conv.grad_weight" if g == 1 else f"conv.grad_weight.g{i}"
        gemm_op, gemm_shape = gemm[name]
        taps = cols[:, i * cin_g * kernel[0] * kernel[1]:(i + 1) * cin_g * kernel[0] * kernel[1]]
        weight = taps.permute(1, 0, 2).reshape(cin_g * kernel[0] * kernel[1], -1)
        rows = dy[:, i * cout_g:(i + 1) * cout_g].transpose(0, 1).reshape(gemm_shape)
        np.testing.assert_allclose(apply(gemm_op, rows, weight).numpy(),
                                   w.grad[i * cout_g:(i + 1) * cout_g].reshape(cout_g, -1),
                                   rtol=1e-9, atol=1e-9)
        assert g * _macs(gemm_op, gemm_shape) == macs

    gb_op, gb_shape = items["conv.grad_bias"]
    dy_rows = dy.transpose(0, 1).reshape(gb_shape)
    np.testing.assert_allclose(apply(gb_op, dy_rows, torch.ones(1, gb_shape[1],
                                                                dtype=torch.float64))[:, 0],
                               b.grad.numpy(), rtol=1e-9, atol=1e-9)

    assert _macs(gw_op, gw_shape) == macs
    assert _macs(gi_op, gi_shape) == n * op.in_channels * hw[0] * hw[1] * cout_g * \
        kernel[0] * kernel[1]


def _macs(op, shape):
    out = op.output_shape([shape])
    if isinstance(op, ops.Linear):
        return int(np.prod(out)) * op.in_features
    per_output = op.in_channels // op.groups * op.kernel[0] * op.kernel[1]
    return int(np.prod(out)) * per_output


def test_linear_backward_ops_are_the_seed_formulas():
    """Seed 000's FC layer at batch 30: dW = dY^T X is (4096 x 30)(30 x 9216)."""
    graph = Graph("fc", {"x": (1, 9216)}, [
        Node("fc6", ops.Linear(9216, 4096), ("x",), {"weight": np.zeros((4096, 9216), np.float32),
                                                      "bias": np.zeros(4096, np.float32)}),
        Node("fc7", ops.Linear(4096, 10, bias=False), ("fc6",),
             {"weight": np.zeros((10, 4096), np.float32)})], ("fc7",))
    items = {name: (op, shape) for name, op, shape in training_step_layers(graph, 30)}
    assert list(items) == ["fc6", "fc7", "fc7.grad_input", "fc7.grad_weight", "fc6.grad_weight",
                           "fc6.grad_bias"]
    op, shape = items["fc6.grad_weight"]
    assert shape == (4096, 30) and op.output_shape([shape]) == (4096, 9216)
    op, shape = items["fc7.grad_input"]
    assert shape == (30, 10) and op.output_shape([shape]) == (30, 4096)


def test_pool_and_upsample_input_gradients_as_depthwise_convolutions():
    rng = np.random.default_rng(0)
    pool = ops.AvgPool(3, 2, (1, 1, 1, 1))
    graph = Graph("p", {"x": (2, 3, 7, 7)}, [
        Node("pre", ops.Conv2d(3, 3, 1, bias=False), ("x",), {"weight": np.ones((3, 3, 1, 1))}),
        Node("pool", pool, ("pre",)), Node("up", ops.Upsample(2), ("pool",))], ("up",))
    items = {name: (op, shape) for name, op, shape in training_step_layers(graph, 2)}
    x = torch.tensor(rng.standard_normal((2, 3, 7, 7)), requires_grad=True)
    y = F.avg_pool2d(x, 3, 2, 1)
    up = y.repeat_interleave(2, 2).repeat_interleave(2, 3)
    d_up = torch.tensor(rng.standard_normal(tuple(up.shape)))
    up.backward(d_up)

    op, shape = items["up.grad_input"]
    dy = apply(op, d_up, torch.ones(3, 1, 2, 2, dtype=torch.float64))
    expected = d_up.reshape(2, 3, 4, 2, 4, 2).sum(dim=(3, 5))
    np.testing.assert_allclose(dy.numpy(), expected.numpy(), rtol=1e-12)

    op, shape = items["pool.grad_input"]
    zeros = torch.zeros(shape, dtype=torch.float64)
    zeros[:, :, ::2, ::2] = dy
    dx = apply(op, zeros, torch.full((3, 1, 3, 3), 1 / 9, dtype=torch.float64))
    np.testing.assert_allclose(dx.numpy(), x.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_digits_step_lists_forward_then_backward():
    from fpgacnn.frontends import load_model

    names = [name for name, _, _ in training_step_layers(load_model("zoo:digits"), 32)]
    assert names[:4] == ["conv1", "conv2", "conv3", "fc"]
    assert "conv1.grad_input" not in names  # nothing needs the gradient of the image
    assert names[4:] == ["fc.grad_input", "fc.grad_weight", "fc.grad_bias", "conv3.grad_input",
                         "conv3.grad_weight", "conv3.grad_bias", "conv2.grad_input",
                         "conv2.grad_weight", "conv2.grad_bias", "conv1.grad_weight",
                         "conv1.grad_bias"]


def test_weight_gradient_form_follows_max_kernel():
    """"auto" keeps the conv form while its OH x OW kernel fits max_kernel, else GEMM form."""
    def grad_weight(hw, **form):
        graph = conv_graph(ops.Conv2d(2, 4, 3), (1, 2) + hw, first=True)
        (op,) = [o for name, o, _ in training_step_layers(graph, 8, **form)
                 if name == "conv.grad_weight"]
        return op

    assert isinstance(grad_weight((13, 13), weight_grad="auto"), ops.Conv2d)       # 11 x 11
    assert isinstance(grad_weight((14, 13), weight_grad="auto"), ops.Linear)       # 12 x 11
    assert grad_weight((14, 13), weight_grad="auto", max_kernel=12).kernel == (12, 11)
    assert isinstance(grad_weight((14, 13)), ops.Conv2d)                            # default
