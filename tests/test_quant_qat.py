"""QAT: the fake-quant forward equals the golden model bit for bit; QAT beats PTQ at 4 bits."""

import numpy as np
import pytest
import torch
from torch import nn

from fpgacnn import golden
from fpgacnn.errors import UserError
from fpgacnn.frontends import load_model
from fpgacnn.frontends.torch import from_torch
from fpgacnn.quant import QModel, QuantConfig, quantize
from fpgacnn.quant.qat import QATModel, round_ste, train_qat
from fpgacnn.zoo import digits_data


@pytest.fixture(scope="module")
def digits():
    x_train, y_train, x_test, y_test = digits_data()
    return load_model("zoo:digits"), x_train, y_train, x_test, y_test


def _accuracy(qm, x, y):
    return float(np.mean(golden.run(qm, golden.quantize_input(qm, x))["fc"].argmax(1) == y))


def test_round_ste_rounds_forward_and_passes_gradients():
    x = torch.tensor([0.4, 1.6, -2.5], requires_grad=True)
    y = round_ste(x)
    y.sum().backward()
    assert y.tolist() == [0.0, 2.0, -2.0]
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("scheme", ["pow2", "affine"])
def test_qat_beats_ptq_at_4_bit_weights_and_forward_is_the_golden_model(digits, scheme):
    graph, x_train, y_train, x_test, y_test = digits
    ptq = quantize(graph, x_train[:256], QuantConfig(scheme=scheme, bits=8, weight_bits=4))
    model = QATModel(ptq)
    train_qat(model, golden.quantize_input(ptq, x_train), y_train, epochs=3)
    qat = model.convert()
    assert _accuracy(qat, x_test, y_test) > _accuracy(ptq, x_test, y_test)
    x = golden.quantize_input(ptq, x_test[:64])
    with torch.no_grad():
        values = model(torch.from_numpy(x.astype(np.float64)), keep=True)
    expected = golden.run(qat, x, keep=True)
    for layer in qat.layers:
        np.testing.assert_array_equal(values[layer.name].numpy().astype(np.int64),
                                      expected[layer.name])
    assert np.abs(qat.layer("conv2").weight).max() <= 7


class _Residual(nn.Module):
    """Add, AvgPool, GlobalAvgPool, LeakyReLU, PReLU, Upsample, Concat, Clip: ops beyond digits."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.prelu, self.leaky = nn.PReLU(8), nn.LeakyReLU(0.1)
        self.pool, self.up = nn.AvgPool2d(2), nn.Upsample(scale_factor=2)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        y = self.prelu(self.conv1(x))
        z = self.leaky(self.conv2(y)) + y
        z = torch.cat([self.up(self.pool(z)), torch.clamp(z, -1.0, 1.0)], 1)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(z, 1), 1))


def _residual_graph():
    torch.manual_seed(0)
    return from_torch(_Residual().eval(), torch.zeros(1, 3, 8, 8), name="residual")


@pytest.mark.parametrize("scheme,mode", [("affine", "gemmlowp"), ("affine", "float32"),
                                         ("pow2", "shift")])
def test_forward_is_the_golden_model_on_every_op_and_gradients_reach_every_weight(scheme,
                                                                                  mode):
    graph = _residual_graph()
    x = np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32)
    ptq = quantize(graph, x, QuantConfig(scheme=scheme, mode=mode))
    kinds = {layer.kind for layer in ptq.layers}
    assert {"Add", "AvgPool", "GlobalAvgPool", "Concat", "Upsample", "Clip"} <= kinds
    model = QATModel(ptq)
    codes = torch.from_numpy(golden.quantize_input(ptq, x).astype(np.float64))
    values = model(codes, keep=True)
    expected = golden.run(ptq, golden.quantize_input(ptq, x), keep=True)
    for layer in ptq.layers:
        np.testing.assert_array_equal(values[layer.name].detach().numpy(),
                                      expected[layer.name].astype(np.float64),
                                      err_msg=layer.name)
    model.logits(codes).square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_qat_runs_the_zoo_models_with_host_ops():
    graph = load_model("zoo:mtcnn-pnet")
    x = np.random.default_rng(1).standard_normal((4, 3, 12, 12)).astype(np.float32)
    ptq = quantize(graph, x, QuantConfig(scheme="affine", mode="float32"))
    values = QATModel(ptq)(torch.from_numpy(golden.quantize_input(ptq, x).astype(np.float64)),
                           keep=True)
    expected = golden.run(ptq, golden.quantize_input(ptq, x), keep=True)
    for layer in ptq.layers:
        np.testing.assert_array_equal(values[layer.name].detach().numpy(),
                                      expected[layer.name].astype(np.float64))


def test_qat_needs_the_float_model():
    graph = load_model("zoo:digits")
    qm = quantize(graph, np.zeros((2, 1, 8, 8), np.float32))
    bare = QModel(qm.name, qm.scheme, qm.mode, qm.rounding, qm.acc_bits, qm.input_shapes,
                  qm.input_formats, qm.layers, qm.outputs)
    with pytest.raises(UserError, match="float model"):
        QATModel(bare)
