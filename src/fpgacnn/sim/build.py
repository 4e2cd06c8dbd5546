"""Building the Verilator simulator of a `SimTop`, cached by a hash of everything that goes in.

The cache key covers the generated Verilog (`simulation_verilog_text`: no `rst` port), the
harness sources, the -D macros derived from the port layouts, the Verilator version and the
C++ optimization flags; the cache lives in `$FPGACNN_CACHE` or `~/.cache/fpgacnn`, one
directory per key.

>>> from fpgacnn.config import HardwareConfig
>>> from fpgacnn.hw.verilog import MemoryCopy, SimTop
>>> exe = build_simulator(SimTop(MemoryCopy.from_config(HardwareConfig())))  # doctest: +SKIP
"""

import shutil
import subprocess
import sys
from importlib import resources

from fpgacnn.cache import build_key, cache_root, cached_build
from fpgacnn.errors import UserError
from fpgacnn.hw.memport import ADDR_WIDTH, burst_layout, read_beat_layout, write_beat_layout
from fpgacnn.hw.verilog import TOP_NAME, simulation_verilog_text

HARNESS_FILES = ("harness.cpp", "ddr.h", "bits.h")
EXECUTABLE = "harness"
KIND = "verilator"            # the simulators' folder in the cache
MAX_DATA_BITS = 512   # the harness passes byte strobes in a 64-bit integer
# Verilator's makefile compiles the per-cycle code with OPT_FAST (-Os by default, which also
# keeps its VL_* helpers out of line) after any -CFLAGS; -O2 there runs the engine about 25%
# faster, -O3 faster still (docs/benchmarks.md). The once-only construction code (OPT_SLOW) is
# large and needs no speed: -O1.
MAKE_OPTIMIZATION = "OPT_FAST=-O3 OPT_GLOBAL=-O2 OPT_SLOW=-O1"


def harness_defines(top):
    """-D macros for the harness: data width and the bit offsets of the payload fields."""
    if top.data_width > MAX_DATA_BITS:
        raise UserError(f"hardware config: ddr_width_bits {top.data_width} is above the "
                        f"simulator's limit of {MAX_DATA_BITS}")
    ar = burst_layout(ADDR_WIDTH)
    r = read_beat_layout(top.data_width)
    w = write_beat_layout(top.data_width)
    return {
        "DATA_BITS": top.data_width,
        "AR_ADDR_LSB": ar["addr"].offset, "AR_ADDR_BITS": ar["addr"].width,
        "AR_LEN_LSB": ar["len"].offset, "AR_LEN_BITS": ar["len"].width,
        "R_LAST_LSB": r["last"].offset,
        "W_STRB_LSB": w["strb"].offset, "W_LAST_LSB": w["last"].offset,
    }


def _verilator_version():
    try:
        result = subprocess.run(["verilator", "--version"], capture_output=True, text=True,
                                check=True)
    except FileNotFoundError:
        raise UserError("verilator: not found on PATH (Debian: apt-get install verilator)") \
            from None
    return result.stdout.strip()


def _harness_sources():
    package = resources.files("fpgacnn.sim")
    return {name: package.joinpath(name).read_text() for name in HARNESS_FILES}


def build_simulator(top, jobs=2, quiet=True, trace=False):
    """Path of the Verilator executable simulating `top` (a SimTop); builds it if not cached.

    With `trace`, the executable can write a VCD waveform (`--vcd FILE`); it runs slower.
    """
    verilog = simulation_verilog_text(top)
    defines = harness_defines(top)
    if trace:
        defines["TRACE"] = 1
    sources = _harness_sources()
    key = build_key(verilog, repr(sorted(defines.items())), repr(sorted(sources.items())),
                    _verilator_version() + MAKE_OPTIMIZATION)

    def compile_into(work):
        print(f"fpgacnn: building the Verilator simulator into {cache_root() / KIND / key} "
              f"(once per design)", file=sys.stderr)
        _compile(work, verilog, defines, sources, jobs, quiet)
    return cached_build(KIND, key, EXECUTABLE, compile_into)


def _compile(work, verilog, defines, sources, jobs, quiet):
    (work / f"{TOP_NAME}.v").write_text(verilog)
    for name, text in sources.items():
        (work / name).write_text(text)
    cflags = " ".join(f"-D{k}={v}" for k, v in defines.items()) + f" -I{work}"
    command = ["verilator", "--cc", "--exe", "--build", "-O3", "-j", str(jobs),
               *(["--trace"] if "TRACE" in defines else []),
               "-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast",
               "--x-initial", "fast", "--top-module", TOP_NAME, "--Mdir", str(work / "obj"),
               "-CFLAGS", cflags, "-MAKEFLAGS", MAKE_OPTIMIZATION, "-o", str(work / EXECUTABLE),
               f"{TOP_NAME}.v", "harness.cpp"]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise RuntimeError(f"verilator build failed in {work}:\n{tail}")
    if not quiet:
        print(result.stdout, file=sys.stderr)
    shutil.rmtree(work / "obj", ignore_errors=True)
