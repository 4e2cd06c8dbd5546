"""load_model: the model names of the command line (FILE.onnx, FILE.cfg[:FILE.weights],
package.module:factory) and their user errors."""

import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpgacnn import cli
from fpgacnn.errors import UserError
from fpgacnn.frontends import load_model
from fpgacnn.ir import run_float

FACTORY_MODULE = '''
import torch
from torch import nn


def with_example():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
    return net.eval(), torch.randn(1, 3, 6, 6)


def module_only():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())


def not_a_module():
    return 42
'''

CFG = "[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nbatch_normalize=1\nfilters=2\n" \
      "size=3\nstride=1\npad=1\nactivation=leaky\n"


@pytest.fixture
def factories(tmp_path, monkeypatch):
    package = tmp_path / "h1models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "h1models.nets"
    for name in [m for m in sys.modules if m.startswith("h1models")]:
        del sys.modules[name]


def test_factory_with_example_input(factories):
    graph = load_model(f"{factories}:with_example")
    assert graph.name == "with_example"
    assert graph.inputs == {"input": (1, 3, 6, 6)}
    assert [n.op.kind for n in graph.nodes] == ["Conv2d", "Flatten"]  # BN folded, ReLU fused
    from h1models.nets import with_example
    module, x = with_example()
    got = run_float(graph, x.numpy())[graph.outputs[0]]
    np.testing.assert_allclose(got, module(x).detach().numpy(), rtol=1e-5, atol=1e-5)
    raw = load_model(f"{factories}:with_example", simplify=False)
    assert [n.op.kind for n in raw.nodes] == ["Conv2d", "BatchNorm", "ReLU", "Flatten"]


def test_factory_without_example_needs_an_input_shape(factories):
    with pytest.raises(UserError, match="no example input"):
        load_model(f"{factories}:module_only")
    graph = load_model(f"{factories}:module_only", input_shape=(2, 3, 5, 5))
    assert graph.shapes[graph.outputs[0]] == (2, 4, 3, 3)


def test_onnx_and_darknet_files(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_empty_tensor_value_info("y")],
        initializer=[numpy_helper.from_array(np.ones((3, 2, 1, 1), np.float32), "w")])
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    loaded = load_model(str(path))
    assert [n.op.kind for n in loaded.nodes] == ["Conv2d"]
    assert load_model(str(path), input_shape=(1, 2, 6, 6)).inputs == {"x": (1, 2, 6, 6)}

    cfg = tmp_path / "net.cfg"
    cfg.write_text(CFG)
    weights = tmp_path / "net.weights"
    values = np.arange(2 + 3 * 2 + 2 * 3 * 9, dtype="<f4") / 100
    weights.write_bytes(np.array([0, 2, 0], "<i4").tobytes() + np.zeros(1, "<i8").tobytes()
                        + values.tobytes())
    random = load_model(str(cfg))
    from_file = load_model(f"{cfg}:{weights}")
    assert [n.name for n in from_file.nodes] == ["layer0_conv"]
    raw = load_model(f"{cfg}:{weights}", simplify=False)
    np.testing.assert_array_equal(raw.node("layer0_conv").params["weight"],
                                  values[8:].reshape(2, 3, 3, 3))
    np.testing.assert_array_equal(raw.node("layer0_bn").params["beta"], values[:2])
    assert not np.array_equal(from_file.node("layer0_conv").params["weight"],
                              random.node("layer0_conv").params["weight"])
    assert load_model(str(cfg), input_shape=(1, 3, 4, 4)).inputs == {"input": (1, 3, 4, 4)}


@pytest.mark.parametrize("spec, words", [
    ("missing.onnx", "missing.onnx: no such file"),
    ("missing.cfg:missing.weights", "missing.cfg: no such file"),
    ("model.txt", "expected zoo:NAME"),
    ("os.path:no_such_factory", "cannot import"),
    ("no_such_package_h1.mod:f", "cannot import"),
])
def test_bad_model_names(spec, words):
    with pytest.raises(UserError, match=words):
        load_model(spec)


def test_factory_returning_something_else(factories):
    with pytest.raises(UserError, match="returned int, not an nn.Module"):
        load_model(f"{factories}:not_a_module")


def test_command_line_exit_status_2_with_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    for spec in (str(tmp_path / "missing.onnx"), str(junk)):
        assert cli.main(["inspect", spec]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
