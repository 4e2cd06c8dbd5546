"""The network compiler: a quantized model becomes steps for the engine, the vector unit and the
host, plus the DDR image they run on (docs/compiler.md).

The image is the exporter's (`fpgacnn.export.ddr.build_ddr_image`: weights, engine parameter
records, feature maps, concat slices), grown by the vector unit's parameter records and one
descriptor per step. Every engine or vector step is one `start`, so each has its own cycle count.

    >>> program = compile_network(qmodel, HardwareConfig(tm=8, tn=8))     # doctest: +SKIP
    >>> [(s.unit, s.name) for s in program.steps][:2]                     # doctest: +SKIP
    [('engine', 'conv1'), ('engine', 'conv2+pool1')]
"""

import importlib
from dataclasses import replace

import numpy as np

from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.export.ddr import build_ddr_image, tensor_shapes
from fpgacnn.export.params import linear_as_conv_input, passes_values_through
from fpgacnn.hw.netprogram import ImageBuilder, Program, Step
from fpgacnn.hw.program import compile_layer
from fpgacnn.ir import ops

ENGINE_OPS = (ops.Conv2d, ops.Linear)
VECTOR_OPS = (ops.MaxPool, ops.AvgPool, ops.GlobalAvgPool, ops.Add, ops.Upsample, ops.ReLU,
              ops.LeakyReLU, ops.PReLU, ops.Clip)
HOST_OPS = (ops.Softmax, ops.LRN, ops.YoloHead)


def vector_program():
    """`fpgacnn.hw.vector_program`, or None in a version without the vector unit."""
    try:
        importlib.import_module("fpgacnn.hw.accelerator")   # the top that runs its descriptors
        return importlib.import_module("fpgacnn.hw.vector_program")
    except ImportError:
        return None


