"""The golden model's C++ library: int8 kernels (AVX-512 VNNI, AMX) and the worker threads'
spin-wait.

The sources (every `*.cpp` and `*.h` of this package) are compiled with g++ at first use into
`<cache>/kernels/<key>/libfpgacnn_golden.so`, the key a hash of the sources, the compiler's
version and the flags, and loaded with ctypes (which releases the GIL during each call, so
worker threads run their parts at once). Where g++ or the build is
missing, `built()` is None; where the CPU lacks VNNI, `library()` is None; callers then use
their torch paths. `-ffp-contract=off`: the float epilogues must round after each operation,
as torch does.
"""

import ctypes
import functools
import os
import subprocess
from importlib import resources
from pathlib import Path

from fpgacnn.cache import build_key, cached_build

LIBRARY = "libfpgacnn_golden.so"
COMPILER = "g++"
FLAGS = ("-O2", "-shared", "-fPIC", "-std=c++17", "-ffp-contract=off", "-pthread")

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p
SPIN_ARGUMENTS = {"spin_while_equal": [_ptr, _i64, _i64],
                  "count_and_spin": [_ptr, _ptr, _ptr, _i64, _i64],
                  "announce_sleep": [_ptr, _ptr, _i64],
                  "run_parts": [_ptr, _ptr, _ptr, _i64], "spinning_threads": []}
GAVE_UP, CHANGED, SLEEPER_WAITS, PREEMPTED = range(4)       # how a spin ended


def _compiler_version() -> str:
    result = subprocess.run([COMPILER, "--version"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def _sources() -> dict[str, str]:
    """name -> text of every C++ source and header, in name order."""
    files = sorted(resources.files("fpgacnn.golden").iterdir(), key=lambda f: f.name)
    return {f.name: f.read_text() for f in files if f.name.endswith((".cpp", ".h"))}


def _compile(sources: dict[str, str], work: Path) -> None:
    for name, text in sources.items():
        (work / name).write_text(text)
    objects = [str(work / name) for name in sources if name.endswith(".cpp")]
    subprocess.run([COMPILER, *FLAGS, "-o", str(work / LIBRARY), *objects],
                   capture_output=True, check=True)


def _load():
    sources = _sources()
    key = build_key(*sources.values(), _compiler_version(), " ".join(FLAGS))
    lib = ctypes.CDLL(str(cached_build("kernels", key, LIBRARY,
                                       lambda work: _compile(sources, work))))
    for name, argtypes in SPIN_ARGUMENTS.items():
        getattr(lib, name).argtypes = argtypes
    lib.spinning_threads.restype = _i64
    os.register_at_fork(after_in_child=lib.forget_other_threads)
    return lib


@functools.cache
def built():
    """The loaded library, or None where it cannot be built here."""
    try:
        return _load()
    except (OSError, subprocess.CalledProcessError):
        return None


@functools.cache
def library():
    """The loaded library where its int8 kernels run on this CPU (AVX-512 VNNI), else None.
    Each kernel's module declares its function's argument types."""
    lib = built()
    return lib if lib is not None and lib.int8_kernels_supported() else None


@functools.cache
def amx_usable() -> bool:
    """Whether the kernels may use AMX here (else AVX-512 VNNI); FPGACNN_AMX=0 in the
    environment keeps them on VNNI."""
    lib = library()
    return lib is not None and os.environ.get("FPGACNN_AMX") != "0" and \
        bool(lib.int8conv_amx_usable())


@functools.cache
def part_function(name: str):
    """The library's kernel `name`, void name(const void *arguments, int64_t first, int64_t
    last): one part of a job (see `run_parts`)."""
    function = getattr(built(), name)
    function.argtypes = [_ptr, _i64, _i64]
    function.restype = None
    return function


def can_spin() -> bool:
    """Whether `spin_while_equal` is there (it needs the library, not VNNI)."""
    return built() is not None


def spin_while_equal(word: ctypes.c_int64, seen: int, limit_ns: int) -> int:
    """Spins, the GIL released, until word.value != seen (CHANGED) or limit_ns have passed
    (GAVE_UP), or until the thread was seen to lose its core meanwhile (PREEMPTED)."""
    return built().spin_while_equal(ctypes.addressof(word), seen, limit_ns)


def count_and_spin(count: ctypes.c_int64, asleep: ctypes.c_int64, word: ctypes.c_int64,
                   seen: int, limit_ns: int) -> int:
    """count.value += 1 (atomically, the GIL released), then spin_while_equal(word, ...);
    returns SLEEPER_WAITS at once if asleep.value is set (see `announce_sleep`)."""
    return built().count_and_spin(ctypes.addressof(count), ctypes.addressof(asleep),
                                  ctypes.addressof(word), seen, limit_ns)


def announce_sleep(asleep: ctypes.c_int64, count: ctypes.c_int64, seen: int) -> bool:
    """asleep.value = 1, then whether count.value != seen; a `count_and_spin` racing with it
    either is seen here or sees asleep set."""
    return bool(built().announce_sleep(ctypes.addressof(asleep), ctypes.addressof(count),
                                       seen))


def spinning_threads() -> int:
    """How many threads spin in `spin_while_equal` now (and would take parts of `run_parts`)."""
    return built().spinning_threads()


def run_parts(part, arguments, bounds: list[int]) -> None:
    """part(arguments, bounds[i], bounds[i + 1]) for each i, `part` a function of the library
    (void (const void *, int64_t, int64_t)); this thread, the GIL released, takes parts beside
    the threads spinning in `spin_while_equal`. Returns when all have finished."""
    array = (_i64 * len(bounds))(*bounds)
    built().run_parts(ctypes.cast(part, _ptr), arguments, array, len(bounds) - 1)
