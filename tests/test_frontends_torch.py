"""from_torch against the nn.Module itself: every supported module, function and method form."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings, strategies as st
from torch import nn

from fpgacnn.errors import UserError
from fpgacnn.frontends.torch import from_torch
from fpgacnn.ir import run_float, simplify


class Fn(nn.Module):
    """A module whose forward is `fn(self, x)`; torch.fx traces through it."""

    def __init__(self, fn, **children):
        super().__init__()
        self.fn = fn
        for name, child in children.items():
            setattr(self, name, child)

    def forward(self, x):
        return self.fn(self, x)


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and PReLU slopes, so that a wrong formula shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                if m.weight is not None:
                    m.weight.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                    m.bias.copy_(torch.randn(m.num_features, generator=gen))
            if isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen))
    return module.eval()


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


def check(module: nn.Module, shape, seed: int = 0):
    """Convert, run raw and simplified graphs, compare each output with the module's."""
    module = randomize(module, seed)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1))
    graph = from_torch(module, x)
    with torch.no_grad():
        want = module(x)
    want = want if isinstance(want, (tuple, list)) else (want,)
    assert len(graph.outputs) == len(want)
    for g in (graph, simplify(graph)):
        got = run_float(g, x.numpy())
        for name, w in zip(g.outputs, want):
            assert got[name].shape == tuple(w.shape)
            assert relative_error(got[name], w.numpy()) < 1e-5, name
    return graph


def kinds(graph):
    return [n.op.kind for n in graph.nodes]


