"""Post-training quantization: accuracy on zoo:digits, schemes, calibration, bad input."""

import numpy as np
import pytest
import torch
from torch import nn

from fpgacnn import golden
from fpgacnn.errors import UserError
from fpgacnn.frontends import load_model
from fpgacnn.frontends.torch import from_torch
from fpgacnn.ir import ops
from fpgacnn.quant import QModel, QuantConfig, check_accumulators, quantize
from fpgacnn.quant.observers import TensorStats, observed_range
from fpgacnn.quant.schemes import activation_format, fake_quantizer, quantize_weights
from fpgacnn.quant.verify import sqnr_db
from fpgacnn.zoo import digits_data
from fpgacnn.zoo.digits import trained_digits_net


@pytest.fixture(scope="module")
def digits():
    x_train, y_train, x_test, y_test = digits_data()
    with torch.no_grad():
        logits = trained_digits_net()(torch.from_numpy(x_test)).numpy()
    float_acc = float(np.mean(logits.argmax(1) == y_test))
    return load_model("zoo:digits"), x_train[:256], x_test, y_test, float_acc


def _int_accuracy(qm, x, y):
    out = golden.run(qm, golden.quantize_input(qm, x))[qm.outputs[0]]
    return float(np.mean(out.argmax(1) == y))


@pytest.mark.parametrize("scheme,mode", [("affine", "gemmlowp"), ("affine", "float32"),
                                         ("affine", "single_round"), ("pow2", "shift")])
def test_digits_8_bit_within_half_a_point_of_float(digits, scheme, mode):
    graph, calib, x_test, y_test, float_acc = digits
    qm = quantize(graph, calib, QuantConfig(scheme=scheme, bits=8, mode=mode))
    assert float_acc > 0.95
    assert abs(_int_accuracy(qm, x_test, y_test) - float_acc) <= 0.005


def test_pow2_formats_are_powers_of_two_and_shifts_align(digits):
    graph, calib, *_ = digits
    qm = quantize(graph, calib, QuantConfig(scheme="pow2", bits=8, per_channel=True))
    for layer in qm.layers:
        fmt = layer.output
        assert fmt.zero_point == 0 and fmt.scale == 2.0 ** -fmt.frac_bits
        if layer.weight is not None:
            fin = qm.format_of(layer.inputs[0])
            w_frac = -np.log2(layer.weight_scale).astype(int)
            np.testing.assert_array_equal(layer.requant.shift,
                                          fin.frac_bits + w_frac - fmt.frac_bits)


def test_batchnorm_is_folded_before_quantization():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 4, 1)).eval()
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    x = torch.randn(32, 3, 6, 6)
    graph = from_torch(model, x[:1])
    qm = quantize(graph, x.numpy(), QuantConfig(bits=8))
    assert not any(isinstance(l.op, ops.BatchNorm) for l in qm.layers)
    with torch.no_grad():
        expected = model(x).numpy()
    got = golden.dequantize(golden.run(qm, golden.quantize_input(qm, x.numpy()))[qm.outputs[0]],
                            qm.format_of(qm.outputs[0]))
    assert sqnr_db(expected, got) > 25


def test_weights_round_to_nearest_and_stay_symmetric():
    w = np.array([[0.5, -0.5, 0.26], [0.012, -0.02, 0.0]], np.float32)
    q, scales, _ = quantize_weights(w, "affine", 8, per_channel=True)
    np.testing.assert_array_equal(q[0], [127, -127, 66])   # 0.26 / (0.5/127) = 66.04
    np.testing.assert_array_equal(q[1], [76, -127, 0])     # 0.012 / (0.02/127) = 76.2
    assert scales[1] == np.float32(0.02 / 127)


def test_calibration_methods_percentile_and_mse():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 20000), [60.0, -55.0]])  # two far outliers
    stats = TensorStats()
    stats.update(values, rng)
    fake = fake_quantizer("affine", 8, None)
    lo_mm, hi_mm = observed_range(stats, "minmax", fake)
    lo_p, hi_p = observed_range(stats, "percentile", fake, 99.9)
    lo_m, hi_m = observed_range(stats, "mse", fake)
    assert (lo_mm, hi_mm) == (-55.0, 60.0)
    assert -5 < lo_p < -2 and 2 < hi_p < 5
    mse = {r: float(np.mean((fake(*r)(values) - values) ** 2))
           for r in [(lo_mm, hi_mm), (lo_m, hi_m)]}
    assert mse[(lo_m, hi_m)] < mse[(lo_mm, hi_mm)]


