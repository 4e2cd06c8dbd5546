"""ONNX frontend: an ONNX model (opset 9 and newer; 6 to 8 also work) into the graph IR.

Nodes are walked in the file's (topological) order. A node whose inputs are all known before
run time (initializers, `Constant`, `ConstantOfShape`, `Shape` of a tensor of known shape, and
whatever is computed from those: Gather, Unsqueeze, Concat, Cast, ...) is evaluated at once
with the onnx package's reference implementation and becomes a constant; constants end up as
weights. Every other node is converted by `_onnx_ops`. IR node names are the ONNX node names,
or the first output's name for unnamed nodes; the graph input keeps its ONNX name.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from fpgacnn.errors import UserError
from fpgacnn.frontends import _onnx_ops
from fpgacnn.frontends._build import GraphBuilder, unsupported
from fpgacnn.frontends._onnx_ops import Padded, Ref
from fpgacnn.ir import Graph, ops

MIN_OPSET = 6  # 9 and newer is the target; 6-8 files (onnx's pytorch-converted tests) work too


def from_onnx(model, input_shape=None) -> Graph:
    """The graph IR of an ONNX model (a path or a ModelProto); `input_shape` fixes the input.

    >>> g = from_onnx("squeezenet.onnx")
    >>> g = from_onnx(model_proto, input_shape=(1, 3, 224, 224))
    """
    model, name = _load(model)
    opset = _opset(model, name)
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = _input_shapes(graph, constants, input_shape, name)
    converter = _Converter(name, inputs, constants, opset, graph)
    for node in graph.node:
        converter.convert(node)
    return converter.build([o.name for o in graph.output])


def _load(model) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        return model, model.graph.name or "onnx"
    path = Path(model)
    try:
        return onnx.load(str(path)), path.stem
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except Exception as e:  # protobuf decoding errors have many types
        raise UserError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None


def _opset(model: onnx.ModelProto, name: str) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise UserError(f"{name}: the model imports no default-domain (ai.onnx) opset")
    if versions[0] < MIN_OPSET:
        raise UserError(f"{name}: opset {versions[0]} is not supported (opset {MIN_OPSET} "
                        f"and newer)")
    return versions[0]


def _input_shapes(graph, constants, override, name) -> dict[str, tuple]:
    real = [i for i in graph.input if i.name not in constants]
    if not real:
        raise UserError(f"{name}: the model has no input")
    if override is not None and len(real) != 1:
        raise UserError(f"{name}: an input shape is given but the model has {len(real)} "
                        f"inputs ({', '.join(i.name for i in real)})")
    shapes = {}
    for value in real:
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE,
                                         onnx.TensorProto.FLOAT16):
            raise UserError(f"{name}: input {value.name!r} is not a float tensor")
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in tensor_type.shape.dim]
        if override is not None:
            dims = [int(d) for d in override]
        elif dims and dims[0] is None:
            dims[0] = 1  # a dynamic batch: one image
        if None in dims or not dims:
            raise UserError(f"{name}: input {value.name!r} has a dynamic shape "
                            f"{tuple(d if d else '?' for d in dims)}; give the input shape")
        shapes[value.name] = tuple(dims)
    return shapes


class _Converter:
    """Keeps `env`: ONNX tensor name -> Ref (an IR tensor) or np.ndarray (a constant)."""

    def __init__(self, name, inputs, constants, opset, graph):
        self.builder = GraphBuilder(name, inputs)
        self.env = {k: Ref(k) for k in inputs} | dict(constants)
        self.opset = opset
        self.uses = Counter(t for n in graph.node for t in n.input)
        self.uses.update(o.name for o in graph.output)

    def convert(self, node) -> None:
        args = [self._value(node, t) if t else None for t in node.input]
        if node.domain not in ("", "ai.onnx"):
            raise self._unsupported(node, f"{node.domain}.{node.op_type}")
        if any(isinstance(a, Padded) for a in args) and node.op_type not in _onnx_ops.TAKES_PAD:
            raise UserError(f"{self.builder.name}: node {node.name or node.output[0]!r} "
                            f"({node.op_type}) reads a Pad; a Pad is supported only right "
                            f"before a Conv, or an AveragePool with count_include_pad=1")
        if node.op_type == "Shape" and isinstance(args[0], Ref):
            shape = np.array(self.builder.shapes[args[0].name], np.int64)
            start, end = _attributes(node).get("start", 0), _attributes(node).get("end", None)
            self.env[node.output[0]] = shape[start:end]
        elif all(a is None or isinstance(a, np.ndarray) for a in args):
            self._fold(node, args)
        else:
            convert = _onnx_ops.CONVERTERS.get(node.op_type)
            if convert is None:
                raise self._unsupported(node, node.op_type)
            ctx = _onnx_ops.Context(self, node)
            self.env[node.output[0]] = convert(ctx, args, _attributes(node))
            for extra in node.output[1:]:
                if extra and self.uses[extra]:
                    raise UserError(f"{self.builder.name}: node {ctx.name!r} ({node.op_type}): "
                                    f"its output {extra!r} is used, which is not supported")

    def _value(self, node, tensor):
        if tensor not in self.env:
            raise UserError(f"{self.builder.name}: node {node.name or node.output[0]!r} "
                            f"({node.op_type}) uses {tensor!r}, which no node produces")
        return self.env[tensor]

    def _unsupported(self, node, op_type) -> UserError:
        return unsupported(self.builder.name, node.name or node.output[0], op_type,
                           list(_onnx_ops.CONVERTERS) + ["Constant", "ConstantOfShape", "Shape"])

    def _fold(self, node, args) -> None:
        """Evaluate a node whose inputs are all constants."""
        if node.op_type == "Constant":
            values = [_constant_value(node)]
        elif node.op_type == "ConstantOfShape":
            fill = _attributes(node).get("value")
            fill = np.zeros(1, np.float32) if fill is None else numpy_helper.to_array(fill)
            values = [np.full(tuple(int(d) for d in args[0]), fill.reshape(-1)[0], fill.dtype)]
        else:
            values = self._evaluate(node, args)
        for name, value in zip(node.output, values):
            self.env[name] = np.asarray(value)

    def _evaluate(self, node, args):
        from onnx.reference import ReferenceEvaluator

        names = [f"in{i}" if a is not None else "" for i, a in enumerate(args)]
        inits = [numpy_helper.from_array(np.asarray(a), n) for a, n in zip(args, names) if n]
        clone = helper.make_node(node.op_type, names, list(node.output), domain=node.domain)
        clone.attribute.extend(node.attribute)
        outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
        graph = helper.make_graph([clone], "fold", [], outputs, initializer=inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        try:
            return ReferenceEvaluator(model).run(None, {})
        except Exception as e:
            if node.op_type not in _onnx_ops.CONVERTERS:
                raise self._unsupported(node, node.op_type) from None
            raise UserError(f"{self.builder.name}: node {node.name or node.output[0]!r} "
                            f"({node.op_type}) on constants fails: {e}") from None

    def tensor(self, value, base: str) -> str:
        """The IR name of a Ref, or of a new Constant node holding an array."""
        if isinstance(value, Padded):
            raise UserError(f"{self.builder.name}: {base!r} is the output of a Pad, which is "
                            f"supported only right before a Conv or an AveragePool")
        if isinstance(value, Ref):
            return value.name
        array = np.asarray(value, np.float32)
        return self.builder.add(f"{base}_const", ops.Constant(array.shape), [],
                                {"value": array})

    def build(self, outputs) -> Graph:
        names = [self.tensor(self.env[o], o) for o in outputs]
        return self.builder.build(names)


def _attributes(node) -> dict:
    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        out[a.name] = value.decode() if isinstance(value, bytes) else value
    return out


def _constant_value(node) -> np.ndarray:
    attrs = _attributes(node)
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.array(attrs[key], dtype)
    raise UserError(f"node {node.name or node.output[0]!r} (Constant): unsupported value "
                    f"attribute {sorted(attrs)}")
