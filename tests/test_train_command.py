"""`fpgacnn train` on zoo:digits: 16-bit fixed point against float32 training from the same
start (torch.optim.SGD on the same graph), the saved quantized model run by the golden
executor, and the one-line errors (exit status 2)."""

import json

import numpy as np
import pytest

from fpgacnn.cli import main


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "digits16.q.npz"
    return out, ["zoo:digits", "--bits", "16", "--epochs", "10", "--float", "--json", "-o",
                 str(out)]


def test_16_bit_training_is_within_one_point_of_float(digits_run, capsys):
    out, argv = digits_run
    assert main(["train", *argv]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert len(report["loss"]) == 10 and len(report["float"]["loss"]) == 10
    assert report["loss"][-1] < report["loss"][0]
    # the first epoch, before the two runs' small differences grow: nearly the same loss
    first_fixed, first_float = report["loss"][0], report["float"]["loss"][0]
    assert abs(first_fixed - first_float) <= 0.02 * first_float
    fixed, floating = report["test_accuracy"], report["float"]["test_accuracy"]
    assert floating > 0.9  # the float baseline did learn
    assert abs(fixed - floating) <= 0.01, (fixed, floating)
    assert "epoch  10" in captured.err  # per-epoch lines (stderr with --json)

    from fpgacnn.golden.executor import quantize_input, run
    from fpgacnn.quant import QModel
    from fpgacnn.zoo import digits_data

    qmodel = QModel.load(out)
    _, _, x_test, y_test = digits_data()
    logits = run(qmodel, quantize_input(qmodel, x_test))[qmodel.outputs[0]]
    golden_accuracy = float(np.mean(logits.argmax(axis=1) == y_test))
    assert abs(golden_accuracy - fixed) <= 0.01, (golden_accuracy, fixed)


@pytest.mark.parametrize("argv, message", [
    (["zoo:digits", "--acc-bits", "40"],
     "layer 'conv1': the weight-gradient accumulator needs 43 bits"),
    (["zoo:digits", "--bits", "8", "--grad-bits", "1"], "--grad-bits must be an integer in 2..16"),
    (["zoo:alexnet"], "the digits data is 1x8x8 per image"),
])
def test_bad_input_is_one_line_and_status_2(argv, message, capsys):
    assert main(["train", *argv, "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_a_model_without_backward_op_is_refused(tmp_path, capsys, monkeypatch):
    """A standalone BatchNorm that cannot be folded (it follows a max pool) has no backward."""
    import sys
    import types

    import torch
    from torch import nn

    module = types.ModuleType("bn_model")

    def factory():
        net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(4),
                            nn.Flatten(), nn.Linear(64, 10))
        return net.eval(), torch.zeros(1, 1, 8, 8)

    module.factory = factory
    monkeypatch.setitem(sys.modules, "bn_model", module)
    assert main(["train", "bn_model:factory", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "(BatchNorm) has no backward op" in err and len(err.splitlines()) == 1, err


def test_saved_model_holds_the_trained_weights_unchanged():
    """The quantized-model file's weight integers and scales are the trained fixed-point ones."""
    from fpgacnn.frontends import load_model
    from fpgacnn.train.fixed import Rounder
    from fpgacnn.train.save import trained_qmodel
    from fpgacnn.train.settings import TrainSettings, Widths
    from fpgacnn.train.trainer import FixedPointModel, initial_params
    from fpgacnn.zoo import digits_data

    graph, widths = load_model("zoo:digits"), Widths(bits=8)
    model = FixedPointModel(graph, widths, TrainSettings(), initial_params(graph, 5))
    qmodel = trained_qmodel(graph, model.float_params(), digits_data()[0][:16], widths)
    for name, p in model.weights(Rounder(8)).items():
        layer = qmodel.layer(name)
        np.testing.assert_array_equal(layer.weight, p["weight"].value)
        np.testing.assert_array_equal(layer.weight_scale, 2.0 ** -p["weight"].frac_bits)
