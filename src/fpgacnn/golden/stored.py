"""How the fast path holds a tensor: int8 torch codes q - offset, channels-last.

A format of at most 8 bits fits int8 after subtracting its offset (128 unsigned, 0 signed);
4-D tensors keep their logical (N, C, H, W) shape with (N, H, W, C) memory, so convolutions,
pools and concats read runs of channels. `to_stored` / `to_codes` convert from the golden
model's integer numpy arrays and to its int64 ones.
"""

import math

import numpy as np
import torch

from fpgacnn.golden import workers
from fpgacnn.quant.model import TensorFormat

_FEW_CHANNELS = 8            # below: copied channel by channel (measured)
_BLOCK_ELEMENTS = 1 << 17    # per block of images converted or checked at once


def offset(fmt: TensorFormat) -> int:
    return 0 if fmt.signed else 128


def storable(fmt: TensorFormat) -> bool:
    return fmt.bits <= 8


def to_stored(x: np.ndarray, fmt: TensorFormat) -> torch.Tensor:
    """Integer codes (any integer dtype, inside fmt's range) -> int8 q - offset, channels-last
    when 4-D. q - offset lies in [-128, 127], so it is q's low byte, its top bit flipped when
    the offset is 128: one pass that keeps the low bytes, one over them; a part of the images
    on each worker."""
    low = torch.empty(_nhwc_shape(x.shape) if x.ndim == 4 else x.shape, dtype=torch.int8)

    def convert(images: slice):
        part = low[images]
        _copy_low_bytes(x[images], part.numpy())
        if offset(fmt):
            part.bitwise_xor_(-128)
    parts = workers.thread_count() if x.size >= _BLOCK_ELEMENTS else 1
    workers.for_each(convert, image_blocks(x, -(-x.size // parts)))
    return from_nhwc(low) if x.ndim == 4 else low


def image_blocks(x: np.ndarray, elements: int = _BLOCK_ELEMENTS) -> list[slice]:
    """x's images (first axis) in blocks of about `elements` elements (by default
    cache-sized)."""
    per_image = math.prod(x.shape[1:])
    step = max(1, elements // max(1, per_image))
    return [slice(first, first + step) for first in range(0, len(x), step)]


def _nhwc_shape(shape) -> tuple:
    n, c, h, w = shape
    return n, h, w, c


def _copy_low_bytes(x: np.ndarray, low: np.ndarray) -> None:
    """low (int8, x's shape, NHWC when 4-D) = the low bytes of x's integers."""
    if x.ndim != 4:
        low[...] = x
    elif x.shape[1] < _FEW_CHANNELS:    # a strided copy per channel beats one transposing copy
        for k in range(x.shape[1]):
            low[..., k] = x[:, k]
    else:
        low[...] = x.transpose(0, 2, 3, 1)


def to_codes(t: torch.Tensor, fmt: TensorFormat) -> np.ndarray:
    """int8 stored tensor -> contiguous int64 codes in the logical layout (one widening copy;
    q = stored + 128 is the stored byte, its top bit flipped, read as unsigned)."""
    codes = torch.empty(t.shape, dtype=torch.int64)
    codes.copy_(t.bitwise_xor(-128).view(torch.uint8) if offset(fmt) else t)
    return codes.numpy()


def nhwc(t: torch.Tensor) -> torch.Tensor:
    """The (N, H, W, C) view of a channels-last (N, C, H, W) tensor."""
    return t.permute(0, 2, 3, 1)


def from_nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2)
