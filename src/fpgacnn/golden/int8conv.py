"""An ungrouped 8-bit convolution and its requantization in one C++ call per part.

`int8conv.cpp` (in the library of `fpgacnn.golden.native`) builds im2col rows block by block,
multiplies them by the weights in gemv's packed layout (on AMX where the CPU and kernel allow
it, else AVX-512 VNNI) and requantizes the int32 sums (requant.h: the float32 operations of
`fpgacnn.golden.epilogue.Epilogue` in the same order, or the integer modes in int64). It
applies where the library is available and requant.h runs the epilogue (`epilogue.native`);
the output positions are split into parts that the worker threads share (`run_parts`).
"""

import ctypes
import math
from types import SimpleNamespace

import torch

from fpgacnn.golden import gemv, int8_gemm, native, workers
from fpgacnn.golden.epilogue import Epilogue, NativeRequant
from fpgacnn.golden.epilogue import native as native_requant

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p
BLOCK_ROWS = 64                  # output positions per block in int8conv.cpp
SHARED_MACS = 20_000_000         # fewer multiply-adds: one part, on the calling thread
PARTS_PER_THREAD = 4             # threads take parts as they finish: a slower core takes fewer
AMX_LINEAR_ROWS = 12             # a linear layer of at least this many rows runs here on AMX
#                                  (AlexNet fc6, ms, AMX / GEMV: 8 rows 1.13 / 1.07, 16 rows
#                                  1.21 / 1.48)


class _Conv(ctypes.Structure):
    _fields_ = ([("x", _ptr)] +
                [(name, _i64) for name in ("n", "h", "w", "c", "stride_n", "stride_h",
                                           "stride_w", "kh", "kw", "sh", "sw", "dh", "dw",
                                           "pad_top", "pad_left", "oh", "ow", "pad_value")] +
                [("packed", _ptr), ("k_padded", _i64), ("tiles", _i64), ("use_amx", _i64),
                 ("requant", NativeRequant), ("out", _ptr), ("outputs", _i64)])


_ONE_BY_ONE = SimpleNamespace(kernel=(1, 1), stride=(1, 1), dilation=(1, 1),
                              padding=(0, 0, 0, 0))


def available() -> bool:
    return gemv.available()


def kernel_for(wm, epilogue: Epilogue, outputs: int) -> "ConvKernel | None":
    """The kernel of a conv (or a linear layer) with weight matrix `wm`
    (fpgacnn.golden.int8_gemm), or None where it does not apply (no library, or an epilogue
    that requant.h cannot run)."""
    if not (available() and (epilogue.fast or epilogue.integer)):
        return None
    packed = int8_gemm.packed_weights(wm)
    requant = native_requant(epilogue, packed.corrections, outputs)
    use_amx = native.amx_usable() and packed.k4 % 64 == 0
    return None if requant is None else ConvKernel(packed, requant, outputs, use_amx)


class ConvKernel:
    """One layer's weights and epilogue in the kernel's form."""

    def __init__(self, packed: gemv.PackedWeights, requant: NativeRequant, outputs: int,
                 use_amx: bool):
        self.packed, self.requant, self.outputs, self.use_amx = packed, requant, outputs, use_amx

    def __call__(self, x: torch.Tensor, pad_value: int, op, out: torch.Tensor) -> None:
        """out (N * OH * OW, outputs) int8 = the stored output codes of x (N, H, W, C) int8."""
        if x.stride(3) != 1 and x.shape[3] > 1:
            x = x.contiguous()
        args = self._arguments(x, pad_value, op, out)
        total = args.n * args.oh * args.ow
        macs = total * math.prod(op.kernel) * args.c * self.outputs
        parts = 1 if macs < SHARED_MACS else PARTS_PER_THREAD * workers.thread_count()
        step = -(-total // parts // BLOCK_ROWS) * BLOCK_ROWS
        workers.run_parts(native.part_function("int8conv"), ctypes.byref(args),
                          list(range(0, total, step)) + [total])

    def linear(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """out (N, outputs) int8 = the stored output codes of the linear layer of x (N, K)
        int8: a 1x1 convolution of N positions, in parts of whole weight tiles."""
        if x.stride(1) != 1:
            x = x.contiguous()
        n, k = x.shape
        positions = x.as_strided((n, 1, 1, k), (x.stride(0), k, k, 1))
        args = self._arguments(positions, 0, _ONE_BY_ONE, out)
        workers.run_parts(native.part_function("int8conv_tiles"), ctypes.byref(args),
                          gemv.part_bounds(self.packed))

    def _arguments(self, x, pad_value, op, out) -> _Conv:
        assert x.dtype == out.dtype == torch.int8 and out.is_contiguous()
        packed = self.packed
        (kh, kw), (sh, sw), (dh, dw) = op.kernel, op.stride, op.dilation
        t, l = op.padding[:2]
        n, h, w, c = x.shape
        oh, ow = int8_gemm.conv_output_size(h, w, op)
        return _Conv(x.data_ptr(), n, h, w, c, *x.stride()[:3], kh, kw, sh, sw, dh, dw, t, l,
                     oh, ow, pad_value, packed.data.data_ptr(), packed.k4, packed.tiles,
                     self.use_amx, self.requant, out.data_ptr(), self.outputs)
