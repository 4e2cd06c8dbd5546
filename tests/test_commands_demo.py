"""`fpgacnn demo` runs the flow on zoo:digits; every artefact it promises is there and sane."""

import json

import numpy as np

from fpgacnn.cli import main
from fpgacnn.config import HardwareConfig
from fpgacnn.quant import QModel


def test_demo_runs_every_step_and_leaves_its_artefacts(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "demo finished" in out
    qmodel = QModel.load(tmp_path / "digits.q.npz")
    assert qmodel is not None
    config = HardwareConfig.from_toml(tmp_path / "hw.toml")
    assert config.device == "xc7z020"
    assert (tmp_path / "plots" / "roofline.png").stat().st_size > 0
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest
    assert np.load(tmp_path / "sample.npy").shape == (1, 1, 8, 8)