CASES = {
    # convolutions
    "conv": (lambda: nn.Conv2d(3, 4, 3), (1, 3, 9, 9)),
    "conv_stride_pad": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=(1, 2)), (2, 3, 9, 8)),
    "conv_same_even": (lambda: nn.Conv2d(3, 4, 4, padding="same"), (1, 3, 7, 7)),
    "conv_same_dilated": (lambda: nn.Conv2d(3, 4, (3, 2), padding="same", dilation=2),
                          (1, 3, 9, 9)),
    "conv_valid": (lambda: nn.Conv2d(3, 4, 3, padding="valid"), (1, 3, 6, 6)),
    "conv_groups": (lambda: nn.Conv2d(4, 6, 3, groups=2, bias=False), (1, 4, 6, 6)),
    "conv_depthwise": (lambda: nn.Conv2d(4, 8, 3, groups=4, padding=1), (1, 4, 6, 6)),
    "linear": (lambda: nn.Linear(10, 5), (2, 10)),
    "linear_nobias": (lambda: nn.Linear(10, 5, bias=False), (2, 10)),
    # normalisation
    "conv_bn": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), (1, 3, 8, 8)),
    "bn_alone": (lambda: nn.BatchNorm2d(3), (1, 3, 5, 5)),
    "bn_no_affine": (lambda: nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, affine=False)),
                     (1, 3, 5, 5)),
    "linear_bn1d": (lambda: nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4)), (3, 6)),
    "lrn": (lambda: nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0), (1, 8, 4, 4)),
    # activations
    "relu": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True)), (1, 3, 6, 6)),
    "leaky": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.LeakyReLU(0.1)), (1, 3, 6, 6)),
    "prelu_1": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.PReLU()), (1, 3, 6, 6)),
    "prelu_c": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.PReLU(4)), (1, 3, 6, 6)),
    "relu6": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU6()), (1, 3, 6, 6)),
    "hardtanh": (lambda: nn.Hardtanh(-0.5, 0.7), (1, 3, 4, 4)),
    # pooling
    "maxpool": (lambda: nn.MaxPool2d(3, 2, 1), (1, 2, 9, 9)),
    "maxpool_ceil": (lambda: nn.MaxPool2d(3, 2, ceil_mode=True), (1, 2, 10, 10)),
    "maxpool_tuple": (lambda: nn.MaxPool2d((2, 3), (1, 2), (1, 0)), (1, 2, 7, 8)),
    "avgpool": (lambda: nn.AvgPool2d(2), (1, 2, 6, 6)),
    "avgpool_pad_ceil": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True), (1, 2, 8, 8)),
    "avgpool_pad_excl": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
                         (1, 2, 8, 8)),
    "adaptive_1": (lambda: nn.AdaptiveAvgPool2d(1), (1, 3, 5, 7)),
    "adaptive_same": (lambda: nn.AdaptiveAvgPool2d((5, 7)), (1, 3, 5, 7)),
    "adaptive_div": (lambda: nn.AdaptiveAvgPool2d((2, 3)), (1, 3, 6, 9)),
    "adaptive_max": (lambda: nn.AdaptiveMaxPool2d(2), (1, 3, 6, 6)),
    # shapes and routing
    "flatten_linear": (lambda: nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Identity(),
                                             nn.Linear(48, 3)), (2, 3, 4, 4)),
    "softmax": (lambda: nn.Sequential(nn.Flatten(), nn.Softmax(dim=1)), (2, 3, 2, 2)),
    "softmax_channels": (lambda: nn.Softmax(dim=1), (1, 5, 3, 3)),
    "upsample": (lambda: nn.Upsample(scale_factor=2), (1, 2, 3, 3)),
    "upsample_size": (lambda: nn.UpsamplingNearest2d(size=(9, 9)), (1, 2, 3, 3)),
    "relu_forms": (lambda: Fn(lambda s, x: torch.cat([F.relu(x), torch.relu(x), x.relu()], 1)),
                   (1, 2, 3, 3)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_module_matches_pytorch(case):
    factory, shape = CASES[case]
    check(factory(), shape)


class Functional(nn.Module):
    """Functional, method and operator forms of the supported ops."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.weight = nn.Parameter(torch.randn(8, 8, 1, 1) * 0.3)
        self.slope = nn.Parameter(torch.rand(8))
        self.fc = nn.Linear(16 * 4 * 4, 6)
        self.fc_weight = nn.Parameter(torch.randn(6, 6))

    def forward(self, x):
        a = F.relu(self.conv(x))
        b = F.prelu(F.conv2d(a, self.weight, None, 1, 0), self.slope)
        c = torch.cat([a, F.leaky_relu(b, 0.2)], dim=1)
        c = F.max_pool2d(c, kernel_size=2, stride=2)
        d = torch.add(c, c)
        d = F.interpolate(F.avg_pool2d(d, 2), scale_factor=2, mode="nearest")
        d = torch.clamp(d, -1.0, 1.5) + F.relu6(d)
        e = F.adaptive_avg_pool2d(d, 4)
        f = torch.flatten(F.dropout(e, 0.5, training=self.training), 1)
        g = F.linear(self.fc(f).relu(), self.fc_weight)
        return torch.softmax(g, dim=1), F.softmax(g, dim=-1), d.mean((2, 3)), e.mean([-1, -2], True)


def test_functional_and_method_forms():
    graph = check(Functional(), (2, 3, 8, 8))
    assert {"Conv2d", "PReLU", "Concat", "MaxPool", "AvgPool", "Upsample", "Clip", "Add",
            "Flatten", "Linear", "Softmax", "GlobalAvgPool"} <= set(kinds(graph))


def test_view_reshape_and_flatten_forms():
    for fn in (lambda s, x: x.view(x.size(0), -1), lambda s, x: x.reshape(x.shape[0], -1),
               lambda s, x: torch.flatten(x, 1), lambda s, x: x.flatten(1),
               lambda s, x: F.adaptive_avg_pool2d(x, 1).squeeze()):
        graph = check(Fn(fn), (2, 3, 4, 4))
        assert "Flatten" in kinds(graph)


def test_resnet_like_block_and_multiple_outputs():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(4)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            out = F.relu(x + y)
            return out, y

    graph = check(nn.Sequential(nn.Conv2d(3, 4, 1), Block()), (1, 3, 6, 6))
    assert [n.name for n in graph.nodes] == ["0", "1.conv1", "1.bn1", "1.relu", "1.conv2",
                                             "1.bn2", "1.add", "1.relu_1"]
    assert graph.outputs == ("1.relu_1", "1.bn2")
    simple = simplify(graph)
    assert "BatchNorm" not in kinds(simple)


def test_node_names_follow_module_paths():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2))
            self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(36, 5), nn.ReLU(),
                                            nn.Dropout(), nn.Linear(5, 5), nn.ReLU(),
                                            nn.Linear(5, 2))

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    graph = from_torch(Net().eval(), torch.randn(1, 3, 8, 8), name="net")
    assert graph.name == "net"
    assert list(graph.inputs) == ["input"]
    assert [n.name for n in graph.nodes] == [
        "features.0", "features.1", "features.2", "flatten", "classifier.0", "classifier.1",
        "classifier.2", "classifier.3", "classifier.4", "classifier.5", "classifier.6"]
    assert graph.outputs == ("classifier.6",)


def test_shared_module_called_twice_gets_unique_names():
    relu = nn.ReLU()
    graph = check(Fn(lambda s, x: s.act(s.act(x) + x), act=relu), (1, 2, 3, 3))
    assert [n.name for n in graph.nodes] == ["act", "add", "act_1"]


def test_training_mode_is_restored():
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    from_torch(module, torch.randn(1, 3, 5, 5))
    assert module.training


@pytest.mark.parametrize("module, shape, words", [
    (Fn(lambda s, x: torch.sigmoid(x)), (1, 2, 3, 3), ["'sigmoid'", "sigmoid", "supported:"]),
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh()), (1, 3, 5, 5), ["'1'", "Tanh", "Conv2d"]),
    (Fn(lambda s, x: x.view(1, 2, 9)), (1, 2, 3, 3), ["'view'", "reshaping"]),
    (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (1, 3, 5, 5), ["reflect"]),
    (nn.AdaptiveAvgPool2d(3), (1, 3, 5, 5), ["5x5 to 3x3"]),
    (nn.LocalResponseNorm(4), (1, 6, 3, 3), ["even"]),
    (nn.Upsample(scale_factor=2, mode="bilinear"), (1, 2, 3, 3), ["bilinear"]),
    (Fn(lambda s, x: x + 1.0), (1, 2, 3, 3), ["'add'", "number"]),
    (Fn(lambda s, x: x * 2), (1, 2, 3, 3), ["'mul'", "mul"]),
    (Fn(lambda s, x: x if x.sum() > 0 else -x), (1, 2, 3, 3), ["torch.fx"]),
    (Fn(lambda s, x: F.dropout(x, 0.5)), (1, 2, 3, 3), ["training=True"]),
])
def test_unsupported_is_a_one_line_user_error(module, shape, words):
    with pytest.raises(UserError) as info:
        from_torch(module.eval(), torch.randn(shape))
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@settings(max_examples=25)
@given(k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2),
       ceil=st.booleans(), include=st.booleans(), hw=st.integers(6, 11))
def test_window_parameters_sweep(k, s, p, d, ceil, include, hw):
    assume(d * (k - 1) + 1 <= hw - 1 + 2 * p)  # the dilated kernel fits the input
    conv = nn.Conv2d(2, 3, k, s, p, d)
    check(conv, (1, 2, hw, hw - 1))
    p = min(p, k // 2)  # PyTorch's limit for pooling padding
    check(nn.MaxPool2d(k, s, p, ceil_mode=ceil), (1, 2, hw, hw - 1))
    check(nn.AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=include), (1, 2, hw, hw + 1))


# ---- the torch.export fallback --------------------------------------------------------------

class SizeDependent(nn.Module):
    """Control flow on the input size: torch.fx cannot trace it, torch.export can."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(), nn.Linear(12 * 4 * 4, 5))

    def forward(self, x):
        if x.shape[-1] % 2:
            x = F.pad(x, (0, 1, 0, 1))
        y = F.relu(self.bn(self.conv(x)))
        y = torch.cat([y, F.interpolate(F.max_pool2d(y, 2), scale_factor=2)], 1)
        return self.head(F.adaptive_avg_pool2d(y, 4)), y.mean((2, 3))


def test_size_dependent_control_flow_goes_through_torch_export():
    with pytest.raises(Exception, match="control flow"):
        torch.fx.symbolic_trace(SizeDependent())
    graph = check(SizeDependent(), (1, 3, 8, 8))
    assert [n.name for n in graph.nodes][:3] == ["conv", "bn", "relu"]
    assert "head.2" in [n.name for n in graph.nodes]


@pytest.fixture
def export_only(monkeypatch):
    import fpgacnn.frontends.torch as frontend

    def refuse(module):
        raise RuntimeError("torch.fx refused for this test")
    monkeypatch.setattr(frontend, "_fx_trace", refuse)


EXPORTABLE = sorted(set(CASES) - {"lrn"})  # LocalResponseNorm is decomposed by torch.export


@pytest.mark.parametrize("case", EXPORTABLE)
def test_module_through_torch_export_matches_pytorch(case, export_only):
    factory, shape = CASES[case]
    check(factory(), shape)


def test_functional_forms_through_torch_export(export_only):
    graph = check(Functional(), (2, 3, 8, 8))
    assert {"Conv2d", "PReLU", "Concat", "MaxPool", "AvgPool", "Upsample", "Clip", "Add",
            "Flatten", "Linear", "Softmax", "GlobalAvgPool"} <= set(kinds(graph))


def test_channel_shuffle_module_matches_pytorch():
    """nn.ChannelShuffle becomes one ChannelShuffle op; output compared with the module's."""
    from fpgacnn.ir import ops as ir_ops, run_float
    module = nn.Sequential(nn.Conv2d(3, 12, 1), nn.ChannelShuffle(3)).eval()
    x = torch.randn(1, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    graph = from_torch(module, x)
    assert any(isinstance(n.op, ir_ops.ChannelShuffle) and n.op.groups == 3 for n in graph.nodes)
    got = run_float(graph, x.numpy())[graph.outputs[0]]
    np.testing.assert_allclose(got, module(x).detach().numpy(), rtol=1e-5, atol=1e-6)
