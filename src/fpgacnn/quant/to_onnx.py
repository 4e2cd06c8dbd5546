"""A QModel as an ONNX model in operator form, run by onnxruntime's integer kernels.

The ONNX model takes the integer input (uint8/int8) and returns integer tensors, so that it can
be compared with the golden model element for element. Conv is QLinearConv, linear is a 1x1
QLinearConv between two Reshapes (QLinearConv carries the int32 bias, QLinearMatMul has none),
max pool is MaxPool on 8-bit integers, a windowed average pool is a depthwise QLinearConv,
global average pool and add are the com.microsoft QLinearGlobalAveragePool and QLinearAdd,
concat is a Concat of inputs first rescaled by 1x1 depthwise QLinearConvs, upsample is a
nearest Resize, ReLU/Clip bounds are a Clip on integers, float32-mode LeakyReLU is
com.microsoft QLinearLeakyRelu and PReLU DequantizeLinear -> PRelu -> QuantizeLinear, host ops
are DequantizeLinear -> float op -> QuantizeLinear. Only 8-bit activations (and weights of at
most 8 bits) in the affine scheme can be expressed; the integer LeakyReLU/PReLU slopes of the
other modes (act_multiplier) have no ONNX form.

    >>> model = to_onnx(qmodel); onnx.save(model, "net.qdq.onnx")
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fpgacnn.errors import UserError
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, QModel, TensorFormat

OPSET = 13
MS_DOMAIN = "com.microsoft"


class _Builder:
    def __init__(self, qmodel: QModel):
        self.qmodel = qmodel
        self.nodes, self.inits = [], []
        self.count = 0

    def const(self, name_hint, array):
        self.count += 1
        name = f"{name_hint}__{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def scale_zp(self, tensor: str, fmt: TensorFormat):
        return (self.const(f"{tensor}_scale", np.float32(fmt.scale)),
                self.const(f"{tensor}_zp", np.array(fmt.zero_point, _dtype(fmt))))

    def node(self, op_type, inputs, outputs, domain=None, **attrs):
        self.nodes.append(helper.make_node(op_type, inputs, outputs, domain=domain, **attrs))


def _dtype(fmt: TensorFormat):
    return np.int8 if fmt.signed else np.uint8


def _onnx_type(fmt: TensorFormat):
    return TensorProto.INT8 if fmt.signed else TensorProto.UINT8


def _check_exportable(qmodel: QModel) -> None:
    if qmodel.scheme != "affine":
        raise UserError(f"{qmodel.name}: ONNX integer operators need the affine scheme, "
                        f"not {qmodel.scheme}")
    for name, fmt in list(qmodel.input_formats.items()) + [(l.name, l.output)
                                                           for l in qmodel.layers]:
        if fmt.bits != 8:
            raise UserError(f"tensor {name!r}: ONNX integer operators need 8-bit "
                            f"activations, this one has {fmt.bits} bits")
    for layer in qmodel.layers:
        if layer.weight_bits is not None and layer.weight_bits > 8:
            raise UserError(f"layer {layer.name!r}: ONNX QLinearConv needs weights of at most "
                            f"8 bits, not {layer.weight_bits}")
        if layer.act_multiplier is not None:
            raise UserError(f"layer {layer.name!r}: the integer {_act_name(layer)} slope of "
                            f"mode {qmodel.mode} has no ONNX form (--mode float32 has one)")


def _act_name(layer):
    act = layer.op if isinstance(layer.op, ops.ACTIVATIONS) else layer.op.activation
    return act.kind


def to_onnx(qmodel: QModel, all_layers: bool = False) -> onnx.ModelProto:
    """The ONNX model; with `all_layers` every layer's integer tensor is an output too."""
    _check_exportable(qmodel)
    b = _Builder(qmodel)
    for layer in qmodel.layers:
        _EMIT[type(layer.op)](b, layer)
    inputs = [helper.make_tensor_value_info(n, _onnx_type(qmodel.input_formats[n]),
                                            ["N"] + list(s[1:]))
              for n, s in qmodel.input_shapes.items()]
    names = [l.name for l in qmodel.layers] if all_layers else list(qmodel.outputs)
    outputs = [helper.make_tensor_value_info(n, _onnx_type(qmodel.format_of(n)), None)
               for n in names]
    graph = helper.make_graph(b.nodes, qmodel.name, inputs, outputs, b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid(MS_DOMAIN, 1)])
    model.ir_version = 8
    return model


def _clip_if_needed(b: _Builder, layer: QLayer, produced: str):
    """Narrow to [out_lo, out_hi] with an integer Clip when the bounds are not the type's."""
    fmt = layer.output
    if (layer.out_lo, layer.out_hi) == (fmt.lo, fmt.hi):
        b.node("Identity", [produced], [layer.name])
        return
    lo = b.const("lo", np.array(layer.out_lo, _dtype(fmt)))
    hi = b.const("hi", np.array(layer.out_hi, _dtype(fmt)))
    b.node("Clip", [produced, lo, hi], [layer.name])


