"""Every zoo model quantized in float32 mode: golden == onnxruntime on every layer, bit for bit.

Input sizes are reduced where the full size would cost test time (the arithmetic per element
does not depend on it). Models quantized in an integer mode keep integer LeakyReLU/PReLU slopes,
which have no ONNX form: the exporter refuses them with one clear UserError.
"""

import numpy as np
import pytest

from fpgacnn import golden, zoo
from fpgacnn.errors import UserError
from fpgacnn.frontends import load_model
from fpgacnn.quant import QuantConfig, quantize
from fpgacnn.quant.to_onnx import run_onnxruntime, to_onnx

SHAPES = {"digits": None, "alexnet": (1, 3, 63, 63), "vgg16": (1, 3, 32, 32),
          "squeezenet1_1": (1, 3, 33, 33), "resnet18": (1, 3, 32, 32), "mtcnn-pnet": None,
          "mtcnn-rnet": None, "mtcnn-onet": None, "yolov3-tiny": (1, 3, 64, 64)}


def _quantized(name, mode="float32", per_channel=True):
    graph = load_model(f"zoo:{name}", input_shape=SHAPES[name])
    (input_shape,) = graph.inputs.values()
    x = np.random.default_rng(0).standard_normal((6,) + input_shape[1:]).astype(np.float32)
    qm = quantize(graph, x, QuantConfig(scheme="affine", mode=mode, per_channel=per_channel))
    return qm, golden.quantize_input(qm, x[:2])


def test_every_zoo_model_is_covered():
    assert set(SHAPES) == set(zoo.names())


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_zoo_model_equals_onnxruntime_on_every_layer(name):
    qm, x = _quantized(name, per_channel=name != "alexnet")
    expected = run_onnxruntime(to_onnx(qm, all_layers=True), x)
    got = golden.run(qm, x, keep=True)
    assert set(expected) == {layer.name for layer in qm.layers}
    for layer in qm.layers:
        np.testing.assert_array_equal(got[layer.name], expected[layer.name],
                                      err_msg=layer.name)


def test_float32_mode_gives_slopes_a_layer_of_their_own():
    qm, _ = _quantized("mtcnn-pnet")
    pre, act = qm.layer("conv1_pre"), qm.layer("conv1")
    assert pre.op.activation is None and act.inputs == ("conv1_pre",)
    assert act.output == pre.output and act.act_multiplier is None
    slopes = qm.float_graph.node("conv1").params["slope"]
    np.testing.assert_array_equal(act.act_slope, np.float32(slopes))


@pytest.mark.parametrize("name,op", [("mtcnn-pnet", "PReLU"), ("yolov3-tiny", "LeakyReLU")])
def test_integer_slopes_have_no_onnx_form(name, op):
    qm, _ = _quantized(name, mode="gemmlowp")
    with pytest.raises(UserError, match=op):
        to_onnx(qm)


def test_float32_slopes_survive_save_and_load(tmp_path):
    from fpgacnn.quant import QModel
    qm, x = _quantized("mtcnn-pnet")
    qm.save(tmp_path / "p.npz")
    back = QModel.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(back.layer("conv1").act_slope, qm.layer("conv1").act_slope)
    assert back.layer("conv1").act_slope.dtype == np.float32
    for name, value in golden.run(qm, x).items():
        np.testing.assert_array_equal(golden.run(back, x)[name], value)