def test_affine_format_puts_real_zero_on_an_integer():
    fmt = activation_format("affine", 8, -1.0, 3.0)
    assert fmt.zero_point == 64 and not fmt.signed
    assert abs(fmt.scale * (0 - fmt.zero_point) - (-1.0)) < fmt.scale


@pytest.mark.parametrize("name", ["conv2", "fc"])
def test_accumulator_worst_case_is_reached_by_an_input(digits, name):
    graph, calib, *_ = digits
    qm = quantize(graph, calib, QuantConfig(bits=8))
    worst = {r.layer: r.worst for r in check_accumulators(qm)}[name]
    layer = qm.layer(name)
    fin = qm.format_of(layer.inputs[0])
    weights = layer.weight.reshape(layer.weight.shape[0], -1).astype(np.int64)
    best = 0
    for c, w in enumerate(weights):
        for sign in (1, -1):  # push every term up (or down): x at hi or lo by the weight's sign
            x = np.where(w * sign > 0, fin.hi, fin.lo)
            acc = sum(int(a) * int(b) for a, b in zip(x - fin.zero_point, w)) + int(layer.bias[c])
            best = max(best, abs(acc))
    assert worst == best


def test_sixteen_bit_model_overflowing_32_bits_is_an_error(digits):
    graph, calib, *_ = digits
    with pytest.raises(UserError, match=r"layer '\w+': worst-case accumulator needs \d+ bits"):
        quantize(graph, calib, QuantConfig(scheme="pow2", bits=16))
    qm = quantize(graph, calib, QuantConfig(scheme="pow2", bits=16, acc_bits=48))
    assert max(r.bits_needed for r in check_accumulators(qm)) > 32


def test_mixed_widths_per_layer(digits):
    graph, calib, x_test, y_test, float_acc = digits
    qm = quantize(graph, calib, QuantConfig(bits=8, layer_bits={"conv2": (6, 4)}))
    assert qm.layer("conv2").output.bits == 6 and qm.layer("conv2").weight_bits == 4
    assert np.abs(qm.layer("conv2").weight).max() <= 7
    assert qm.layer("conv1").output.bits == 8
    assert _int_accuracy(qm, x_test, y_test) > float_acc - 0.05


@pytest.mark.parametrize("bits", [1, 17, 0])
def test_bits_outside_2_to_16_are_refused(bits):
    with pytest.raises(UserError, match="2..16"):
        QuantConfig(bits=bits)
    with pytest.raises(UserError, match="2..16"):
        QuantConfig(weight_bits=bits)


def test_wrong_calibration_shape_is_refused(digits):
    graph, *_ = digits
    with pytest.raises(UserError, match=r"shape \(4, 1, 9, 9\) does not match input"):
        quantize(graph, np.zeros((4, 1, 9, 9), np.float32))


def test_unfoldable_batchnorm_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.BatchNorm2d(2)).eval()
    graph = from_torch(model, torch.zeros(1, 1, 6, 6))
    with pytest.raises(UserError, match="BatchNorm cannot be expressed in integers"):
        quantize(graph, np.zeros((2, 1, 6, 6), np.float32))


def test_save_load_round_trip(tmp_path, digits):
    graph, calib, x_test, *_ = digits
    qm = quantize(graph, calib, QuantConfig(scheme="pow2", per_channel=True,
                                            rounding="half_even"))
    qm.save(tmp_path / "d.npz")
    back = QModel.load(tmp_path / "d.npz")
    assert (back.scheme, back.mode, back.rounding) == ("pow2", "shift", "half_even")
    for a, b in zip(qm.layers, back.layers):
        assert a.op == b.op and a.output == b.output and a.inputs == b.inputs
        if a.weight is not None:
            np.testing.assert_array_equal(a.weight, b.weight)
            assert a.weight.dtype == b.weight.dtype
    x = golden.quantize_input(qm, x_test[:20])
    np.testing.assert_array_equal(golden.run(qm, x)["fc"], golden.run(back, x)["fc"])
    assert back.float_graph is not None and len(back.float_graph.nodes) == len(graph.nodes)


def test_loading_a_file_that_is_not_a_model(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="bad.npz"):
        QModel.load(tmp_path / "bad.npz")
