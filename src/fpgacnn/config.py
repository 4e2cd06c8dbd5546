"""The one hardware configuration of the engine.

The planner chooses it and writes it as TOML; the exporter's default layouts, the compiler and
the Amaranth generator read the same object. No hardware constant is written anywhere else.

    [engine]
    tm = 16        # Q: output channels computed per cycle (rows of the PE array)
    tn = 8         # L: length of the input vector each PE row consumes per cycle
    ...
"""

import dataclasses
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from fpgacnn.atomic import atomic_open
from fpgacnn.errors import UserError


# Limits of the RTL engine (hw/): descriptor field widths and the per-channel parameter block
# (bias, multiplier, shift, activation slope: four int32 words per output channel).
ENGINE_MAX_KERNEL = 15
ENGINE_MAX_STRIDE = 7
ENGINE_MAX_BITS = 16
ENGINE_PARAM_BITS_PER_CHANNEL = 4 * 32


@dataclass(frozen=True)
class HardwareConfig:
    """Parameters of the layer-serial engine (Zhang et al.'s names for the tiles)."""

    device: str = "xc7z020"
    clock_mhz: float = 100.0
    tm: int = 16                    # Q: output channels per tile, rows of the PE array
    tn: int = 8                     # L: input channels per tile, MACs per PE row
    tr: int = 16                    # output rows per tile
    tc: int = 16                    # output columns per tile
    act_bits: int = 8               # feature-map word width
    weight_bits: int = 8
    acc_bits: int = 32
    max_kernel: int = 11
    max_stride: int = 4
    ddr_width_bits: int = 64        # data width of the memory port
    burst_len: int = 16             # beats per burst
    ddr_latency: int = 20           # cycles from request to first beat
    ddr_bytes_per_cycle: float = 8.0  # sustained bandwidth at the engine clock
    post_multipliers: bool = True   # False: shift-only post-processing, for power-of-two models

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in (int, "int") and (not isinstance(value, int) or isinstance(value, bool)
                                            or value < 1):
                raise UserError(f"hardware config: {f.name} must be a positive integer, "
                                f"got {value!r}")
            if f.type in (float, "float") and (not isinstance(value, (int, float))
                                                or value <= 0):
                raise UserError(f"hardware config: {f.name} must be a positive number, "
                                f"got {value!r}")
            if f.type in (bool, "bool") and not isinstance(value, bool):
                raise UserError(f"hardware config: {f.name} must be true or false, "
                                f"got {value!r}")

    @property
    def q(self) -> int:
        return self.tm

    @property
    def l(self) -> int:  # noqa: E743 - the name the design documents use
        return self.tn

    def engine_problems(self) -> list[str]:
        """Why the RTL engine generator cannot build this configuration; empty when it can.

        The one definition of the engine's structural constraints: the planner's explorer
        keeps to it and `fpgacnn.hw.program.check_config` raises on it.

        >>> HardwareConfig(tm=16, tn=8).engine_problems()
        []
        >>> HardwareConfig(tm=64, tn=7, act_bits=32, weight_bits=32).engine_problems()[0]
        'tn * act_bits = 224 must equal ddr_width_bits = 64 (one feature row per memory word)'
        """
        problems = []
        if self.tn * self.act_bits != self.ddr_width_bits:
            problems.append(f"tn * act_bits = {self.tn * self.act_bits} must equal "
                            f"ddr_width_bits = {self.ddr_width_bits} (one feature row per "
                            f"memory word)")
        shared_lanes = math.gcd(self.tm, self.tn) * self.act_bits
        if self.tm % self.tn and shared_lanes % 8:
            problems.append(f"gcd(tm, tn) * act_bits = {shared_lanes} must be a multiple of 8 "
                            f"when tm = {self.tm} is not a multiple of tn = {self.tn} (output "
                            f"tiles share channel planes; the writer keeps the other tile's "
                            f"lanes by byte strobes)")
        if (self.tm * self.weight_bits) % self.act_bits:
            problems.append(f"tm * weight_bits = {self.tm * self.weight_bits} must be a "
                            f"multiple of act_bits = {self.act_bits} (whole weight rows per "
                            f"memory word)")
        param_bits = self.tm * ENGINE_PARAM_BITS_PER_CHANNEL
        if param_bits % self.ddr_width_bits:
            problems.append(f"tm * {ENGINE_PARAM_BITS_PER_CHANNEL} = {param_bits} bits of "
                            f"per-channel parameters must be a whole number of "
                            f"{self.ddr_width_bits}-bit words")
        if self.max_kernel > ENGINE_MAX_KERNEL or self.max_stride > ENGINE_MAX_STRIDE:
            problems.append(f"max_kernel = {self.max_kernel} and max_stride = "
                            f"{self.max_stride} must be at most {ENGINE_MAX_KERNEL} and "
                            f"{ENGINE_MAX_STRIDE} (descriptor fields)")
        if max(self.act_bits, self.weight_bits) > ENGINE_MAX_BITS:
            problems.append(f"act_bits = {self.act_bits} and weight_bits = "
                            f"{self.weight_bits} must be at most {ENGINE_MAX_BITS}")
        return problems

    def with_(self, **changes) -> "HardwareConfig":
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise UserError(f"hardware config: unknown key(s) {sorted(unknown)}; known: "
                            f"{', '.join(f.name for f in fields(self))}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_toml(cls, path) -> "HardwareConfig":
        return cls().with_(**engine_keys(path))

    def to_toml(self) -> str:
        lines = ["[engine]"]
        for f in fields(self):
            lines.append(f"{f.name} = {_toml_value(getattr(self, f.name))}")
        return "\n".join(lines) + "\n"

    def save(self, path) -> None:
        with atomic_open(path) as f:
            f.write(self.to_toml())


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else repr(value)


def read_toml(path, what: str) -> dict:
    """The TOML file at `path`; a missing or malformed file is a UserError naming `what`.

    For example `read_toml("layouts.toml", "layout file")["layouts"]`.
    """
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{what} {path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{what} {path}: {e}") from None


def engine_keys(path) -> dict:
    """The keys of a hardware configuration file: its [engine] table, or the whole file."""
    data = read_toml(path, "hardware config")
    return dict(data.get("engine", data))
