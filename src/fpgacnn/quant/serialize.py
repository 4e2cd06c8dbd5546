"""A QModel to and from one .npz file: arrays as npz members, everything else in a JSON header.

No pickle is used: `np.load(..., allow_pickle=False)` reads the file back.
"""

import dataclasses
import json
import zipfile

import numpy as np

from fpgacnn.atomic import atomic_path
from fpgacnn.errors import UserError
from fpgacnn.ir import Graph, Node, ops
from fpgacnn.quant.model import QLayer, QModel, Requant, TensorFormat

FORMAT_VERSION = 1
_OPS = {cls.__name__: cls for cls in ops.ALL_OPS}


def op_to_json(op: ops.Op) -> dict:
    fields = {}
    for f in dataclasses.fields(op):
        value = getattr(op, f.name)
        if isinstance(value, ops.Op):
            value = op_to_json(value)
        elif isinstance(value, tuple):
            value = json.loads(json.dumps(value))
        fields[f.name] = value
    return {"kind": op.kind, "fields": fields}


def op_from_json(data: dict) -> ops.Op:
    cls = _OPS[data["kind"]]
    fields = {}
    for key, value in data["fields"].items():
        if isinstance(value, dict) and "kind" in value:
            value = op_from_json(value)
        elif isinstance(value, list):
            value = _tuples(value)
        fields[key] = value
    return cls(**fields)


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _format_json(fmt: TensorFormat) -> dict:
    return dataclasses.asdict(fmt)


def _requant_json(rq: Requant | None, arrays: dict, key: str):
    if rq is None:
        return None
    arrays[f"{key}/multiplier"] = rq.multiplier
    arrays[f"{key}/shift"] = rq.shift
    return {"mode": rq.mode, "rounding": rq.rounding}


def _requant_back(data, arrays, key):
    if data is None:
        return None
    return Requant(data["mode"], arrays[f"{key}/multiplier"], arrays[f"{key}/shift"],
                   data["rounding"])


_ARRAY_FIELDS = ("weight", "weight_scale", "bias", "act_multiplier", "act_slope")


def _layer_json(layer: QLayer, arrays: dict) -> dict:
    key = f"layer/{layer.name}"
    for name in _ARRAY_FIELDS:
        if getattr(layer, name) is not None:
            arrays[f"{key}/{name}"] = getattr(layer, name)
    return {
        "name": layer.name, "op": op_to_json(layer.op), "inputs": list(layer.inputs),
        "output": _format_json(layer.output), "out_lo": layer.out_lo, "out_hi": layer.out_hi,
        "weight_bits": layer.weight_bits, "act_shift": layer.act_shift,
        "arrays": [n for n in _ARRAY_FIELDS if getattr(layer, n) is not None],
        "requant": _requant_json(layer.requant, arrays, f"{key}/requant"),
        "input_requants": [_requant_json(rq, arrays, f"{key}/input_requant{i}")
                           for i, rq in enumerate(layer.input_requants)],
    }


def _layer_back(data: dict, arrays) -> QLayer:
    key = f"layer/{data['name']}"
    given = {name: arrays[f"{key}/{name}"] for name in data["arrays"]}
    return QLayer(
        name=data["name"], op=op_from_json(data["op"]), inputs=tuple(data["inputs"]),
        output=TensorFormat(**data["output"]), out_lo=data["out_lo"], out_hi=data["out_hi"],
        weight_bits=data["weight_bits"], act_shift=data["act_shift"],
        requant=_requant_back(data["requant"], arrays, f"{key}/requant"),
        input_requants=tuple(_requant_back(rq, arrays, f"{key}/input_requant{i}")
                             for i, rq in enumerate(data["input_requants"])),
        **given)


def graph_to_json(graph: Graph, arrays: dict) -> dict:
    nodes = []
    for node in graph.nodes:
        for k, v in node.params.items():
            arrays[f"float/{node.name}/{k}"] = v
        nodes.append({"name": node.name, "op": op_to_json(node.op), "inputs": list(node.inputs),
                      "params": sorted(node.params)})
    return {"name": graph.name, "inputs": {k: list(v) for k, v in graph.inputs.items()},
            "nodes": nodes, "outputs": list(graph.outputs)}


def graph_from_json(data: dict, arrays) -> Graph:
    nodes = [Node(n["name"], op_from_json(n["op"]), tuple(n["inputs"]),
                  {k: arrays[f"float/{n['name']}/{k}"] for k in n["params"]})
             for n in data["nodes"]]
    return Graph(data["name"], data["inputs"], nodes, data["outputs"])


def save_qmodel(qmodel: QModel, path) -> None:
    """Write `qmodel` to `path` (.npz) atomically.

    >>> save_qmodel(qm, "net.q.npz")
    """
    arrays: dict[str, np.ndarray] = {}
    header = {
        "format_version": FORMAT_VERSION, "name": qmodel.name, "scheme": qmodel.scheme,
        "mode": qmodel.mode, "rounding": qmodel.rounding, "acc_bits": qmodel.acc_bits,
        "input_shapes": {k: list(v) for k, v in qmodel.input_shapes.items()},
        "input_formats": {k: _format_json(v) for k, v in qmodel.input_formats.items()},
        "layers": [_layer_json(layer, arrays) for layer in qmodel.layers],
        "outputs": list(qmodel.outputs),
        "float_graph": (None if qmodel.float_graph is None
                        else graph_to_json(qmodel.float_graph, arrays)),
    }
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def load_qmodel(path) -> QModel:
    """Read a QModel written by `save_qmodel`.

    >>> qm = load_qmodel("net.q.npz")
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise UserError(f"quantized model {path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise UserError(f"quantized model {path}: not a quantized model file ({e})") from None
    if "header" not in arrays:
        raise UserError(f"quantized model {path}: no header (not written by fpgacnn quantize)")
    header = json.loads(arrays["header"].tobytes().decode())
    if header.get("format_version") != FORMAT_VERSION:
        raise UserError(f"quantized model {path}: format_version "
                        f"{header.get('format_version')} is not {FORMAT_VERSION}")
    graph = header["float_graph"]
    return QModel(
        name=header["name"], scheme=header["scheme"], mode=header["mode"],
        rounding=header["rounding"], acc_bits=header["acc_bits"],
        input_shapes=header["input_shapes"],
        input_formats={k: TensorFormat(**v) for k, v in header["input_formats"].items()},
        layers=[_layer_back(d, arrays) for d in header["layers"]],
        outputs=header["outputs"],
        float_graph=None if graph is None else graph_from_json(graph, arrays))
