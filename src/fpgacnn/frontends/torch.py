"""PyTorch frontend: an `nn.Module` and an example input into the graph IR, via torch.fx.

The module is traced symbolically, then run once on the example input so that every sizes
expression (`x.view(x.size(0), -1)`) has its concrete value. Nodes that do not depend on the
input are constants; the others are converted op by op (see `_torch_table`). Node names are the
module paths (`features.0`, `classifier.6`); a functional op is named by torch.fx (`relu`,
`add_1`, `cat`), prefixed inside a submodule by the submodule's path (`layer1.0.add`).
Every converted tensor's shape is checked against the one PyTorch computed.
"""

import operator
import re

import torch
from torch import fx, nn

from fpgacnn.errors import UserError
from fpgacnn.frontends import _torch_ops, _torch_table
from fpgacnn.frontends._build import GraphBuilder, unsupported
from fpgacnn.frontends._torch_ops import Ref
from fpgacnn.ir import Graph, ops

INPUT = "input"


def from_torch(module: nn.Module, example_input: torch.Tensor, name: str | None = None) -> Graph:
    """The graph IR of `module` (in eval mode) for inputs shaped like `example_input`.

    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten())
    >>> g = from_torch(net, torch.randn(1, 3, 8, 8), name="tiny")
    >>> [n.name for n in g.nodes], g.inputs["input"]
    (['0', '1', '2'], (1, 3, 8, 8))
    """
    if not isinstance(example_input, torch.Tensor):
        raise UserError(f"from_torch: the example input must be a torch.Tensor, "
                        f"got {type(example_input).__name__}")
    was_training = module.training
    module.eval()
    try:
        root, traced = _trace(module, example_input)
        values = _record(traced, example_input.detach().clone().float(),
                         type(module).__name__)
        converter = _Converter(root, traced, values, name or type(module).__name__,
                               tuple(example_input.shape))
        return converter.run()
    finally:
        module.train(was_training)


def _trace(module: nn.Module, example: torch.Tensor) -> tuple[nn.Module, fx.GraphModule]:
    """The module traced by torch.fx, or failing that by torch.export (ATen-level ops)."""
    if _is_layer(module):
        # a bare layer: wrap it so that it is traced as one call, named after its class
        module = _Bare(module)
    try:
        return module, _fx_trace(module)
    except Exception as e:  # torch.fx raises many kinds: TraceError, TypeError, ...
        fx_error = _first_line(e)
    try:  # static shapes: control flow on sizes is fine here
        exported = torch.export.export(module, (example.detach().clone().float(),),
                                       strict=False)
        return module, exported.module()
    except Exception as export_error:
        raise UserError(f"{type(module).__name__}: neither torch.fx ({fx_error}) "
                        f"nor torch.export ({_first_line(export_error)}) can trace this "
                        f"module") from None


def _fx_trace(module: nn.Module) -> fx.GraphModule:
    return fx.symbolic_trace(module)


def _is_layer(module: nn.Module | None) -> bool:
    return module is not None and any(cls in _torch_table.MODULES for cls in type(module).__mro__)


class _Bare(nn.Module):
    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer_name = type(layer).__name__
        self.add_module(self.layer_name, layer)

    def forward(self, x):
        return getattr(self, self.layer_name)(x)


class _Recorder(fx.Interpreter):
    """Runs the traced module and keeps the value of every node."""

    def __init__(self, module):
        super().__init__(module)
        self.values = {}

    def run_node(self, n):
        result = super().run_node(n)
        self.values[n] = result
        return result


def _record(traced: fx.GraphModule, example: torch.Tensor, name: str) -> dict:
    recorder = _Recorder(traced)
    with torch.no_grad():
        try:
            recorder.run(example)
        except Exception as e:
            raise UserError(f"{name}: the module fails on an input of "
                            f"shape {tuple(example.shape)}: {_first_line(e)}") from None
    return recorder.values