def _conv(b: _Builder, layer: QLayer):
    fin = b.qmodel.format_of(layer.inputs[0])
    op = layer.op
    x = layer.inputs[0]
    weight = layer.weight
    if isinstance(op, ops.Linear):
        x = _reshape(b, x, [0, -1, 1, 1], f"{layer.name}_in4d")
        weight = weight.reshape(weight.shape + (1, 1))
    w_scale = np.asarray(layer.weight_scale, np.float32)
    inputs = [x, *b.scale_zp(layer.inputs[0], fin),
              b.const(f"{layer.name}_w", weight.astype(np.int8)),
              b.const(f"{layer.name}_w_scale", w_scale if w_scale.size > 1 else w_scale[0]),
              b.const(f"{layer.name}_w_zp", np.zeros(w_scale.size, np.int8) if w_scale.size > 1
                      else np.int8(0)),
              *b.scale_zp(layer.name, layer.output)]
    if layer.bias is not None:
        inputs.append(b.const(f"{layer.name}_bias", layer.bias.astype(np.int32)))
    out = f"{layer.name}__acc"
    if isinstance(op, ops.Conv2d):
        b.node("QLinearConv", inputs, [out], kernel_shape=list(op.kernel),
               strides=list(op.stride), pads=list(op.padding), dilations=list(op.dilation),
               group=op.groups)
    else:
        b.node("QLinearConv", inputs, [out + "4d"], kernel_shape=[1, 1])
        _reshape(b, out + "4d", [0, -1], out, given_name=True)
    _clip_if_needed(b, layer, out)


def _reshape(b, x, shape, out, given_name=False):
    b.node("Reshape", [x, b.const("shape", np.array(shape, np.int64))], [out])
    return out


def _max_pool(b, layer):
    op = layer.op
    b.node("MaxPool", [layer.inputs[0]], [layer.name + "__pool"], kernel_shape=list(op.kernel),
           strides=list(op.stride), pads=list(op.padding), ceil_mode=int(op.ceil_mode))
    _clip_if_needed(b, layer, layer.name + "__pool")


def _avg_pool(b, layer):
    op = layer.op
    fin = b.qmodel.format_of(layer.inputs[0])
    inputs = [layer.inputs[0], *b.scale_zp(layer.inputs[0], fin),
              *b.scale_zp(layer.name, layer.output)]
    out = layer.name + "__pool"
    if isinstance(op, ops.GlobalAvgPool):
        b.node("QLinearGlobalAveragePool", inputs, [out], domain=MS_DOMAIN, channels_last=0)
    else:
        _avg_pool_as_conv(b, layer, fin, out)
    _clip_if_needed(b, layer, out)


def _avg_pool_as_conv(b, layer, fin, out):
    """A windowed average in integers: depthwise QLinearConv, weights 1 at scale 1/count.

    (onnxruntime's QLinearAveragePool averages dequantized floats, not integers.)
    """
    op = layer.op
    channels = b.qmodel.shapes[layer.inputs[0]][1]
    count = op.kernel[0] * op.kernel[1]
    inputs = [layer.inputs[0], *b.scale_zp(layer.inputs[0], fin),
              b.const(f"{layer.name}_ones", np.ones((channels, 1) + op.kernel, np.int8)),
              b.const(f"{layer.name}_w_scale", np.float32(1.0 / count)),
              b.const(f"{layer.name}_w_zp", np.int8(0)),
              *b.scale_zp(layer.name, layer.output)]
    b.node("QLinearConv", inputs, [out], kernel_shape=list(op.kernel), strides=list(op.stride),
           pads=list(op.padding), group=channels)


def _concat(b, layer):
    """Each input that changes format is rescaled first (`_rescale`), then a plain Concat.

    (onnxruntime's QLinearConcat rescales by dequantize-then-divide, which rounds differently
    from the golden model's rint(float32(x - zp) * float32(s_in / s_out)).)
    """
    parts = []
    for t, rq in zip(layer.inputs, layer.input_requants):
        parts.append(t if rq is None else _rescale(b, t, layer))
    b.node("Concat", parts, [layer.name + "__cat"], axis=layer.op.axis)
    _clip_if_needed(b, layer, layer.name + "__cat")


def _rescale(b, tensor, layer):
    """`tensor` to the layer's output format: a depthwise 1x1 QLinearConv with weights 1 at
    scale 1, whose requantization is rint(float32(x - zp) * (s_in / s_out)) + zp_out."""
    channels = b.qmodel.shapes[tensor][1]
    out = f"{tensor}__to_{layer.name}"
    inputs = [tensor, *b.scale_zp(tensor, b.qmodel.format_of(tensor)),
              b.const(f"{out}_ones", np.ones((channels, 1, 1, 1), np.int8)),
              b.const(f"{out}_w_scale", np.float32(1.0)), b.const(f"{out}_w_zp", np.int8(0)),
              *b.scale_zp(layer.name, layer.output)]
    b.node("QLinearConv", inputs, [out], kernel_shape=[1, 1], group=channels)
    return out


