"""`fpgacnn demo` is `fpgacnn build` on zoo:digits for the xc7z020; its report's accuracy is
checked against the trained torch module (float) and the golden model (integers).

The simulation and yosys steps are skipped here (a Verilator build and a yosys run of the
explored configuration take minutes); tests/test_commands_build.py runs them on a tiny model.
"""

import json

import numpy as np
import torch

from fpgacnn.cli import main
from fpgacnn.config import HardwareConfig
from fpgacnn.quant import QModel


def test_demo_builds_digits_and_reports_its_accuracy(tmp_path, capsys):
    from fpgacnn.golden import quantize_input, run as golden_run
    from fpgacnn.zoo import digits_data
    from fpgacnn.zoo.digits import trained_digits_net

    assert main(["demo", "-o", str(tmp_path), "--no-sim", "--no-synth"]) == 0
    captured = capsys.readouterr()
    assert "fpgacnn build zoo:digits --device xc7z020" in captured.out
    assert "[3/8] plan" in captured.err
    report = json.loads((tmp_path / "report.json").read_text())

    _, _, x_test, y_test = digits_data()
    with torch.no_grad():
        float_pred = trained_digits_net()(torch.from_numpy(x_test)).argmax(1).numpy()
    qmodel = QModel.load(tmp_path / "model.q.npz")
    (out,) = golden_run(qmodel, quantize_input(qmodel, x_test)).values()
    verify = report["steps"]["verify"]
    assert verify["samples"] == len(y_test) == 450 and verify["labels"]
    assert verify["float_accuracy"] == np.mean(float_pred == y_test)
    assert verify["int_accuracy"] == np.mean(out.argmax(1) == y_test)
    assert verify["int_accuracy"] > 0.95

    config = HardwareConfig.from_toml(tmp_path / "hw.toml")
    assert config.device == "xc7z020" and not config.engine_problems()
    assert (tmp_path / "plots" / "roofline.png").stat().st_size > 0
    assert json.loads((tmp_path / "export" / "manifest.json").read_text())["files"]
    assert report["steps"]["simulate"]["reason"] == "--no-sim"
    assert "98." in (tmp_path / "report.md").read_text()
