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

`native` gives the C++ kernels (requant.h) the same epilogue: the float32 mode as above, and
the Q31 and shift modes (`Epilogue.integer`: one slope or none) in int64 arithmetic, where the
products provably fit.
"""

import ctypes

import numpy as np
import torch

from fpgacnn.golden import workers
from fpgacnn.golden.arith import INT32_MAX, INT32_MIN
from fpgacnn.golden.requant import activation_input_range, finish, requantize
from fpgacnn.golden.stored import offset
from fpgacnn.quant.model import QLayer, Requant

_LUT_LIMIT = 1 << 16
INTEGER_MODES = ("gemmlowp", "single_round", "shift")
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
        finishable = self._finishable()
        self.fast = finishable and self._float_exact()
        self.integer = finishable and rq is not None and rq.mode in INTEGER_MODES
        if self.fast or self.integer:
            self.low, self.high = (int(v) for v in activation_input_range(layer, ndim=1))
            self.mult = torch.from_numpy(np.array(rq.multiplier)) if self.fast and rq is not None \
                else None
            shift = layer.output.zero_point - self.out_offset
            if layer.act_multiplier is not None:
                values = np.arange(self.low, self.high + 1, dtype=np.int64)
                codes = finish(values, layer, rounding=rounding) - self.out_offset
                self.lut = torch.from_numpy(codes.astype(np.int8))
                shift = 0
            self.code_shift = shift
            self.late_shift = shift % 2    # an odd shift in MAGIC would move the ties: 1 after
            self.magic = MAGIC + shift - self.late_shift

    def _float_exact(self) -> bool:
        rq = self.rq
        return rq is None or (rq.mode == "float32" and bool(np.isfinite(rq.multiplier).all()))

    def _finishable(self) -> bool:
        """Is the activation none, or one slope with a table of at most _LUT_LIMIT codes?"""
        layer = self.layer
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
    """An epilogue in the form of the C++ library's requant.h (`native`)."""
    _fields_ = [("corrections", ctypes.c_void_p), ("multipliers", ctypes.c_void_p),
                ("magic", ctypes.c_float), ("low", ctypes.c_float), ("high", ctypes.c_float),
                ("table", ctypes.c_void_p), ("table_base", ctypes.c_int64),
                ("late_shift", ctypes.c_int64), ("mode", ctypes.c_int64),
                ("rounding", ctypes.c_int64), ("m", ctypes.c_void_p), ("left", ctypes.c_void_p),
                ("right", ctypes.c_void_p), ("int_low", ctypes.c_int64),
                ("int_high", ctypes.c_int64), ("code_shift", ctypes.c_int64)]


_MODES = {"float32": 0, "gemmlowp": 1, "single_round": 2, "shift": 3}
_ROUNDINGS = {"half_up": 0, "half_even": 1, "truncate": 2}
_INT64_LIMIT = 1 << 63


def _integer_parameters(rq: Requant, outputs: int):
    """(multiplier, left shift, right shift) per output as requant.h computes the mode, or None
    where its int64 lanes could not hold the products (the numpy definition then runs, and
    raises where the contract says so)."""
    mult = np.broadcast_to(np.asarray(rq.multiplier, np.int64), (outputs,))
    shift = np.broadcast_to(np.asarray(rq.shift, np.int64), (outputs,))
    q31 = bool((mult >= INT32_MIN).all() and (mult <= INT32_MAX).all())
    if rq.mode == "gemmlowp":
        return (mult, np.clip(shift, 0, 32), -np.clip(shift, -62, 0)) if q31 else None
    if rq.mode == "single_round":
        fits = q31 and bool((shift >= -31).all() and (shift <= 30).all())
        return (mult, np.zeros(outputs, np.int64), 31 - shift) if fits else None
    left, right = np.maximum(-shift, 0), np.maximum(shift, 0)
    peak = int(np.abs(mult).max(initial=0))
    half = 1 << max(int(right.max(initial=0)) - 1, 0)
    if int(right.max(initial=0)) > 61 or ((peak << 31) << int(left.max(initial=0))) + half >= \
            _INT64_LIMIT:
        return None
    return mult, left, right


def _per_output(values, width: int, dtype) -> torch.Tensor:
    """values (one per output) padded with zeros to `width` (whole tiles)."""
    padded = torch.zeros(width, dtype=dtype)
    padded[:len(values)] = torch.from_numpy(np.array(values))
    return padded


def native(epilogue: Epilogue, kernel_corrections: torch.Tensor,
           outputs: int) -> NativeRequant | None:
    """`epilogue` as requant.h's parameters, for a kernel whose sums lack kernel_corrections
    (int32, one per output of its whole tiles); None where requant.h cannot run it. The
    tensors it points to are kept alive by the result."""
    rq = epilogue.rq
    integer = _integer_parameters(rq, outputs) if epilogue.integer else None
    if not (epilogue.fast or integer):
        return None
    width = len(kernel_corrections)
    corrections = kernel_corrections.numpy().astype(np.int64)
    corrections[:outputs] += epilogue.corr_np          # the sums' final value fits int32,
    corrections = torch.from_numpy(corrections.astype(np.int32))   # so wrapping is exact
    multipliers = None
    if epilogue.fast and epilogue.mult is not None:
        multipliers = _per_output(np.broadcast_to(epilogue.mult.numpy(), (outputs,)), width,
                                  torch.float32)
    m, left, right = (_per_output(v, width, torch.int64) for v in integer) if integer else \
        (None, None, None)
    table = epilogue.lut
    result = NativeRequant(
        corrections.data_ptr(), _address(multipliers), epilogue.magic,
        epilogue.magic + epilogue.low, epilogue.magic + epilogue.high, _address(table),
        _MAGIC_BITS + epilogue.low, epilogue.late_shift, _MODES[rq.mode if rq else "float32"],
        _ROUNDINGS[rq.rounding] if rq is not None and rq.mode == "shift" else 0, _address(m),
        _address(left), _address(right), epilogue.low, epilogue.high,
        0 if table is not None else epilogue.code_shift)
    result.tensors = (corrections, multipliers, table, m, left, right)
    return result


def _address(tensor: torch.Tensor | None):
    return None if tensor is None else tensor.data_ptr()