def _add(b, layer):
    inputs = []
    for t in layer.inputs:
        inputs += [t, *b.scale_zp(t, b.qmodel.format_of(t))]
    inputs += list(b.scale_zp(layer.name, layer.output))
    b.node("QLinearAdd", inputs, [layer.name + "__add"], domain=MS_DOMAIN)
    _clip_if_needed(b, layer, layer.name + "__add")


def _same_scale(b, layer):
    op = layer.op
    x = layer.inputs[0]
    if b.qmodel.format_of(x) != layer.output:
        raise UserError(f"layer {layer.name!r}: {op.kind} that changes the scale has no "
                        f"ONNX integer form")
    out = layer.name + "__y"
    if isinstance(op, ops.Upsample):
        scales = b.const("scales", np.array([1, 1, op.scale, op.scale], np.float32))
        b.node("Resize", [x, "", scales], [out], mode="nearest",
               coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    elif isinstance(op, ops.Flatten):
        b.node("Flatten", [x], [out], axis=1)
    elif layer.act_slope is not None:
        _slope(b, layer, out)
    else:
        out = x
    _clip_if_needed(b, layer, out)


def _slope(b, layer, out):
    """float32-mode LeakyReLU: QLinearLeakyRelu; PReLU: DequantizeLinear -> PRelu -> Quantize."""
    x = layer.inputs[0]
    fmt = layer.output
    if isinstance(layer.op, ops.LeakyReLU):
        b.node("QLinearLeakyRelu", [x, *b.scale_zp(x, fmt), *b.scale_zp(layer.name, fmt)],
               [out], domain=MS_DOMAIN, alpha=float(layer.act_slope[0]))
        return
    real = f"{layer.name}__real"
    b.node("DequantizeLinear", [x, *b.scale_zp(x, fmt)], [real])
    rank = len(b.qmodel.shapes[x])
    slope = np.asarray(layer.act_slope, np.float32).reshape((-1,) + (1,) * (rank - 2))
    b.node("PRelu", [real, b.const(f"{layer.name}_slope", slope)],
           [real + "_act"])
    b.node("QuantizeLinear", [real + "_act", *b.scale_zp(layer.name, fmt)], [out])


def _host(b, layer):
    reals = []
    for t in layer.inputs:
        reals.append(t + "__real_for_" + layer.name)
        b.node("DequantizeLinear", [t, *b.scale_zp(t, b.qmodel.format_of(t))], [reals[-1]])
    op = layer.op
    y = layer.name + "__real"
    if isinstance(op, ops.Softmax):
        b.node("Softmax", reals, [y], axis=op.axis)
    elif isinstance(op, ops.LRN):
        b.node("LRN", reals, [y], size=op.size, alpha=op.alpha, beta=op.beta, bias=op.bias)
    elif isinstance(op, ops.YoloHead):
        _yolo_head(b, layer, reals[0], y)
    else:
        raise UserError(f"layer {layer.name!r}: host op {op.kind} is not exported to ONNX")
    b.node("QuantizeLinear", [y, *b.scale_zp(layer.name, layer.output)],
           [layer.name + "__q"])
    _clip_if_needed(b, layer, layer.name + "__q")


def _yolo_head(b, layer, real, y):
    """Logistic on x, y, objectness and classes of each anchor (ir.reference's rule), by Where."""
    op = layer.op
    per_anchor = np.zeros(5 + op.classes, bool)
    per_anchor[[0, 1]] = True
    per_anchor[4:] = True
    mask = np.tile(per_anchor, len(op.mask)).reshape(1, -1, 1, 1)
    b.node("Sigmoid", [real], [real + "_sigmoid"])
    b.node("Where", [b.const(f"{layer.name}_mask", mask), real + "_sigmoid", real], [y])


_EMIT = {
    ops.Conv2d: _conv, ops.Linear: _conv, ops.MaxPool: _max_pool, ops.AvgPool: _avg_pool,
    ops.GlobalAvgPool: _avg_pool, ops.Concat: _concat, ops.Add: _add,
    ops.Upsample: _same_scale, ops.Flatten: _same_scale, ops.ReLU: _same_scale,
    ops.Clip: _same_scale, ops.LeakyReLU: _same_scale, ops.PReLU: _same_scale,
    ops.Softmax: _host, ops.LRN: _host, ops.YoloHead: _host,
}


def run_onnxruntime(model: onnx.ModelProto, x_int,
                    qmodel: QModel | None = None) -> dict[str, np.ndarray]:
    """Run `model` on the integer input (or {input name: input}) with onnxruntime; int64
    outputs by name."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    given = x_int if isinstance(x_int, dict) else {session.get_inputs()[0].name: x_int}
    feeds = {}
    for info in session.get_inputs():
        dtype = np.int8 if info.type == "tensor(int8)" else np.uint8
        feeds[info.name] = np.asarray(given[info.name]).astype(dtype)
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, feeds)
    return {n: v.astype(np.int64) for n, v in zip(names, values)}
