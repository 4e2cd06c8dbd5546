"""QAT: the fake-quant forward equals the golden model bit for bit; QAT beats PTQ at 4 bits."""

import numpy as np
import pytest
import torch

from fpgacnn import golden
from fpgacnn.errors import UserError
from fpgacnn.frontends import load_model
from fpgacnn.quant import QuantConfig, quantize
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


def test_qat_refuses_ops_it_cannot_train():
    graph = load_model("zoo:squeezenet1_1", input_shape=(1, 3, 17, 17))
    qm = quantize(graph, np.zeros((2, 3, 17, 17), np.float32))
    with pytest.raises(UserError, match="QAT supports"):
        QATModel(qm)
