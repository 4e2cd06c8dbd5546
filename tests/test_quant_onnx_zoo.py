"""Zoo models quantized in float32 mode: golden == onnxruntime on every layer, bit for bit.

Models whose ops onnxruntime has no integer form for (PReLU in MTCNN, LeakyReLU in
YOLOv3-tiny) must be refused by the exporter with one clear UserError.
"""

import numpy as np
import pytest

from fpgacnn import golden
from fpgacnn.errors import UserError
from fpgacnn.frontends import load_model
from fpgacnn.quant import QuantConfig, quantize
from fpgacnn.quant.to_onnx import run_onnxruntime, to_onnx

EXPRESSIBLE = [("digits", None), ("alexnet", (1, 3, 63, 63)), ("vgg16", (1, 3, 32, 32)),
               ("squeezenet1_1", (1, 3, 33, 33))]


def _quantized(name, shape, per_channel=True):
    graph = load_model(f"zoo:{name}", input_shape=shape)
    (input_shape,) = graph.inputs.values()
    x = np.random.default_rng(0).standard_normal((6,) + input_shape[1:]).astype(np.float32)
    qm = quantize(graph, x, QuantConfig(scheme="affine", mode="float32",
                                        per_channel=per_channel))
    return qm, golden.quantize_input(qm, x[:2])


@pytest.mark.parametrize("name,shape", EXPRESSIBLE)
def test_zoo_model_equals_onnxruntime_on_every_layer(name, shape):
    qm, x = _quantized(name, shape, per_channel=name != "alexnet")
    expected = run_onnxruntime(to_onnx(qm, all_layers=True), x)
    got = golden.run(qm, x, keep=True)
    assert set(expected) == {layer.name for layer in qm.layers}
    for layer in qm.layers:
        np.testing.assert_array_equal(got[layer.name], expected[layer.name],
                                      err_msg=layer.name)


@pytest.mark.parametrize("name,shape,op", [("mtcnn-pnet", None, "PReLU"),
                                           ("yolov3-tiny", (1, 3, 32, 32), "LeakyReLU")])
def test_ops_without_integer_onnx_form_are_refused(name, shape, op):
    qm, _ = _quantized(name, shape)
    with pytest.raises(UserError, match=op):
        to_onnx(qm)
