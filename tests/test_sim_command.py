"""`fpgacnn sim`: the user mistakes it refuses (the engine runs are in test_sim_engine.py)."""

import numpy as np
import pytest
import torch
from torch import nn

from fpgacnn.cli import main
from fpgacnn.frontends.torch import from_torch
from fpgacnn.quant import QuantConfig, quantize


def save_qmodel(module, shape, path):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    qmodel = quantize(from_torch(module.eval(), x), x.numpy(), QuantConfig(bits=8))
    qmodel.save(path)
    return qmodel


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "conv.npz"
    save_qmodel(nn.Sequential(nn.Conv2d(3, 4, 3)), (2, 3, 6, 6), path)
    return path


def run_cli(argv, capsys):
    status = main(argv)
    return status, capsys.readouterr().err.strip()


def test_missing_model_and_input_are_user_errors(conv_model, tmp_path, capsys):
    status, err = run_cli(["sim", str(tmp_path / "none.npz"), "--input", "x.npy"], capsys)
    assert status == 2 and "none.npz: no such file" in err
    status, err = run_cli(["sim", str(conv_model), "--input", str(tmp_path / "x.npy")], capsys)
    assert status == 2 and "x.npy: no such file" in err and len(err.splitlines()) == 1


def test_input_of_the_wrong_shape_is_named(conv_model, tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 4, 6, 6), np.float32))
    status, err = run_cli(["sim", str(conv_model), "--input", str(x)], capsys)
    assert status == 2 and "shape (1, 4, 6, 6)" in err and "(3, 6, 6)" in err


def test_layer_the_accelerator_cannot_run_is_named(tmp_path, capsys):
    path = tmp_path / "dw.npz"
    save_qmodel(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3, groups=4)), (2, 3, 6, 6),
                path)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((3, 6, 6), np.float32))
    status, err = run_cli(["sim", str(path), "--input", str(x)], capsys)
    assert status == 2 and "layer '1'" in err and "grouped convolution" in err
