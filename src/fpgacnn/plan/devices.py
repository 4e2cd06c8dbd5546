"""The device library: what an FPGA offers (DSPs, block RAMs, logic, DDR bandwidth).

Each device is a TOML file in `fpgacnn/plan/devices/` whose comments cite the data sheet each
figure comes from. A user adds a device by passing the path of their own TOML file wherever a
device name is accepted.

>>> dev = load_device("xc7z020")
>>> dev.dsp, dev.bram18
(220, 280)
"""

import tomllib
from dataclasses import MISSING, dataclass, fields
from importlib import resources
from pathlib import Path

from fpgacnn.errors import UserError

DSP_TYPES = ("DSP48E1", "DSP48E2")


@dataclass(frozen=True)
class Device:
    """One FPGA: resource counts as the data sheet gives them, DDR peak bandwidth in GB/s."""

    name: str
    family: str
    dsp: int
    dsp_type: str
    bram36: int
    lut: int
    ff: int
    ddr_gbps: float
    clock_mhz: float
    uram: int = 0
    board: str = ""

    def __post_init__(self):
        for key in ("dsp", "bram36", "lut", "ff", "uram"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UserError(f"device {self.name}: {key} must be a non-negative integer, "
                                f"got {value!r}")
        for key in ("ddr_gbps", "clock_mhz"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or value <= 0:
                raise UserError(f"device {self.name}: {key} must be a positive number, "
                                f"got {value!r}")
        if self.dsp_type not in DSP_TYPES:
            raise UserError(f"device {self.name}: dsp_type must be one of {DSP_TYPES}, "
                            f"got {self.dsp_type!r}")

    @property
    def bram18(self) -> int:
        """Each RAMB36 splits into two independent RAMB18."""
        return 2 * self.bram36

    def ddr_bytes_per_cycle(self, clock_mhz: float) -> float:
        """Peak DDR bytes per engine clock cycle at `clock_mhz`."""
        return self.ddr_gbps * 1e3 / clock_mhz


def _device_dir():
    return resources.files("fpgacnn.plan") / "devices"


def known_devices() -> list[str]:
    """Names of the devices shipped with fpgacnn."""
    return sorted(p.name[:-5] for p in _device_dir().iterdir() if p.name.endswith(".toml"))


def load_device(name_or_path: str) -> Device:
    """A shipped device by name (`xc7z020`) or a user's device TOML file by path."""
    if str(name_or_path).endswith(".toml"):
        path = Path(name_or_path)
        if not path.is_file():
            raise UserError(f"device file {path}: no such file")
        text = path.read_text()
    else:
        entry = _device_dir() / f"{name_or_path}.toml"
        if not entry.is_file():
            raise UserError(f"unknown device {name_or_path!r}; known devices: "
                            f"{', '.join(known_devices())} (or a path to a device .toml)")
        text = entry.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"device {name_or_path}: {e}") from None
    known = {f.name for f in fields(Device)}
    unknown = set(data) - known
    missing = {f.name for f in fields(Device) if f.default is MISSING} - set(data)
    if unknown:
        raise UserError(f"device {name_or_path}: unknown key(s) {sorted(unknown)}")
    if missing:
        raise UserError(f"device {name_or_path}: missing key(s) {sorted(missing)}")
    return Device(**data)
