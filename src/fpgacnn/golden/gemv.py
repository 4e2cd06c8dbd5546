"""An exact int8 x int8 -> int32 product for a few rows (a GEMV or a thin GEMM), in C++.

`int8gemv.cpp` streams weights packed once per weight matrix (`pack`) through AVX-512 VNNI;
it is compiled with g++ at first use into `<cache>/kernels/<key>/libint8gemv.so`, the key a
hash of the source, the compiler's version and the flags, and loaded with ctypes (which
releases the GIL during the call, so worker threads run their parts at once). Where g++, the
build or the CPU's VNNI is missing, `available()` is False and callers use `torch._int_mm`.
The library also holds the spin-wait of the worker threads (fpgacnn.golden.workers).
"""

import ctypes
import functools
import subprocess
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from fpgacnn.cache import build_key, cached_build

SOURCE = "int8gemv.cpp"
LIBRARY = "libint8gemv.so"
COMPILER = "g++"
FLAGS = ("-O2", "-shared", "-fPIC", "-std=c++17")


class PackedWeights(NamedTuple):
    data: torch.Tensor          # int8, [tile][k4 / 4][output in tile][4], 64-byte aligned
    corrections: torch.Tensor   # (tiles * tile outputs,) int32: -128 * sum of the weights
    k4: int                     # K rounded up to a multiple of 4
    tiles: int


def _compiler_version() -> str:
    result = subprocess.run([COMPILER, "--version"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def _compile(source: str, work: Path) -> None:
    (work / SOURCE).write_text(source)
    subprocess.run([COMPILER, *FLAGS, "-o", str(work / LIBRARY), str(work / SOURCE)],
                   capture_output=True, check=True)


def _load():
    source = resources.files("fpgacnn.golden").joinpath(SOURCE).read_text()
    key = build_key(source, _compiler_version(), " ".join(FLAGS))
    library = cached_build("kernels", key, LIBRARY, lambda work: _compile(source, work))
    lib = ctypes.CDLL(str(library))
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.int8gemv.argtypes = [ptr, i64, i64, i64, ptr, ptr, i64, i64, i64, ptr, i64]
    lib.int8gemv.restype = None
    lib.spin_while_equal.argtypes = [ptr, i64, i64]
    lib.count_and_spin.argtypes = [ptr, ptr, ptr, i64, i64]
    lib.announce_sleep.argtypes = [ptr, ptr, i64]
    return lib


@functools.cache
def _built():
    """The loaded library, or None where it cannot be built here."""
    try:
        return _load()
    except (OSError, subprocess.CalledProcessError):
        return None


@functools.cache
def _library():
    """The loaded kernel, or None where it cannot be built or run here."""
    lib = _built()
    return lib if lib is not None and lib.int8gemv_supported() else None


def available() -> bool:
    return _library() is not None


def can_spin() -> bool:
    """Whether `spin_while_equal` is there (it needs the library, not VNNI)."""
    return _built() is not None


GAVE_UP, CHANGED, SLEEPER_WAITS, PREEMPTED = range(4)       # how a spin ended


def spin_while_equal(word: ctypes.c_int64, seen: int, limit_ns: int) -> int:
    """Spins, the GIL released, until word.value != seen (CHANGED) or limit_ns have passed
    (GAVE_UP), or until the thread was seen to lose its core meanwhile (PREEMPTED)."""
    return _built().spin_while_equal(ctypes.addressof(word), seen, limit_ns)


def count_and_spin(count: ctypes.c_int64, asleep: ctypes.c_int64, word: ctypes.c_int64,
                   seen: int, limit_ns: int) -> int:
    """count.value += 1 (atomically, the GIL released), then spin_while_equal(word, ...);
    returns SLEEPER_WAITS at once if asleep.value is set (see `announce_sleep`)."""
    return _built().count_and_spin(ctypes.addressof(count), ctypes.addressof(asleep),
                                   ctypes.addressof(word), seen, limit_ns)


def announce_sleep(asleep: ctypes.c_int64, count: ctypes.c_int64, seen: int) -> bool:
    """asleep.value = 1, then whether count.value != seen; a `count_and_spin` racing with it
    either is seen here or sees asleep set."""
    return bool(_built().announce_sleep(ctypes.addressof(asleep), ctypes.addressof(count),
                                        seen))


@functools.cache
def tile_outputs() -> int:
    return _library().int8gemv_tile_outputs()


def pack(weights: torch.Tensor, sums: np.ndarray) -> PackedWeights:
    """weights (O, K) int8 and sums (O,) (each row's sum) in the kernel's layout."""
    o, k = weights.shape
    width = tile_outputs()
    tiles, k4 = -(-o // width), -(-k // 4) * 4
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
    if x.stride(1) != 1:
        x = x.contiguous()
    assert x.dtype == torch.int8 and out.dtype == torch.int32 and out.stride(1) == 1
    assert packed.data.data_ptr() % 64 == 0
    _library().int8gemv(x.data_ptr(), x.shape[0], x.stride(0), x.shape[1],
                        packed.data.data_ptr(), packed.corrections.data_ptr(), packed.k4,
                        first_tile, last_tile, out.data_ptr(), out.stride(0))
