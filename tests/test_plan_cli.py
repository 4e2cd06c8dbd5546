"""`fpgacnn plan`: the published numbers through the command line, outputs, and user errors."""

import json
from dataclasses import fields

import numpy as np
import pytest

from fpgacnn.cli import main
from fpgacnn.config import HardwareConfig

ZHANG = ["plan", "workload:zhang-alexnet", "--device", "xc7vx485t", "--float32"]
# a small engine for the xc7z020 (8 x 8: 4 x 8 packed MAC pairs and 8 lanes of 6 DSP48E1)
Z020 = ["--device", "xc7z020", "--set", "tm=8"]


def run_json(argv, capsys):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def run_error(argv, capsys) -> str:
    """Run a command that must fail as a user error: exit status 2 and one line."""
    try:
        status = main(argv)
    except SystemExit as e:       # argparse's own errors
        status = e.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_zhang_cycles_from_the_command_line(capsys):
    report = run_json(ZHANG + ["--set", "tm=64,tn=7"], capsys)
    assert [l["compute_cycles"] for l in report["layers"]] == [366_025, 255_150, 168_831,
                                                               127_764, 85_176]
    assert report["totals"]["compute_cycles"] == 1_002_946
    assert report["totals"]["dsp"] == 2240 and report["dsp_per_mac"] == 5
    assert report["resource_model"] == "mac-array"      # --float32: Zhang et al.'s DSP model
    for layer in report["layers"]:
        assert {"name", "op", "compute_cycles", "cycles", "bound", "dsp", "bram18"} <= set(layer)
        assert layer["cycles"] >= layer["compute_cycles"]
    assert set(report["config"]) == {f.name for f in fields(HardwareConfig)}


