"""An exact int8 x int8 -> int32 product for a few rows (a GEMV or a thin GEMM), in C++.

`int8gemv.cpp` (in the library of `fpgacnn.golden.native`) streams weights packed once per
weight matrix (`pack`) through AVX-512 VNNI, in parts that the worker threads share
(`workers.run_parts`); `RequantizedGemv` also requantizes the sums (requant.h). Where the
library is not available, callers use `torch._int_mm`.
"""

import ctypes
import functools
from typing import NamedTuple

import numpy as np
import torch

from fpgacnn.golden import native, workers
from fpgacnn.golden.epilogue import NativeRequant

PART_BYTES = 1 << 19            # weights per part, at least: threads take parts as they
#                                 finish, so a slower core takes fewer


class PackedWeights(NamedTuple):
    data: torch.Tensor          # int8, [tile][k4 / 4][output in tile][4], 64-byte aligned
    corrections: torch.Tensor   # (tiles * tile outputs,) int32: -128 * sum of the weights
    k4: int                     # K rounded up to a multiple of 4 (or of pack's k_multiple)
    tiles: int


def available() -> bool:
    return native.library() is not None


_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


class _Gemv(ctypes.Structure):
    _fields_ = [("xu", _ptr), ("rows", _i64), ("packed", _ptr), ("corrections", _ptr),
                ("k4", _i64), ("out", _ptr), ("out_stride", _i64)]


class _RequantizedGemv(ctypes.Structure):
    _fields_ = [("gemv", _Gemv), ("requant", NativeRequant), ("codes", _ptr),
                ("codes_stride", _i64), ("outputs", _i64)]


def _kernel():
    return native.part_function("int8gemv")


@functools.cache
def tile_outputs() -> int:
    return native.library().int8gemv_tile_outputs()


def k_multiple() -> int:
    """What packed weights pad K to: 64 where AMX runs (it reads 64 inputs at a time: one
    packing serves the GEMV and the conv kernel), else 4."""
    return 64 if native.amx_usable() else 4


def pack(weights: torch.Tensor, sums: np.ndarray, k_multiple: int = 4) -> PackedWeights:
    """weights (O, K) int8 and sums (O,) (each row's sum) in the kernel's layout, K padded
    with zeros to a multiple of k_multiple (itself a multiple of 4)."""
    o, k = weights.shape
    width = tile_outputs()
    tiles, k4 = -(-o // width), -(-k // k_multiple) * k_multiple
    padded = torch.zeros((tiles * width, k4), dtype=torch.int8)
    padded[:o, :k] = weights
    data = padded.view(tiles, width, k4 // 4, 4).permute(0, 2, 1, 3).contiguous()
    corrections = torch.zeros(tiles * width, dtype=torch.int32)
    corrections[:o] = torch.from_numpy(-128 * np.asarray(sums, np.int64)).to(torch.int32)
    return PackedWeights(data, corrections, k4, tiles)


def product(x: torch.Tensor, packed: PackedWeights, first_tile: int, last_tile: int,
            out: torch.Tensor) -> None:
    """out[:, tiles first_tile..last_tile - 1] = x (N, K) int8 @ weights.T, exactly.

    out is int32 (N, >= tiles * tile_outputs()) with unit column stride."""
    products(x, packed, [first_tile, last_tile], out)


def products(x: torch.Tensor, packed: PackedWeights, bounds: list[int],
             out: torch.Tensor) -> None:
    """`product` of the tiles bounds[0]..bounds[-1] - 1, in parts bounds[i]..bounds[i + 1] - 1
    that the worker threads share (`workers.run_parts`)."""
    assert out.dtype == torch.int32 and out.stride(1) == 1
    arguments = _arguments(x, packed, out.data_ptr(), out.stride(0))
    workers.run_parts(_kernel(), ctypes.byref(arguments), bounds)


def _arguments(x: torch.Tensor, packed: PackedWeights, out: int, out_stride: int) -> _Gemv:
    """The kernel's arguments; x (N, K) int8 as the rows it reads, x + 128 as u8 padded with
    128 to k4 (against zero weights), made once for all parts."""
    assert x.dtype == torch.int8 and packed.data.data_ptr() % 64 == 0
    rows, k = x.shape
    xu = torch.full((rows, packed.k4), 128, dtype=torch.uint8)
    torch.bitwise_xor(x.view(torch.uint8), 128, out=xu[:, :k])
    arguments = _Gemv(xu.data_ptr(), rows, packed.data.data_ptr(),
                      packed.corrections.data_ptr(), packed.k4, out, out_stride)
    arguments.rows_u8 = xu                      # alive as long as the arguments
    return arguments


def part_bounds(packed: PackedWeights) -> list[int]:
    """Tile bounds of the parts: of at least PART_BYTES of weights, one with one thread."""
    parts = 1 if workers.thread_count() == 1 else \
        max(1, min(packed.tiles, packed.data.numel() // PART_BYTES))
    return [packed.tiles * i // parts for i in range(parts + 1)]


class RequantizedGemv:
    """A linear layer's product and epilogue (requant.h) in one kernel call per part: the
    stored output codes without an int32 tensor in between."""

    def __init__(self, packed: PackedWeights, requant: NativeRequant, outputs: int):
        self.packed, self.requant, self.outputs = packed, requant, outputs

    def __call__(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """out (N, outputs) int8 = the stored output codes of x (N, K) int8."""
        assert out.dtype == torch.int8 and out.stride(1) == 1
        product = _arguments(x, self.packed, None, 0)        # holds x while it runs
        arguments = _RequantizedGemv(product, self.requant, out.data_ptr(), out.stride(0),
                                     self.outputs)
        workers.run_parts(native.part_function("int8gemv_requantized"), ctypes.byref(arguments),
                          part_bounds(self.packed))