class _Graph:
    """Who consumes each tensor, and the model's outputs."""

    def __init__(self, qmodel, config):
        self.qmodel, self.config = qmodel, config
        self.consumers = {}
        for layer in qmodel.layers:
            for t in layer.inputs:
                self.consumers.setdefault(t, []).append(layer)

    def only_consumer(self, tensor):
        users = self.consumers.get(tensor, [])
        if len(users) != 1 or tensor in self.qmodel.outputs:
            return None
        return users[0]

    def fusable_pool(self, conv):
        """The 2x2 stride-2 max-pool the engine can apply to `conv`'s output, or None: it must
        be the output's only reader and give exactly the golden pool of the saturated values."""
        pool = self.only_consumer(conv.name)
        if pool is None or not isinstance(pool.op, ops.MaxPool):
            return None
        op = pool.op
        top, left, _, _ = op.padding
        if op.kernel != (2, 2) or op.stride != (2, 2) or top or left:
            return None
        # bottom/right padding (Darknet's size-2 pools) is never read when the output is
        # floor(H/2) x floor(W/2): every window then lies inside the map
        _, _, h, w = self.qmodel.shapes[conv.name]
        if h < 2 or w < 2 or tuple(self.qmodel.shapes[pool.name][2:]) != (h // 2, w // 2):
            return None
        return pool if passes_values_through(self.qmodel, pool) else None

    def flatten_is_free(self, flatten):
        """True when every reader of the flatten is an FC layer run as a conv over its input."""
        users = self.consumers.get(flatten.name, [])
        return bool(users) and flatten.name not in self.qmodel.outputs and all(
            linear_as_conv_input(self.qmodel, u, self.config.max_kernel) for u in users)


def plan_steps(qmodel, config: HardwareConfig) -> list[Step]:
    """The steps of `qmodel` in execution order (no descriptors yet); refuses, naming the
    layer, what no unit runs."""
    graph, steps, fused = _Graph(qmodel, config), [], set()
    for layer in qmodel.layers:
        if layer.name in fused:
            continue
        op = layer.op
        if isinstance(op, ENGINE_OPS):
            pool = graph.fusable_pool(layer) if isinstance(op, ops.Conv2d) else None
            names = (layer.name,) if pool is None else (layer.name, pool.name)
            fused.update(names)
            steps.append(Step("engine", names, names[-1]))
        elif isinstance(op, ops.Flatten):
            if not graph.flatten_is_free(layer):
                steps.append(Step("host", (layer.name,), layer.name))
        elif isinstance(op, ops.Concat):
            steps += _concat_steps(qmodel, config, layer)
        elif isinstance(op, VECTOR_OPS):
            _need_vector_unit(layer)
            steps.append(Step("vector", (layer.name,), layer.name))
        elif isinstance(op, HOST_OPS):
            steps.append(Step("host", (layer.name,), layer.name))
        else:
            raise UserError(f"layer {layer.name!r}: {op.kind} runs neither on the accelerator "
                            f"nor on the host")
    return steps


def _need_vector_unit(layer):
    if vector_program() is None:
        raise UserError(f"layer {layer.name!r}: {layer.op.kind} runs on the vector unit, which "
                        f"is not part of this version (the engine runs Conv2d and Linear)")


def _concat_steps(qmodel, config, layer) -> list[Step]:
    """A requantizing copy for every input not already written into its slice of the concat's
    region; the last step (or a no-op `address` step) completes the concat."""
    from fpgacnn.export.ddr import plan_ddr

    if layer.op.axis != 1:
        raise UserError(f"layer {layer.name!r}: concat along axis {layer.op.axis}; the "
                        f"accelerator joins channels (axis 1)")
    ddr_map = plan_ddr(qmodel, config)
    copies = []
    for k, t in enumerate(layer.inputs):
        if ddr_map.region(f"fmap.{t}").offset != ddr_map.region(f"fmap.{layer.name}.in{k}").offset:
            _need_vector_unit(layer)
            copies.append(Step("vector", (layer.name,), None, concat_input=k))
    if not copies:
        return [Step("address", (layer.name,), layer.name)]
    return copies[:-1] + [replace(copies[-1], output=layer.name)]


def compile_network(qmodel, config: HardwareConfig) -> Program:
    """The program of `qmodel` for the accelerator of `config`."""
    steps = plan_steps(qmodel, config)
    image, ddr_map = build_ddr_image(qmodel, config)
    builder = ImageBuilder(ddr_map, bytearray(image))
    context = _Context(qmodel, config, ddr_map, builder, tensor_shapes(qmodel))
    placed = tuple(context.place(step) for step in steps)
    ddr_map, image = builder.finish()
    top = "accelerator" if any(s.unit == "vector" for s in placed) else "engine"
    return Program(qmodel, placed, ddr_map, image, top)


class _Context:
    """Compiles each step's descriptor against the image's addresses and places it."""

    def __init__(self, qmodel, config, ddr_map, builder, shapes):
        self.qmodel, self.config, self.ddr_map = qmodel, config, ddr_map
        self.builder, self.shapes = builder, shapes

    def fmap(self, tensor) -> int:
        return self.ddr_map.region(f"fmap.{tensor}").offset

    def place(self, step: Step) -> Step:
        if step.unit not in ("engine", "vector"):
            return step
        try:
            descriptor = self.engine_descriptor(step) if step.unit == "engine" \
                else self.vector_descriptor(step)
        except UserError as e:
            if f"'{step.layers[0]}'" in str(e):
                raise
            raise UserError(f"layer {step.layers[0]!r}: {e}") from None
        offset = self.builder.add(f"{step.name}.descriptor", "descriptor", descriptor.to_bytes())
        return replace(step, descriptor=offset)

    def engine_descriptor(self, step: Step):
        layer, source = engine_operands(self.qmodel, self.config, step)
        check_shift_only(layer.name, layer.requant, layer.act_multiplier, self.config)
        addresses = {"input": self.fmap(source), "output": self.fmap(step.output),
                     "weight": self.ddr_map.region(f"{layer.name}.weight").offset,
                     "params": self.ddr_map.region(f"{layer.name}.params").offset}
        return compile_layer(layer, self.config, addresses, input_shape=_nchw(self.shapes[source]),
                             input_format=self.qmodel.format_of(source),
                             rounding=self.qmodel.rounding, pool=len(step.layers) == 2)

    def vector_descriptor(self, step: Step):
        vp = vector_program()
        layer = self.qmodel.layer(step.layers[0])
        # the vector unit's lanes are PostProcessor lanes of the same config
        check_shift_only(layer.name, vp._post_requant(layer), layer.act_multiplier,
                         self.config, left_shifts=False)
        k = step.concat_input
        params = self.builder.add(f"{step.name}.vector_params", "vector_params",
                                  vp.vector_params(layer, self.config, k))
        if k is not None:
            source = layer.inputs[k]
            addresses = {"inputs": [self.fmap(source)], "params": params,
                         "output": self.ddr_map.region(f"fmap.{layer.name}.in{k}").offset}
            return vp.compile_concat_input(layer, k, self.config, addresses,
                                           input_shape=self.shapes[source],
                                           input_format=self.qmodel.format_of(source),
                                           rounding=self.qmodel.rounding)
        addresses = {"inputs": [self.fmap(t) for t in layer.inputs], "params": params,
                     "output": self.fmap(layer.name)}
        return vp.compile_vector_layer(
            layer, self.config, addresses, input_shapes=[self.shapes[t] for t in layer.inputs],
            input_formats=[self.qmodel.format_of(t) for t in layer.inputs],
            rounding=self.qmodel.rounding)


def check_shift_only(name: str, requant, act_multiplier, config: HardwareConfig,
                     left_shifts: bool = True) -> None:
    """On shift-only lanes (`post_multipliers = false`, hw.postproc), a UserError naming the
    layer and the field unless the requantization is "shift" mode with every multiplier 1
    (and every shift at least 0 without `left_shifts`: the vector unit folds a left shift
    into its multiplier) and the activation slope, if any, is 0."""
    if config.post_multipliers:
        return
    lanes = "the shift-only post-processing lanes (post_multipliers = false)"
    if requant.mode != "shift":
        raise UserError(f"layer {name!r}: requant mode {requant.mode!r} needs multipliers; "
                        f"{lanes} run only mode 'shift' with multiplier 1")
    if np.any(np.asarray(requant.multiplier) != 1):
        raise UserError(f"layer {name!r}: requant multiplier "
                        f"{_span(requant.multiplier)} is not 1, as {lanes} need")
    if not left_shifts and np.any(np.asarray(requant.shift) < 0):
        raise UserError(f"layer {name!r}: requant shift {_span(requant.shift)} is negative; "
                        f"{lanes} take shifts of 0 or more")
    if act_multiplier is not None and np.any(np.asarray(act_multiplier) != 0):
        raise UserError(f"layer {name!r}: activation slope {_span(act_multiplier)} is not 0; "
                        f"{lanes} have no slope multiplier")


def _span(values) -> str:
    values = np.asarray(values)
    low, high = int(values.min()), int(values.max())
    return str(low) if low == high else f"{low}..{high}"


def engine_operands(qmodel, config, step: Step):
    """(the QLayer as the engine runs it, the tensor it reads) of an engine step: an FC layer
    after a flatten it can see through becomes a convolution over the flatten's input."""
    layer = qmodel.layer(step.layers[0])
    conv_input = linear_as_conv_input(qmodel, layer, config.max_kernel)
    if conv_input is None:
        return layer, layer.inputs[0]
    return _as_conv(layer, conv_input), qmodel.layer(layer.inputs[0]).inputs[0]


def _as_conv(layer, conv_input):
    """The FC `layer` as the convolution with a C x H x W kernel over the unflattened map."""
    channels, h, w = conv_input
    out = layer.op.out_features
    op = ops.Conv2d(channels, out, (h, w), bias=layer.op.bias, activation=layer.op.activation)
    return replace(layer, op=op, weight=layer.weight.reshape(out, channels, h, w))


def _nchw(shape):
    return tuple(shape) + (1, 1) if len(shape) == 2 else tuple(shape)
