"""ONNX Upsample and Resize: accepted when they are nearest-neighbour by one integer factor.

The index each output pixel reads is computed with ONNX's own formulas (coordinate
transformation mode, nearest mode) and must equal `i // scale`; anything else is refused.
"""

import math

import numpy as np

from fpgacnn.ir import ops

_TRANSFORMS = {
    "half_pixel": lambda x, s, n_in, n_out: (x + 0.5) / s - 0.5,
    "pytorch_half_pixel": lambda x, s, n_in, n_out: (x + 0.5) / s - 0.5 if n_out > 1 else 0 * x,
    "align_corners": lambda x, s, n_in, n_out: x * (n_in - 1) / max(n_out - 1, 1),
    "asymmetric": lambda x, s, n_in, n_out: x / s,
    "tf_half_pixel_for_nearest": lambda x, s, n_in, n_out: (x + 0.5) / s,
}
_NEAREST = {
    "round_prefer_floor": lambda v: np.where(v - np.floor(v) == 0.5, np.floor(v), np.round(v)),
    "round_prefer_ceil": lambda v: np.where(v - np.floor(v) == 0.5, np.ceil(v), np.round(v)),
    "floor": np.floor,
    "ceil": np.ceil,
}


def upsample(ctx, args, attrs):
    """Upsample (opset 9): scales as an input (or, from opset 7 files, an attribute)."""
    scales = attrs.get("scales") if len(args) < 2 else ctx.constant(args[1], "the scales")
    return _nearest(ctx, args[0], attrs.get("mode", "nearest"), np.asarray(scales, float), None,
                    "asymmetric", "floor")


def resize(ctx, args, attrs):
    """Resize (opset 10: X, scales; 11 and newer: X, roi, scales, sizes)."""
    if ctx.opset < 11:
        scales, sizes, transform, nearest = args[1], None, "asymmetric", "floor"
    else:
        padded = list(args) + [None] * 4
        scales, sizes = padded[2], padded[3]
        transform = attrs.get("coordinate_transformation_mode", "half_pixel")
        nearest = attrs.get("nearest_mode", "round_prefer_floor")
    if scales is not None and np.asarray(scales).size == 0:
        scales = None
    if attrs.get("axes") is not None:
        raise ctx.error("Resize with axes is not supported")
    scales = None if scales is None else np.asarray(ctx.constant(scales, "the scales"), float)
    sizes = None if sizes is None else [int(v) for v in np.asarray(sizes).reshape(-1)]
    return _nearest(ctx, args[0], attrs.get("mode", "nearest"), scales, sizes, transform,
                    nearest)


def _nearest(ctx, x, mode, scales, sizes, transform, nearest):
    x = ctx.dynamic(x)
    shape = ctx.shape(x)
    if mode != "nearest":
        raise ctx.error(f"mode={mode!r} is not supported (only 'nearest')")
    if transform not in _TRANSFORMS or nearest not in _NEAREST:
        raise ctx.error(f"coordinate_transformation_mode={transform!r} with "
                        f"nearest_mode={nearest!r} is not supported")
    if sizes is None:
        scales = list(scales.reshape(-1))
        sizes = [math.floor(d * s) for d, s in zip(shape, scales)]
    else:
        scales = [o / i for o, i in zip(sizes, shape)]
    if len(shape) != 4 or tuple(sizes[:2]) != shape[:2]:
        raise ctx.error(f"only spatial resizing of NCHW is supported ({shape} to {sizes})")
    factor = sizes[2] // shape[2]
    for axis in (2, 3):
        n_in, n_out, s = shape[axis], sizes[axis], scales[axis]
        out = np.arange(n_out, dtype=np.float64)
        source = _NEAREST[nearest](_TRANSFORMS[transform](out, s, n_in, n_out))
        source = np.clip(source, 0, n_in - 1).astype(int)
        if n_out != n_in * factor or not np.array_equal(source, np.arange(n_out) // factor):
            raise ctx.error(f"resizing {shape} to {tuple(sizes)} ({transform}, {nearest}) is "
                            f"not an integer nearest-neighbour upsampling")
    return ctx.add(ops.Upsample(factor), [x])
