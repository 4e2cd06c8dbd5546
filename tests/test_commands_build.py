"""`fpgacnn build` end to end on a tiny conv model, its report checked against oracles outside
the build: the golden model on the simulated memory, MACs from `ir.summary` (and by hand),
the planner's configuration file, and user errors."""

import json

import numpy as np
import pytest

from fpgacnn.cli import main
from fpgacnn.config import HardwareConfig

pytest.importorskip("fpgacnn.hw.compiler", reason="the network compiler is not in this version")

# the configuration of tests/test_sim_engine.py, so that the Verilator build is shared
SMALL = HardwareConfig(tm=8, tn=8, tr=8, tc=8, max_kernel=11, max_stride=4,
                       ddr_width_bits=64, burst_len=8, ddr_latency=12, ddr_bytes_per_cycle=8.0)


def tiny_onnx(path):
    """conv 3->6 3x3 pad 1 + ReLU, then conv 6->5 3x3 stride 2, on 1x3x10x10."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)
             for name, shape in (("w1", (6, 3, 3, 3)), ("b1", (6,)), ("w2", (5, 6, 3, 3)),
                                 ("b2", (5,)))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], strides=[2, 2])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 4, 4])
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return str(path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    model = tiny_onnx(root / "tiny.onnx")
    x = np.random.default_rng(5).standard_normal((4, 3, 10, 10)).astype(np.float32)
    np.savez(root / "data.npz", x=x)
    SMALL.save(root / "hw.toml")
    out = root / "out"
    status = main(["build", model, "--device", "xc7z020", "--config", str(root / "hw.toml"),
                   "--calib-random", "8", "--data", str(root / "data.npz"), "--no-synth",
                   "-o", str(out)])
    report = json.loads((out / "report.json").read_text())
    return status, report, out, model, x


def test_build_is_bit_exact_by_the_golden_model_on_the_simulated_memory(built):
    from fpgacnn.export.ddrmap import DdrMap
    from fpgacnn.golden import quantize_input, run as golden_run
    from fpgacnn.quant import QModel

    status, report, out, _, x = built
    assert status == 0
    qmodel = QModel.load(out / "model.q.npz")
    expected = golden_run(qmodel, quantize_input(qmodel, x[:1]), keep=True)
    ddr_map = DdrMap.load(out / "program" / "ddr_map.json")
    memory = (out / "program" / "ddr_after.bin").read_bytes()
    wrong = elements = 0
    for layer in qmodel.layers:
        got = ddr_map.read_tensor(memory, f"fmap.{layer.name}")
        want = expected[layer.name][:1]
        wrong += int(np.count_nonzero(got.reshape(want.shape) != want))
        elements += want.size
    sim = report["steps"]["simulate"]
    assert (sim["mismatches"], sim["elements"]) == (wrong, elements) == (0, 6 * 100 + 5 * 16)
    assert "bit-exact against the golden model" in (out / "report.md").read_text()


def test_gops_from_simulated_cycles_and_summary_macs(built):
    from fpgacnn.frontends import load_model
    from fpgacnn.ir.summary import summarize

    _, report, _, model, _ = built
    sim = report["steps"]["simulate"]
    macs = summarize(load_model(model)).totals["macs"]
    assert macs == sim["macs"] == 6 * 10 * 10 * 3 * 9 + 5 * 4 * 4 * 6 * 9
    cycles = sum(step["cycles"] for step in sim["steps"])
    assert cycles == sim["cycles"] > 0 and all(step["cycles"] > 0 for step in sim["steps"])
    assert sim["gops"] == pytest.approx(2 * macs * 100e6 / cycles / 1e9, rel=1e-12)
    assert sim["clock_mhz"] == 100.0


def test_the_given_configuration_is_planned_and_reported(built):
    _, report, out, _, _ = built
    assert HardwareConfig.from_toml(out / "hw.toml") == SMALL
    assert {k: report["plan"]["config"][k] for k in ("tm", "tn", "tr", "tc")} == \
        {"tm": 8, "tn": 8, "tr": 8, "tc": 8}
    for plot in report["steps"]["plan"]["plots"]:
        assert (out / plot).stat().st_size > 0
    assert report["steps"]["synth"] == {"status": "skipped", "reason": "--no-synth",
                                        "seconds": report["steps"]["synth"]["seconds"]}
    verify = report["steps"]["verify"]
    assert verify["samples"] == 4 and not verify["labels"] and verify["int_accuracy"] is None
    text = (out / "report.md").read_text()
    assert f"| total |  | {report['steps']['simulate']['cycles']:,} |" in text
    assert (out / "verilog" / "fpgacnn_top.v").read_text().count("module fpgacnn_top") == 1
    assert (out / "export" / "manifest.json").is_file()


@pytest.mark.parametrize("argv, names", [
    (["--device", "nosuch"], "nosuch"),
    (["--device", "xc7z020", "--config", "missing.toml"], "missing.toml"),
    (["--device", "xc7z020", "--data", "none.npz"], "--data none.npz")])
def test_bad_device_or_config_is_one_line_and_writes_nothing(tmp_path, capsys, argv, names):
    out = tmp_path / "out"
    assert main(["build", "zoo:digits", *argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and names in err
    assert not out.exists()
