"""Requantize + finish on torch tensors, in blocks: the fast path's post-processing.

`Epilogue(layer, rq, corr, rounding)(acc, dst)` writes, for integer accumulators `acc` (rows,
C), the stored output codes (q - offset, int8, see `fpgacnn.golden.stored`) of
finish(requantize(acc + corr, rq)) into `dst`, exactly as `fpgacnn.golden.requant` defines them.

The float32 mode (and no requantization) runs as float32 torch ops, which is exact: float32 of
an int32 sum is the same rounding as numpy's float32 of the int64 value. Rounding half to even
and clamping take two passes: adding MAGIC = 1.5 * 2**23 rounds any |v| < 2**22 to an integer
(float32 spacing is 1 in [2**23, 2**24)) and moves larger |v| monotonically past the clamp
bounds, so clamp(v + MAGIC, MAGIC + low, MAGIC + high) - MAGIC is round(v) clamped to the
integer range [low, high] that `activation_input_range` gives. The bits of MAGIC + r are
0x4B400000 + r, so the int32 view's low byte is r itself: narrowing it to int8 is the stored
code (with an even output offset added into MAGIC; an odd one is added after). A scalar
activation is a lookup table built by `finish` itself over [low, high]. Every other case (Q31
and shift modes, per-channel slopes, big tables) calls requantize/finish in numpy on the block.
"""

import ctypes

import numpy as np
import torch

from fpgacnn.golden import workers
from fpgacnn.golden.requant import activation_input_range, finish, requantize
from fpgacnn.golden.stored import offset
from fpgacnn.quant.model import QLayer, Requant

_LUT_LIMIT = 1 << 16
MAGIC = 1.5 * 2 ** 23
_MAGIC_BITS = 0x4B400000       # the float32 bits of MAGIC


class Epilogue:
    """Caller's promise: |acc + corr| < 2**31 (int32 exact) for every value it passes."""

    def __init__(self, layer: QLayer, rq: Requant | None, corr, rounding: str):
        self.layer, self.rq, self.rounding = layer, rq, rounding
        self.corr_np = np.atleast_1d(np.asarray(corr, np.int64))
        self.corr = torch.from_numpy(self.corr_np.astype(np.int32))
        self.corr_float = self.corr.to(torch.float32)
        self.out_offset = offset(layer.output)
        self.lut = None
        self.fast = self._float_exact()
        if self.fast:
            self.low, self.high = (int(v) for v in activation_input_range(layer, ndim=1))
            self.mult = None if rq is None else torch.from_numpy(rq.multiplier)
            shift = layer.output.zero_point - self.out_offset
            if layer.act_multiplier is not None:
                values = np.arange(self.low, self.high + 1, dtype=np.int64)
                codes = finish(values, layer, rounding=rounding) - self.out_offset
                self.lut = torch.from_numpy(codes.astype(np.int8))
                shift = 0
            self.late_shift = shift % 2    # an odd shift in MAGIC would move the ties: 1 after
            self.magic = MAGIC + shift - self.late_shift

    def _float_exact(self) -> bool:
        rq, layer = self.rq, self.layer
        if rq is not None and (rq.mode != "float32" or not np.isfinite(rq.multiplier).all()):
            return False
        if layer.act_multiplier is None:
            return True
        if np.asarray(layer.act_multiplier).size != 1:
            return False
        low, high = activation_input_range(layer, ndim=1)
        return int(high) - int(low) < _LUT_LIMIT

    def __call__(self, acc: torch.Tensor, dst: torch.Tensor) -> None:
        if not self.fast:
            return self._definition(acc, dst)
        scaled = workers.scratch("scaled", acc.numel(), torch.float32).view(acc.shape)
        if acc.dtype == torch.int32:
            scaled.copy_(acc.add_(self.corr))     # one rounding, of the exact int32 sum
        else:                                     # 8-bit codes: every sum is a small integer
            scaled.copy_(acc).add_(self.corr_float)
        if self.mult is not None:
            scaled.mul_(self.mult)
        scaled.add_(self.magic).clamp_(self.magic + self.low, self.magic + self.high)
        bits = scaled.view(torch.int32)
        if self.lut is not None:
            index = workers.scratch("index", acc.numel(), torch.int32).view(acc.shape)
            torch.sub(bits, _MAGIC_BITS + self.low, out=index)
            dst.copy_(self.lut[index])
            return
        dst.copy_(bits)                           # the low byte: shift + round(v)
        if self.late_shift:
            dst.add_(1)                           # int8 wraps back into range: the code

    def _definition(self, acc: torch.Tensor, dst: torch.Tensor) -> None:
        y = acc.numpy().astype(np.int64) + self.corr_np
        if self.rq is not None:
            y = requantize(y, self.rq, axis=1)
        codes = finish(y, self.layer, axis=1, rounding=self.rounding) - self.out_offset
        dst.copy_(torch.from_numpy(codes.astype(np.int8)))


class NativeRequant(ctypes.Structure):
    """An epilogue of the fast kind in the form of the C++ library's requant.h (`native`)."""
    _fields_ = [("corrections", ctypes.c_void_p), ("multipliers", ctypes.c_void_p),
                ("magic", ctypes.c_float), ("low", ctypes.c_float), ("high", ctypes.c_float),
                ("table", ctypes.c_void_p), ("table_base", ctypes.c_int64),
                ("late_shift", ctypes.c_int64)]


def native(epilogue: Epilogue, kernel_corrections: torch.Tensor, outputs: int) -> NativeRequant:
    """`epilogue` (fast) as requant.h's parameters, for a kernel whose sums lack
    kernel_corrections (int32, one per output of its whole tiles). The tensors it points to
    are kept alive by the result."""
    assert epilogue.fast
    corrections = kernel_corrections.numpy().astype(np.int64)
    corrections[:outputs] += epilogue.corr_np          # the sums' final value fits int32,
    corrections = torch.from_numpy(corrections.astype(np.int32))   # so wrapping is exact
    multipliers = None
    if epilogue.mult is not None:
        multipliers = torch.zeros(len(corrections), dtype=torch.float32)
        multipliers[:outputs] = epilogue.mult
    table = epilogue.lut
    result = NativeRequant(
        corrections.data_ptr(), None if multipliers is None else multipliers.data_ptr(),
        epilogue.magic, epilogue.magic + epilogue.low, epilogue.magic + epilogue.high,
        None if table is None else table.data_ptr(), _MAGIC_BITS + epilogue.low,
        epilogue.late_shift)
    result.tensors = (corrections, multipliers, table)
    return result
