"""How the fast path holds a tensor: int8 torch codes q - offset, channels-last.

A format of at most 8 bits fits int8 after subtracting its offset (128 unsigned, 0 signed);
4-D tensors keep their logical (N, C, H, W) shape with (N, H, W, C) memory, so convolutions,
pools and concats read runs of channels. `to_stored` / `to_codes` convert from and to the
golden model's int64 numpy arrays.
"""

import numpy as np
import torch

from fpgacnn.quant.model import TensorFormat


def offset(fmt: TensorFormat) -> int:
    return 0 if fmt.signed else 128


def storable(fmt: TensorFormat) -> bool:
    return fmt.bits <= 8


def to_stored(x: np.ndarray, fmt: TensorFormat) -> torch.Tensor:
    """int64 codes (inside fmt's range) -> int8 q - offset, channels-last when 4-D."""
    t = torch.from_numpy(np.ascontiguousarray(x, np.int64)).sub(offset(fmt)).to(torch.int8)
    return t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t


def to_codes(t: torch.Tensor, fmt: TensorFormat) -> np.ndarray:
    """int8 stored tensor -> contiguous int64 codes in the logical layout."""
    return t.to(torch.int64).add_(offset(fmt)).contiguous().numpy()


def nhwc(t: torch.Tensor) -> torch.Tensor:
    """The (N, H, W, C) view of a channels-last (N, C, H, W) tensor."""
    return t.permute(0, 2, 3, 1)


def from_nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2)
