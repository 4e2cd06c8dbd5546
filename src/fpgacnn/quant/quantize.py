"""Post-training quantization: a float Graph plus calibration data -> a QModel.

    >>> from fpgacnn.quant import QuantConfig, quantize
    >>> qm = quantize(graph, calib, QuantConfig(scheme="affine", bits=8, per_channel=True))
"""

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.golden.arith import ROUNDINGS
from fpgacnn.ir import Graph, Node, ops, simplify
from fpgacnn.quant import params as P
from fpgacnn.quant.calibrate import check_calibration, collect_stats
from fpgacnn.quant.model import AFFINE_MODES, QLayer, QModel, SCHEMES, TensorFormat
from fpgacnn.quant.observers import METHODS, observed_range
from fpgacnn.quant.overflow import check_accumulators
from fpgacnn.quant.schemes import activation_format, check_bits, fake_quantizer, quantize_weights

SAME_FORMAT = (ops.MaxPool, ops.Upsample, ops.Flatten, ops.ReLU, ops.Clip, ops.LeakyReLU,
               ops.PReLU, ops.AvgPool, ops.GlobalAvgPool)
SLOPES = (ops.LeakyReLU, ops.PReLU)
OWN_FORMAT = (ops.Conv2d, ops.Linear, ops.Add, ops.Concat, ops.Softmax, ops.LRN, ops.YoloHead)


