"""Frontends: PyTorch, ONNX and Darknet models into the graph IR, and model names.

A model is named by `zoo:NAME`, `path.onnx`, `path.cfg` or `path.cfg:path.weights`
(Darknet), or `package.module:factory` (a callable returning an `nn.Module`, or a pair
`(module, example_input)`).
"""

import importlib
from pathlib import Path

from fpgacnn.errors import UserError
from fpgacnn.ir import Graph, simplify as simplify_graph


def load_model(spec: str, input_shape=None, simplify: bool = True) -> Graph:
    """The graph of the model named `spec`, BatchNorm folded and activations fused.

    >>> g = load_model("zoo:digits")
    >>> g = load_model("yolov3-tiny.cfg:yolov3-tiny.weights", input_shape=(1, 3, 416, 416))
    """
    graph = _load_raw(spec, None if input_shape is None else tuple(input_shape))
    return simplify_graph(graph) if simplify else graph


def _load_raw(spec: str, input_shape) -> Graph:
    if spec.startswith("zoo:"):
        from fpgacnn import zoo
        return zoo.load(spec[4:], input_shape)
    path_part = spec.split(":")[0]
    if path_part.endswith(".onnx"):
        from fpgacnn.frontends.onnx import from_onnx
        return from_onnx(_existing(spec), input_shape)
    if path_part.endswith(".cfg"):
        from fpgacnn.frontends.darknet import from_darknet
        cfg, _, weights = spec.partition(":")
        return from_darknet(_existing(cfg), _existing(weights) if weights else None, input_shape)
    if ":" in spec and _is_module_path(path_part):
        return _load_factory(spec, input_shape)
    raise UserError(f"model {spec!r}: expected zoo:NAME, FILE.onnx, FILE.cfg[:FILE.weights] "
                    f"or package.module:factory")


def _is_module_path(text: str) -> bool:
    """`package.module` (dotted identifiers), as opposed to a file name."""
    return all(part.isidentifier() for part in text.split("."))


def _existing(path: str) -> Path:
    if not Path(path).is_file():
        raise UserError(f"model file {path}: no such file")
    return Path(path)


def _load_factory(spec: str, input_shape) -> Graph:
    import torch

    from fpgacnn.frontends.torch import from_torch

    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise UserError(f"model {spec!r}: cannot import: {e}") from None
    made = factory()
    model, example = made if isinstance(made, tuple) else (made, None)
    if not isinstance(model, torch.nn.Module):
        raise UserError(f"model {spec!r}: the factory returned {type(model).__name__}, "
                        f"not an nn.Module (or a pair (module, example input))")
    if input_shape is not None:
        example = torch.randn(input_shape)
    if example is None:
        raise UserError(f"model {spec!r}: the factory gives no example input; "
                        f"pass --input-shape N,C,H,W")
    return from_torch(model, example, name=attr)