def test_zhang_exploration_from_the_command_line(capsys, tmp_path):
    # the paper's assumptions: 5 DSPs per fp32 MAC, the MAC array alone, and the VC707's
    # 12.8 GB/s (128 bytes a cycle at 100 MHz) through a 1024-bit port
    out = tmp_path / "hw.toml"
    plots = tmp_path / "plots"
    report = run_json(ZHANG + ["--explore", "--max-dsp", "2240", "--clock", "100",
                               "--set", "ddr_width_bits=1024",
                               "-o", str(out), "--plots", str(plots)], capsys)
    assert (report["config"]["tm"], report["config"]["tn"]) == (64, 7)
    assert report["totals"]["dsp"] == 2240 and report["resource_model"] == "mac-array"
    assert report["exploration"]["front"][-1]["dsp"] == 2240
    config = HardwareConfig.from_toml(out)
    assert (config.tm, config.tn, config.act_bits, config.clock_mhz) == (64, 7, 32, 100.0)
    assert (config.ddr_width_bits, config.ddr_bytes_per_cycle) == (1024, 128.0)
    for name in ("roofline.png", "layers.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_text_report(capsys):
    assert main(ZHANG + ["--set", "tm=64,tn=7"]) == 0
    out = capsys.readouterr().out
    assert "366,025" in out and "1,002,946" in out and "DSP 2240 / 2800" in out


def test_dataflow_arch(capsys):
    report = run_json(["plan", "workload:zhang-alexnet", "--device", "xc7z045",
                       "--arch", "dataflow", "--bits", "8"], capsys)
    assert report["arch"] == "dataflow"
    assert report["totals"]["dsp"] <= 900 and report["totals"]["bram18"] <= 1090
    assert report["totals"]["interval_cycles"] == max(l["cycles"] for l in report["layers"])
    latency = run_json(["plan", "workload:zhang-alexnet", "--device", "xc7z045",
                        "--arch", "dataflow", "--bits", "8", "--objective", "latency"], capsys)
    assert latency["objective"] == "latency"
    assert latency["totals"]["cycles"] <= report["totals"]["cycles"]
    assert latency["totals"]["interval_cycles"] >= report["totals"]["interval_cycles"]


def test_graph_model_and_qmodel(capsys, tmp_path):
    from fpgacnn.frontends import load_model
    from fpgacnn.quant import QuantConfig, quantize

    graph = load_model("zoo:digits")
    report = run_json(["plan", "zoo:digits", *Z020], capsys)
    gemm = [n.name for n in graph.nodes if n.op.kind in ("Conv2d", "Linear")]
    assert [l["name"] for l in report["layers"]] == gemm
    assert {r["op"] for r in report["not_modeled"]} <= {"MaxPool", "Flatten", "ReLU"}
    shape = next(iter(graph.inputs.values()))
    calib = np.random.default_rng(0).standard_normal((4,) + tuple(shape[1:])).astype(np.float32)
    qm = quantize(graph, calib, QuantConfig(scheme="pow2", bits=6))
    path = tmp_path / "digits.q.npz"
    qm.save(path)
    report = run_json(["plan", str(path), *Z020], capsys)
    assert report["config"]["act_bits"] == 6 and report["config"]["weight_bits"] == 6
    assert [l["name"] for l in report["layers"]] == [l.name for l in qm.layers
                                                     if l.op.kind in ("Conv2d", "Linear")]
    # the same layers (and fused pools) as the float graph gives
    float_report = run_json(["plan", "zoo:digits", *Z020, "--bits", "6"],
                            capsys)
    cycles = [l["cycles"] for l in report["layers"]]
    assert cycles == [l["cycles"] for l in float_report["layers"]]


def engine_dsp48e1(tm, tn):
    """The engine's DSP48E1 for INT8, counted by hand: rows paired on one slice per input
    (an odd last row alone), and per output row a post-processing lane of a 33 x 33 product
    (2 x 2 slices) and a 42 x 18 one (2)."""
    return -(-tm // 2) * tn + tm * (4 + 2)


def test_exploration_fits_the_engine_as_generated(capsys, tmp_path):
    # digits on the xc7z020: the explored engine's DSPs, post-processing included, fit its 220
    # (a 32 x 8 array's 128 packed pairs and 32 post-processing lanes do not); its buffers its
    # 280
    from fpgacnn.plan.bram import engine_buffers, map_buffer_best

    out = tmp_path / "hw.toml"
    report = run_json(["plan", "zoo:digits", "--device", "xc7z020", "--explore",
                       "-o", str(out)], capsys)
    c = HardwareConfig.from_toml(out)
    assert (c.act_bits, c.weight_bits, c.acc_bits) == (8, 8, 32)
    buffers = engine_buffers(c.tm, c.tn, c.tr, c.tc, c.act_bits, c.weight_bits, c.acc_bits,
                             c.max_kernel, c.max_stride)
    bram = sum(map_buffer_best(width, depth).bram18 for width, depth in buffers.values())
    assert report["resource_model"] == "engine" and report["dsp_per_mac"] == 0.5
    assert report["totals"]["dsp"] == engine_dsp48e1(c.tm, c.tn) <= 220
    assert report["totals"]["bram18"] == bram <= 280
    assert all(d["dsp"] <= 220 for d in report["exploration"]["front"])
    # the default 16 x 8 engine fits: 8 x 8 pairs + 16 lanes = 160
    assert run_json(["plan", "zoo:digits", "--device", "xc7z020"], capsys)["totals"]["dsp"] \
        == engine_dsp48e1(16, 8) == 160
    err = run_error(["plan", "zoo:digits", "--device", "xc7z020", "--set", "tm=32,tn=8"],
                    capsys)
    assert f"DSP needed {engine_dsp48e1(32, 8)}, available 220" in err
    assert "32 post-processing lanes" in err
    mac_array = run_json(["plan", "zoo:digits", "--device", "xc7z020", "--set", "tm=32,tn=8",
                          "--resource-model", "mac-array"], capsys)
    # Zhang et al.'s model counts the MAC array alone: 256 INT8 MACs, two per DSP48E1
    assert mac_array["totals"]["dsp"] == 128 and mac_array["resource_model"] == "mac-array"
    assert mac_array["dsp_per_mac"] == 0.5


def test_float32_has_no_engine_resource_model(capsys):
    err = run_error(ZHANG + ["--resource-model", "engine"], capsys)
    assert "--resource-model engine" in err and "float32" in err


def test_unknown_device_lists_known(capsys):
    err = run_error(["plan", "workload:zhang-alexnet", "--device", "xc7foo"], capsys)
    assert "xc7foo" in err and "xc7z020" in err and "xczu9eg" in err


def test_over_budget_names_resource_needed_available(capsys):
    err = run_error(ZHANG + ["--device", "xc7z020", "--set", "tm=64,tn=7"], capsys)
    assert "DSP" in err and "2240" in err and "220" in err
    err = run_error(["plan", "workload:zhang-alexnet", "--device", "xc7z020", "--bits", "8",
                     "--set", "tm=4,tn=4,tr=200,tc=200"], capsys)
    assert "RAMB18" in err and "280" in err


@pytest.mark.parametrize("extra, field", [
    (["--set", "tm=0"], "tm"),
    (["--set", "tn=2.5"], "tn"),
    (["--set", "tr=-3"], "tr"),
    (["--set", "banana=3"], "banana"),
    (["--set", "tm"], "KEY=VALUE"),
    (["--max-dsp", "0"], "--max-dsp"),
    (["--max-dsp", "99999"], "--max-dsp"),
    (["--max-dsp", "12.5"], "--max-dsp"),
    (["--clock", "-100"], "--clock"),
    (["--clock", "0"], "--clock"),
    (["--set", "clock_mhz=0"], "clock_mhz"),
    (["--bits", "0"], "act_bits"),
])
def test_bad_parameters_one_line_exit_2(extra, field, capsys):
    err = run_error(["plan", "workload:zhang-alexnet", "--device", "xc7z045"] + extra, capsys)
    assert field in err


def test_unknown_workload(capsys):
    err = run_error(["plan", "workload:lenet9", "--device", "xc7z045"], capsys)
    assert "zhang-alexnet" in err


def test_training_flag(capsys):
    argv = ["plan", "zoo:digits", *Z020, "--training", "--batch", "4"]
    try:
        from fpgacnn.train.workload import training_step_layers
    except ImportError:
        assert "training workload not available" in run_error(argv, capsys)
        return
    from fpgacnn.frontends import load_model
    expected = [name for name, _, _ in training_step_layers(load_model("zoo:digits"), batch=4)]
    report = run_json(argv, capsys)
    assert [l["name"] for l in report["layers"]] == expected
    step = report["training_step"]
    assert step["batch"] == 4
    assert step["cycles"] == sum(l["cycles"] for l in report["layers"])
    assert step["ddr_bytes"] == sum(l["ddr_bytes"] for l in report["layers"])
    # a Linear on a batch of 4 reads each weight once: 4x the forward MACs of batch 1
    forward = run_json(["plan", "zoo:digits", *Z020], capsys)
    fc = [l for l in forward["layers"] if l["op"] == "linear"][0]
    fc4 = next(l for l in report["layers"] if l["name"] == fc["name"])
    assert fc4["macs"] == 4 * fc["macs"]


def test_explore_keeps_the_keys_the_user_fixed(capsys):
    report = run_json(["plan", "workload:zhang-alexnet", "--device", "xc7z045", "--bits", "8",
                       "--explore", "--set", "tn=8,tr=13,tc=13"], capsys)
    c = report["config"]
    assert (c["tn"], c["tr"], c["tc"]) == (8, 13, 13)
    assert all(d["tn"] == 8 for d in report["exploration"]["front"])
    free = run_json(["plan", "workload:zhang-alexnet", "--device", "xc7z045", "--bits", "8",
                     "--explore"], capsys)
    assert free["totals"]["cycles"] <= report["totals"]["cycles"]


def test_layer_beyond_max_kernel_is_an_error(capsys):
    err = run_error(["plan", "workload:zhang-alexnet", "--device", "xc7z045",
                     "--set", "max_kernel=5"], capsys)
    assert "conv1" in err and "max_kernel 5" in err


def test_model_without_gemm_layers_is_an_error(capsys, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    err = run_error(["plan", str(path), "--device", "xc7z020"], capsys)
    assert "no Conv2d or Linear" in err


def test_integer_exploration_writes_a_config_the_rtl_engine_can_build(capsys, tmp_path):
    out = tmp_path / "hw.toml"
    report = run_json(["plan", "workload:zhang-alexnet", "--device", "xc7z045", "--bits", "8",
                       "--explore", "-o", str(out)], capsys)
    # The engine's structure, checked on the written numbers (not through engine_problems):
    # one feature row of tn activations per memory word, Q x L weight rows and the four int32
    # parameters per channel in whole words, tm a multiple of tn, kernel/stride within the
    # descriptor's 4-bit/3-bit fields and wide enough for AlexNet's 11x11 stride-4 conv1.
    cfg = HardwareConfig.from_toml(out)
    word = cfg.ddr_width_bits
    assert cfg.tn * cfg.act_bits == word
    assert cfg.tm % cfg.tn == 0
    assert (cfg.tm * cfg.tn * cfg.weight_bits) % word == 0
    assert (cfg.tm * 4 * 32) % word == 0
    assert 11 <= cfg.max_kernel <= 15 and 4 <= cfg.max_stride <= 7
    assert cfg.act_bits == cfg.weight_bits == 8
    assert report["engine_problems"] == []
    free = run_json(["plan", "workload:zhang-alexnet", "--device", "xc7z045", "--bits", "8",
                     "--explore", "--any-tiling"], capsys)
    assert free["totals"]["cycles"] <= report["totals"]["cycles"]
    assert free["engine_problems"]          # the unconstrained optimum is not buildable here
    tm, tn = free["config"]["tm"], free["config"]["tn"]
    assert tn * 8 != free["config"]["ddr_width_bits"] or tm % tn


def conv_onnx(path, size, kernel):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, size, size])
    out = size - kernel + 1
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, out, out])
    w = numpy_helper.from_array(np.zeros((4, 2, kernel, kernel), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "c", [x], [y], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return str(path)


def test_training_weight_gradient_beyond_the_rtl_kernel_limit_is_flagged(capsys, tmp_path):
    pytest.importorskip("fpgacnn.train.workload")
    # a 3x3 conv on 20x20 gives an 18x18 output: its weight gradient is an 18x18 "kernel"
    model = conv_onnx(tmp_path / "c.onnx", 20, 3)
    report = run_json(["plan", model, "--device", "xczu9eg", "--training"], capsys)
    grad = [l for l in report["layers"] if l["name"].endswith(".grad_weight")]
    assert grad and report["config"]["max_kernel"] == 18
    assert any(grad[0]["name"] in w and "18x18" in w for w in report["warnings"])
    assert any("max_kernel" in p for p in report["engine_problems"])


def test_training_over_budget_names_the_layer_that_sizes_the_buffers(capsys, tmp_path):
    pytest.importorskip("fpgacnn.train.workload")
    model = conv_onnx(tmp_path / "c.onnx", 20, 3)
    err = run_error(["plan", model, *Z020, "--training",
                     "--max-bram18", "20"], capsys)
    assert "RAMB18" in err and "available 20" in err
    assert ".grad_weight" in err and "max_kernel 18" in err


def test_set_takes_true_and_false_for_switches(capsys):
    # 8 x 8 engine: 4 x 8 packed MAC pairs; shift-only lanes cost no DSP, lanes with
    # multipliers 8 x (4 + 2)
    with_lanes = run_json(["plan", "zoo:digits"] + Z020, capsys)
    shift_only = run_json(["plan", "zoo:digits"] + Z020[:-1] + ["tm=8,post_multipliers=false"],
                          capsys)
    assert shift_only["config"]["post_multipliers"] is False
    assert (with_lanes["totals"]["dsp"], shift_only["totals"]["dsp"]) == (32 + 48, 32)