@dataclass(frozen=True)
class QuantConfig:
    """How to quantize. `layer_bits` maps a layer name to (activation bits, weight bits).

    mode: "shift" for pow2; "gemmlowp" (default), "single_round" or "float32" for affine.
    rounding: the rounding of every shift (pow2 requantization, activations, add).
    """

    scheme: str = "affine"
    bits: int = 8
    weight_bits: int | None = None
    per_channel: bool = False
    mode: str | None = None
    rounding: str = "half_up"
    method: str = "minmax"
    percentile: float = 99.99
    acc_bits: int = 32
    signed_activations: bool | None = None
    layer_bits: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self):
        if self.scheme not in SCHEMES:
            raise UserError(f"--scheme must be one of {', '.join(SCHEMES)}, not {self.scheme!r}")
        check_bits(self.bits, "--bits")
        if self.weight_bits is not None:
            check_bits(self.weight_bits, "--weight-bits")
        for name, (a, w) in self.layer_bits.items():
            check_bits(a, f"bits of layer {name!r}")
            check_bits(w, f"weight bits of layer {name!r}")
        object.__setattr__(self, "layer_bits", MappingProxyType(dict(self.layer_bits)))
        mode = self.mode or ("shift" if self.scheme == "pow2" else "gemmlowp")
        allowed = ("shift",) if self.scheme == "pow2" else AFFINE_MODES
        if mode not in allowed:
            raise UserError(f"--mode for the {self.scheme} scheme must be one of "
                            f"{', '.join(allowed)}, not {mode!r}")
        object.__setattr__(self, "mode", mode)
        if self.rounding not in ROUNDINGS:
            raise UserError(f"--rounding must be one of {', '.join(ROUNDINGS)}, "
                            f"not {self.rounding!r}")
        if self.method not in METHODS:
            raise UserError(f"--method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if not 8 <= self.acc_bits <= 64:
            raise UserError(f"--acc-bits must be in 8..64, got {self.acc_bits}")
        if mode in ("gemmlowp", "single_round") and self.acc_bits > 32:
            raise UserError(f"--mode {mode} takes int32 accumulators; --acc-bits "
                            f"{self.acc_bits} needs --mode float32")

    def bits_of(self, layer: str) -> tuple[int, int]:
        weight_bits = self.bits if self.weight_bits is None else self.weight_bits
        return self.layer_bits.get(layer, (self.bits, weight_bits))


def quantize(graph: Graph, calibration, config: QuantConfig = QuantConfig()) -> QModel:
    """Quantize `graph` (BatchNorm is folded first) using `calibration` inputs (N, C, H, W)."""
    graph = simplify(graph)
    if config.mode == "float32":
        graph = separate_slopes(graph)
    if len(graph.inputs) != 1:
        raise UserError(f"{graph.name}: quantization supports one graph input, "
                        f"got {list(graph.inputs)}")
    names = {n.name for n in graph.nodes}
    for name in config.layer_bits:
        if name not in names:
            raise UserError(f"{graph.name}: layer_bits names {name!r}, which is not a layer")
    _check_supported(graph, config)
    data = check_calibration(graph, calibration)
    stats = collect_stats(graph, data)
    (input_name, input_shape), = graph.inputs.items()
    formats = {input_name: _format_from_stats(stats[input_name], config, config.bits)}
    layers = []
    for node in graph.nodes:
        layer = _quantize_node(node, graph, formats, stats, config)
        formats[node.name] = layer.output
        layers.append(layer)
    qmodel = QModel(graph.name, config.scheme, config.mode, config.rounding, config.acc_bits,
                    dict(graph.inputs), {input_name: formats[input_name]}, layers,
                    graph.outputs, graph)
    problems = [r for r in check_accumulators(qmodel) if not r.fits]
    if problems:
        r = problems[0]
        raise UserError(f"layer {r.layer!r}: worst-case accumulator needs {r.bits_needed} bits, "
                        f"more than --acc-bits {qmodel.acc_bits}")
    return qmodel


def _check_supported(graph: Graph, config: QuantConfig) -> None:
    for node in graph.nodes:
        if not isinstance(node.op, SAME_FORMAT + OWN_FORMAT):
            raise UserError(f"layer {node.name!r}: op {node.op.kind} cannot be expressed in "
                            f"integers by the {config.scheme} scheme")


def _format_from_stats(stats, config: QuantConfig, bits: int) -> TensorFormat:
    signed = config.signed_activations
    fake = fake_quantizer(config.scheme, bits, signed)
    lo, hi = observed_range(stats, config.method, fake, config.percentile)
    return activation_format(config.scheme, bits, lo, hi, signed)


def _quantize_node(node, graph, formats, stats, config) -> QLayer:
    op = node.op
    where = f"layer {node.name!r}"
    fins = [formats[t] for t in node.inputs]
    act_bits, w_bits = config.bits_of(node.name)
    if isinstance(op, SAME_FORMAT):
        fout = fins[0]
    else:
        fout = _format_from_stats(stats[node.name], config, act_bits)
    activation = op if isinstance(op, ops.ACTIVATIONS) else getattr(op, "activation", None)
    lo, hi = P.saturation_bounds(activation, fout)
    common = dict(name=node.name, op=op, inputs=node.inputs, output=fout, out_lo=lo, out_hi=hi,
                  act_multiplier=P.activation_multiplier(activation, node.params),
                  act_shift=P.ACT_SHIFT)
    mode, rounding = config.mode, config.rounding
    if mode == "float32" and isinstance(activation, SLOPES):
        common.update(act_multiplier=None,
                      act_slope=P.activation_slope_float32(activation, node.params))
    if isinstance(op, (ops.Conv2d, ops.Linear)):
        w, w_scale, w_frac = quantize_weights(node.params["weight"], config.scheme, w_bits,
                                              config.per_channel)
        bias = (P.integer_bias(node.params["bias"], fins[0], w_scale, config.acc_bits, where)
                if "bias" in node.params else None)
        rq = P.conv_requant(mode, rounding, fins[0], w_scale, w_frac, fout, where)
        return QLayer(**common, weight=w, weight_scale=w_scale, weight_bits=w_bits, bias=bias,
                      requant=rq)
    if isinstance(op, (ops.AvgPool, ops.GlobalAvgPool)):
        count = _window_count(op, graph.shapes[node.inputs[0]], where)
        rq = P.average_requant(mode, rounding, fins[0], fout, count, where,
                               global_pool=isinstance(op, ops.GlobalAvgPool))
        return QLayer(**common, requant=rq)
    if isinstance(op, ops.Add) and mode == "float32":
        return QLayer(**common, input_requants=P.add_float32_requants(fins, fout))
    if isinstance(op, ops.Add):
        rqs = tuple(P.rescale_requant(mode, rounding, f, fout, where, P.ADD_GUARD_BITS)
                    for f in fins)
        final = P.requant_for("shift", rounding, None, None, np.array([P.ADD_GUARD_BITS]))
        return QLayer(**common, input_requants=rqs, requant=final)
    if isinstance(op, ops.Concat):
        rqs = tuple(P.rescale_requant(mode, rounding, f, fout, where) for f in fins)
        return QLayer(**common, input_requants=rqs)
    return QLayer(**common)


def separate_slopes(graph: Graph) -> Graph:
    """float32 mode: a LeakyReLU or PReLU fused into a conv, linear or add becomes a layer of
    its own again, as onnxruntime computes it (no fused form); the tensor before it, named
    `<layer>_pre`, gets its own format. The activation keeps the layer's name."""
    taken = set(graph.inputs) | {n.name for n in graph.nodes}
    nodes = []
    for node in graph.nodes:
        act = getattr(node.op, "activation", None)
        if not isinstance(act, SLOPES):
            nodes.append(node)
            continue
        pre = f"{node.name}_pre"
        while pre in taken:
            pre += "_"
        taken.add(pre)
        params = {k: v for k, v in node.params.items() if k != "slope"}
        nodes.append(node.with_(name=pre, op=replace(node.op, activation=None), params=params))
        slope = {"slope": node.params["slope"]} if isinstance(act, ops.PReLU) else {}
        nodes.append(Node(node.name, act, (pre,), slope))
    return graph.with_nodes(nodes)


def _window_count(op, in_shape, where) -> int:
    from fpgacnn.golden.kernels import window_counts
    if isinstance(op, ops.GlobalAvgPool):
        return in_shape[2] * in_shape[3]
    counts = window_counts(in_shape, op)
    if counts.min() != counts.max():
        raise UserError(f"{where}: average pool windows cover {counts.min()} to {counts.max()} "
                        f"elements (padding excluded or ceil mode); only pools whose every "
                        f"window has one size are supported in integers")
    return int(counts.flat[0])