class _Converter:
    """Walks the fx graph once; `env` maps each fx node to a Ref, a constant or a value."""

    def __init__(self, root: nn.Module, traced: fx.GraphModule, values: dict, name: str,
                 input_shape):
        self.root = root
        self.traced = traced
        self.values = values
        self.modules = dict(traced.named_modules())
        self.builder = GraphBuilder(name, {INPUT: input_shape})
        self.env = {}
        self.dynamic = set()
        self.expected = {}  # IR tensor -> the shape PyTorch computed for it

    def run(self) -> Graph:
        for n in self.traced.graph.nodes:
            if n.op == "output":
                graph = self.builder.build(self._outputs(n.args[0], n))
                self._check_shapes(graph)
                return graph
            if n.op == "placeholder" and not self.dynamic:
                self.env[n] = Ref(INPUT)
                self.dynamic.add(n)
            elif any(a in self.dynamic for a in n.all_input_nodes):
                self.dynamic.add(n)
                self.env[n] = self._convert(n)
            else:
                self.env[n] = self.values[n]
        raise AssertionError("an fx graph always ends with an output node")

    def _convert(self, n: fx.Node):
        out = self.values[n]
        args = fx.node.map_arg(n.args, self.env.__getitem__)
        kwargs = fx.node.map_arg(n.kwargs, self.env.__getitem__)
        if n.op == "call_function" and n.target is operator.getitem \
                and isinstance(args[0], (tuple, list)):
            return args[0][args[1]]
        if not _holds_tensor(out):
            return out  # sizes and shapes: fixed by the example input
        handler, base, first = self._handler(n)
        ctx = _torch_ops.Context(self, n.name)
        if isinstance(out, (tuple, list)):  # e.g. ATen's max_pool2d_with_indices
            if not isinstance(out[0], torch.Tensor):
                raise UserError(f"{self.builder.name}: node {n.name!r} ({_op_type(n, self)}) "
                                f"returns {type(out[0]).__name__}, which is not supported")
            ref = handler(ctx, base, first, args, kwargs, out[0])
            self.expected[ref.name] = tuple(out[0].shape)
            return (ref,) + (None,) * (len(out) - 1)  # only the first output can be used
        ref = handler(ctx, base, first, args, kwargs, out)
        self.expected[ref.name] = tuple(out.shape)
        return ref

    def _handler(self, n: fx.Node):
        if n.op == "call_module":
            module = self.modules[n.target]
            for cls in type(module).__mro__:
                if cls in _torch_table.MODULES:
                    return _torch_table.MODULES[cls], n.target, module
        elif n.op == "call_function" and n.target in _torch_table.FUNCTIONS:
            return _torch_table.FUNCTIONS[n.target], self._functional_name(n), None
        elif n.op == "call_method" and n.target in _torch_table.METHODS:
            return _torch_table.METHODS[n.target], self._functional_name(n), None
        raise unsupported(self.builder.name, n.target if n.op == "call_module" else n.name,
                          _op_type(n, self), _torch_table.supported_names())

    def _functional_name(self, n: fx.Node) -> str:
        """fx's name (`add_1`), or inside a submodule its path and the op (`layer1.0.add`);
        an ATen op (torch.export) inside a supported layer takes the layer's path."""
        stack = n.meta.get("nn_module_stack")
        path = list(stack.values())[-1][0] if stack else ""
        if not path:
            return n.name
        if isinstance(n.target, torch._ops.OpOverload) and _is_layer(self._submodule(path)):
            return path
        return f"{path}.{re.sub(r'_[0-9]+$', '', n.name)}"

    def _submodule(self, path: str) -> nn.Module | None:
        try:
            return self.root.get_submodule(path)
        except AttributeError:
            return None

    def add(self, base, op, inputs, params=None) -> Ref:
        name = self.builder.add(base, op, [self.tensor(t, base) for t in inputs], params)
        return Ref(name)

    def tensor(self, value, base: str) -> str:
        """The IR tensor name of `value`: a Ref, or a constant tensor made into a Constant node."""
        if isinstance(value, Ref):
            return value.name
        if isinstance(value, torch.Tensor):
            array = value.detach().float().numpy()
            return self.builder.add(f"{base}_const", ops.Constant(array.shape), [],
                                    {"value": array})
        raise UserError(f"{self.builder.name}: node {base!r}: expected a tensor input, "
                        f"got {value!r}")

    def shape(self, ref: Ref) -> tuple:
        return self.builder.shapes[ref.name]

    def _outputs(self, arg, n) -> list[str]:
        flat = []
        fx.node.map_aggregate(fx.node.map_arg(arg, self.env.__getitem__), flat.append)
        names = []
        for value in flat:
            if value is None:
                raise UserError(f"{self.builder.name}: an output of the module is None")
            names.append(self.tensor(value, "output"))
        return names

    def _check_shapes(self, graph: Graph) -> None:
        for tensor, shape in self.expected.items():
            if graph.shapes[tensor] != shape:
                raise UserError(f"{graph.name}: node {tensor!r}: converted shape "
                                f"{graph.shapes[tensor]} differs from PyTorch's {shape}")


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _holds_tensor(value) -> bool:
    found = []
    fx.node.map_aggregate(value, lambda v: found.append(isinstance(v, torch.Tensor)))
    return any(found)


def _op_type(n: fx.Node, converter: _Converter) -> str:
    if n.op == "call_module":
        return type(converter.modules[n.target]).__name__
    if n.op == "call_method":
        return f"Tensor.{n.target}"
    return getattr(n.target, "__name__", str(n.target))

