"""The integer parameter tensors of a quantized layer, as the engine reads them.

Each is `(field, kind, array, bits)`: the weight (OIHW; an FC weight as (O, I, 1, 1), or as
(O, C, H, W) when the FC runs as a convolution over a flattened C x H x W map), the bias, the
requantization multiplier and shift, the activation slope multiplier, each input's
requantization (concat/add), every per-channel vector repeated to the layer's output channels,
and for a conv/FC layer the engine's parameter record (`engine_params`).

>>> [(f, k) for f, k, _, _ in layer_params(qm.layer("conv1"), 16)]
[('weight', 'weight'), ('bias', 'bias'), ('multiplier', 'requant'), ('shift', 'requant'),
 ('params', 'params')]
"""

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.ir import ops

ENGINE_OPS = (ops.Conv2d, ops.Linear)
ENGINE_PARAM_FIELDS = ("bias", "multiplier", "shift", "act_multiplier")

MULTIPLIER_BITS = 32
SHIFT_BITS = 8


def per_channel(values, channels: int, name: str) -> np.ndarray:
    values = np.atleast_1d(np.asarray(values))
    if values.size == 1:
        return np.repeat(values, channels)
    if values.size != channels:
        raise UserError(f"tensor {name}: {values.size} values for {channels} channels")
    return values


def multiplier_ints(rq) -> np.ndarray:
    """The multipliers as integers: M0 (Q31 modes), the factor (shift mode), or the float32
    bit pattern as a signed int32 (float32 mode)."""
    if rq.mode == "float32":
        return np.asarray(rq.multiplier, np.float32).view(np.int32).astype(np.int64)
    return np.asarray(rq.multiplier, np.int64)


def requant_params(prefix: str, rq, channels: int) -> list[tuple]:
    return [(f"{prefix}multiplier", "requant",
             per_channel(multiplier_ints(rq), channels, f"{prefix}multiplier"), MULTIPLIER_BITS),
            (f"{prefix}shift", "requant", per_channel(rq.shift, channels, f"{prefix}shift"),
             SHIFT_BITS)]


def engine_params(layer, channels: int) -> np.ndarray:
    """The engine's per-channel record of a conv/FC layer: (channels, 4) int64 holding, per
    output channel, the bias, the requantization multiplier (as `multiplier_ints`), the shift
    and the activation slope multiplier (0 where the layer has none)."""
    rq = layer.requant
    columns = [np.zeros(channels, np.int64) if layer.bias is None else layer.bias,
               multiplier_ints(rq), rq.shift,
               0 if layer.act_multiplier is None else layer.act_multiplier]
    return np.stack([per_channel(c, channels, f"{layer.name}.{f}").astype(np.int64)
                     for c, f in zip(columns, ENGINE_PARAM_FIELDS)], axis=1)


def layer_params(layer, channels: int, weight_shape=None) -> list[tuple]:
    """[(field, kind, int array, bits or None)] of a QLayer with `channels` output channels.

    bits None means: the width of the kind's layout (weight_bits, acc_bits). `weight_shape`
    reshapes the weight (an FC layer run as a convolution: see `linear_as_conv_input`).
    """
    params = []
    if layer.weight is not None:
        w = np.asarray(layer.weight)
        w = w.reshape(weight_shape or (w.shape + (1, 1) if w.ndim == 2 else w.shape))
        params.append(("weight", "weight", w, None))
    if layer.bias is not None:
        params.append(("bias", "bias", np.asarray(layer.bias, np.int64), None))
    if layer.requant is not None:
        params += requant_params("", layer.requant, channels)
    for k, rq in enumerate(layer.input_requants or ()):
        if rq is not None:
            params += requant_params(f"in{k}.", rq, channels)
    if layer.act_multiplier is not None:
        params.append(("act_multiplier", "requant",
                       per_channel(layer.act_multiplier, channels, f"{layer.name}.act"),
                       MULTIPLIER_BITS))
    if isinstance(layer.op, ENGINE_OPS) and layer.requant is not None:
        params.append(("params", "params", engine_params(layer, channels), None))
    return params


def input_bounds(qmodel, tensor: str) -> tuple[int, int]:
    """The integer range a tensor's values can take (a layer's saturation bounds)."""
    if tensor in qmodel.input_formats:
        fmt = qmodel.input_formats[tensor]
        return fmt.lo, fmt.hi
    layer = qmodel.layer(tensor)
    return layer.out_lo, layer.out_hi


def passes_values_through(qmodel, layer) -> bool:
    """True when the one-input `layer` leaves its input's integers unchanged apart from their
    arrangement: same format, no requantization, saturation bounds that never clip them."""
    if len(layer.inputs) != 1 or any(rq is not None for rq in layer.input_requants):
        return False
    if layer.act_multiplier is not None or layer.requant is not None or \
            getattr(layer, "act_slope", None) is not None:
        return False
    lo, hi = input_bounds(qmodel, layer.inputs[0])
    return layer.output == qmodel.format_of(layer.inputs[0]) and \
        layer.out_lo <= lo and hi <= layer.out_hi


def linear_as_conv_input(qmodel, layer, max_kernel: int):
    """(C, H, W) when the Linear `layer` reads a Flatten of a C x H x W map that it can read
    directly as a convolution with an H x W kernel (H, W <= max_kernel); else None."""
    if not isinstance(layer.op, ops.Linear) or layer.inputs[0] in qmodel.input_formats:
        return None
    flatten = qmodel.layer(layer.inputs[0])
    if not isinstance(flatten.op, ops.Flatten) or not passes_values_through(qmodel, flatten):
        return None
    shape = qmodel.shapes[flatten.inputs[0]]
    if len(shape) != 4 or max(shape[2:]) > max_kernel:
        return None
    return tuple(shape[1:])
