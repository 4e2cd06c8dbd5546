"""Running an accelerator in Verilator the way a board driver runs it on the FPGA.

`SimulatedDevice` is the interface a board driver would implement: load a DDR image, write
or read bytes of it, start a run with its arguments, wait for it to finish, read results back.
Here each run is one execution of the cached Verilator harness, with the DDR model configured
from the hardware config (latency, bytes per cycle).

>>> from fpgacnn.config import HardwareConfig
>>> from fpgacnn.hw.verilog import MemoryCopy
>>> config = HardwareConfig()
>>> device = SimulatedDevice(MemoryCopy.from_config(config), config)   # doctest: +SKIP
>>> device.load(bytes(range(256)) * 16)                                # doctest: +SKIP
>>> device.start(0, 2048, 100); device.wait().cycles                   # doctest: +SKIP
72
>>> device.read(2048, 4)                                               # doctest: +SKIP
b'\\x00\\x01\\x02\\x03'
"""

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fpgacnn.errors import UserError
from fpgacnn.hw.verilog import N_ARGS, SimTop
from fpgacnn.sim.build import build_simulator

DEFAULT_MAX_CYCLES = 50_000_000


@dataclass(frozen=True)
class RunResult:
    """What one run reports: cycles from `start` until `busy` fell, and memory traffic."""

    finished: bool
    cycles: int
    status: int
    bytes_read: int
    bytes_written: int
    seconds: float = 0.0        # wall-clock time of the simulation loop
    cpu_seconds: float = 0.0    # processor time of the same loop (steadier on a busy machine)

    @property
    def cycles_per_second(self):
        return self.cycles / self.seconds if self.seconds > 0 else float("inf")


class SimulationError(UserError):
    """A run that did not finish: cycle limit, or memory accessed outside the image."""


class SimulatedDevice:
    """An accelerator simulated by Verilator against a DDR model of `config`."""

    def __init__(self, accelerator, config, max_outstanding=16, trace=False):
        """`accelerator`: a component following hw/verilog.py's conventions, or a SimTop."""
        self.top = accelerator if isinstance(accelerator, SimTop) \
            else SimTop(accelerator, max_outstanding)
        self.config = config
        self.max_outstanding = self.top.max_outstanding
        self.executable = build_simulator(self.top, trace=trace)
        self.vcd = None         # with trace=True: the path of the VCD file the next run writes
        self.memory = bytearray()
        self._args = None

    def load(self, image):
        """Make `image` (bytes) the whole DDR contents; its length is the memory size."""
        self.memory = bytearray(image)

    def write(self, offset, data):
        self._check_range(offset, len(data))
        self.memory[offset:offset + len(data)] = data

    def read(self, offset, size):
        self._check_range(offset, size)
        return bytes(self.memory[offset:offset + size])

    def start(self, *args):
        """Start a run with up to N_ARGS 32-bit arguments (e.g. the program's address)."""
        if len(args) > N_ARGS:
            raise UserError(f"start: at most {N_ARGS} arguments, got {len(args)}")
        for value in args:
            if not 0 <= value < 1 << 32:
                raise UserError(f"start: argument {value} does not fit 32 bits")
        self._args = list(args) + [0] * (N_ARGS - len(args))

    def wait(self, max_cycles=DEFAULT_MAX_CYCLES):
        """Run the started job to the end; raise SimulationError if it does not finish."""
        result = self.run_to(max_cycles)
        if not result.finished:
            where = self.describe_status(result.status)
            raise SimulationError(f"simulation stopped at the cycle limit of {max_cycles} "
                                  f"cycles; controller at {where}")
        return result

    def run_to(self, max_cycles):
        """Run the started job for at most `max_cycles`; the memory is updated either way."""
        if self._args is None:
            raise UserError("wait: no run started")
        args, self._args = self._args, None
        with tempfile.TemporaryDirectory(prefix="fpgacnn-sim-") as tmp:
            image_in, image_out = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
            image_in.write_bytes(self.memory)
            command = [str(self.executable), str(image_in), str(image_out),
                       "--max-cycles", str(max_cycles),
                       "--latency", str(self.config.ddr_latency),
                       "--bytes-per-cycle", repr(float(self.config.ddr_bytes_per_cycle)),
                       "--max-outstanding", str(self.max_outstanding),
                       "--args", ",".join(str(a) for a in args)]
            if self.vcd:
                command += ["--vcd", str(self.vcd)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"simulator failed: {done.stderr.strip()}")
            report = json.loads(done.stdout.strip().splitlines()[-1])
            self.memory = bytearray(image_out.read_bytes())
        if report["error"]:
            raise SimulationError(f"{report['error']} (cycle {report['cycles']}, controller "
                                  f"at {self.describe_status(report['status'])})")
        return RunResult(report["finished"], report["cycles"], report["status"],
                         report["bytes_read"], report["bytes_written"], report["seconds"],
                         report["cpu_seconds"])

    def describe_status(self, status):
        """Where the controller was, read from the status word."""
        return self.top.describe_status(status)

    def _check_range(self, offset, size):
        if offset < 0 or size < 0 or offset + size > len(self.memory):
            raise UserError(f"memory: bytes {offset}..{offset + size} are outside the "
                            f"{len(self.memory)}-byte image")
