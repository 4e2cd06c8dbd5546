"""`fpgacnn quantize | run | verify` end to end, and their one-line errors (exit status 2)."""

import json

import numpy as np
import onnx
import pytest

from fpgacnn import golden
from fpgacnn.cli import main
from fpgacnn.quant import QModel
from fpgacnn.quant.to_onnx import run_onnxruntime
from fpgacnn.zoo import digits_data


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    x_train, _, x_test, y_test = digits_data()
    np.save(d / "calib.npy", x_train[:128])
    np.save(d / "x.npy", x_test[:7])
    np.savez(d / "test.npz", x=x_test[:200], y=y_test[:200])
    status = main(["quantize", "zoo:digits", "--scheme", "affine", "--bits", "8", "--mode",
                   "float32", "--per-channel", "--calib", str(d / "calib.npy"),
                   "-o", str(d / "q.npz"), "--onnx", str(d / "q.onnx")])
    assert status == 0
    return d


def test_quantize_writes_a_model_and_an_onnx_file_onnxruntime_agrees_with(files):
    qm = QModel.load(files / "q.npz")
    x = golden.quantize_input(qm, np.load(files / "x.npy"))
    model = onnx.load(files / "q.onnx")
    assert {n.op_type for n in model.graph.node} >= {"QLinearConv", "MaxPool"}
    expected = run_onnxruntime(model, x)
    np.testing.assert_array_equal(golden.run(qm, x)["fc"], expected["fc"])


def test_run_writes_outputs_and_dumps_every_layer(files, capsys):
    out, dump = files / "y.npy", files / "dump"
    assert main(["run", str(files / "q.npz"), "--input", str(files / "x.npy"), "-o", str(out),
                 "--dump", str(dump), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    qm = QModel.load(files / "q.npz")
    values = golden.run(qm, golden.quantize_input(qm, np.load(files / "x.npy")), keep=True)
    np.testing.assert_array_equal(np.load(out), values["fc"])
    for layer in qm.layers:
        np.testing.assert_array_equal(np.load(dump / f"{layer.name}.npy"), values[layer.name])
    assert report["outputs"]["fc"]["shape"] == [7, 10]


def test_verify_reports_sqnr_accuracy_and_zero_mismatches(files, capsys):
    assert main(["verify", str(files / "q.npz"), "--data", str(files / "test.npz"),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["onnx_status"] == "compared"
    assert all(layer["onnx_mismatches"] == 0 for layer in report["layers"])
    assert all(layer["sqnr_db"] > 20 for layer in report["layers"])
    assert abs(report["int_accuracy"] - report["float_accuracy"]) <= 0.02


def _fails(argv, capsys, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err


def test_bad_bits_wrong_calibration_and_unsupported_ops_leave_no_file(files, tmp_path, capsys):
    out = tmp_path / "out.npz"
    _fails(["quantize", "zoo:digits", "--bits", "17", "-o", str(out)], capsys, "--bits", "2..16")
    _fails(["quantize", "zoo:digits", "--weight-bits", "1", "-o", str(out)], capsys,
           "--weight-bits")
    np.save(tmp_path / "wrong.npy", np.zeros((4, 3, 8, 8), np.float32))
    _fails(["quantize", "zoo:digits", "--calib", str(tmp_path / "wrong.npy"), "-o", str(out)],
           capsys, "wrong.npy", "(4, 3, 8, 8)")
    _fails(["quantize", "zoo:mtcnn-pnet", "--calib-random", "2", "-o", str(out),
            "--onnx", str(tmp_path / "out.onnx")], capsys, "PReLU", "conv1")
    _fails(["quantize", "zoo:digits", "--scheme", "pow2", "--mode", "gemmlowp", "-o", str(out)],
           capsys, "--mode")
    assert not any(tmp_path.glob("out*")) and not any(tmp_path.glob(".out*"))


def test_run_with_input_of_the_wrong_shape(files, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((2, 1, 5, 5), np.float32))
    _fails(["run", str(files / "q.npz"), "--input", str(tmp_path / "bad.npy"), "-o",
            str(tmp_path / "y.npy")], capsys, "input", "(2, 1, 5, 5)")
    assert not (tmp_path / "y.npy").exists()


def test_qat_command_trains_converts_and_reports(tmp_path, capsys):
    out = tmp_path / "qat.npz"
    assert main(["qat", "zoo:digits", "--scheme", "pow2", "--weight-bits", "4", "--epochs", "1",
                 "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    qm = QModel.load(out)
    assert qm.layer("conv1").weight_bits == 4
    _, _, x_test, y_test = digits_data()
    y = golden.run(qm, golden.quantize_input(qm, x_test))["fc"]
    assert report["qat_accuracy"] == float(np.mean(y.argmax(1) == y_test))
    _fails(["qat", "zoo:alexnet", "-o", str(tmp_path / "a.npz")], capsys, "--train")
    assert not (tmp_path / "a.npz").exists()
