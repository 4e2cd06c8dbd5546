"""`fpgacnn build MODEL --device NAME -o DIR`: the whole flow, and a report of it.

    fpgacnn build zoo:digits --device xc7z020 --calib calib.npy --data test.npz -o build/digits

Steps (progress on stderr, each a library call of the command of the same name): quantize
(the `quantize` options), verify (accuracy with labels, bit-exactness against onnxruntime),
plan (explore the engine for the device, or `--config` as given; roofline and layer plots),
export (memory images, DDR image, test vectors of the first sample), compile (the program of
descriptors), verilog (the accelerator's top-level), simulate (the first sample in Verilator,
every step compared with the golden model), synth (yosys synth_xilinx, run on the other core
while simulate builds and runs). DIR then holds
`report.md` and `report.json`: accuracy, mismatches, cycles per step, GOPS at the configured
clock from the simulated cycles, and resources (planner vs yosys). Exit status 1 when the
simulated accelerator disagrees with the golden model.
"""

import argparse
import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fpgacnn.atomic import atomic_open
from fpgacnn.commands import plan as plan_command
from fpgacnn.commands.export import export_with_progress
from fpgacnn.commands.quantize import add_quant_arguments, quantize_model
from fpgacnn.commands.verify import load_data
from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.export import FORMATS

HELP = "quantize, verify, plan, export, compile, simulate and synthesize a model; one report"


def add_arguments(p):
    p.add_argument("model", help="zoo:NAME, FILE.onnx, FILE.cfg[:FILE.weights] or "
                                 "package.module:factory")
    p.add_argument("--device", required=True, help="device name (e.g. xc7z020) or device .toml")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="where everything goes")
    add_quant_arguments(p)
    p.add_argument("--data", metavar="FILE.npz",
                   help="test inputs `x` and optional labels `y` (accuracy); the first sample "
                        "is exported and simulated (default: --random seeded inputs)")
    p.add_argument("--random", type=int, default=16, metavar="N",
                   help="seeded random test inputs when --data is not given (default 16)")
    p.add_argument("--config", metavar="HW.toml",
                   help="hardware configuration to plan as given (default: explore)")
    p.add_argument("--set", default="", metavar="KEY=VALUE,...",
                   help="configuration keys the plan keeps, e.g. tr=8,tc=8")
    p.add_argument("--format", default="coe", choices=sorted(FORMATS),
                   help="format of the memory files (default coe)")
    p.add_argument("--no-sim", action="store_true", help="skip the Verilator simulation")
    p.add_argument("--no-synth", action="store_true", help="skip yosys")
    p.add_argument("--json", action="store_true", help="print report.json on stdout")


class Build:
    """What the steps share: the arguments, the output directory, and what each step made."""

    def __init__(self, args):
        self.args = args
        self.out = Path(args.output)
        self.qmodel = self.config = self.x = self.y = self.program = None
        self.report = {"model": args.model, "device": args.device, "steps": {}}

    @property
    def qmodel_path(self) -> Path:
        return self.out / "model.q.npz"

    @property
    def config_path(self) -> Path:
        return self.out / "hw.toml"


def run(args):
    _check_arguments(args)
    build = Build(args)
    build.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        early = {}
        for number, (name, step) in enumerate(STEPS, 1):
            if name == "simulate":      # yosys on the other core while Verilator builds and runs
                early["synth"] = pool.submit(_timed, synth_step, build)
            _progress(f"[{number}/{len(STEPS)}] {name}: {step.__doc__.splitlines()[0]}")
            section = early[name].result() if name in early else _timed(step, build)
            build.report["steps"][name] = section
            _progress(f"[{number}/{len(STEPS)}] {name}: {_outcome(section)} "
                      f"({section['seconds']} s)")
    build.report["seconds"] = round(time.monotonic() - started, 1)
    write_reports(build)
    if args.json:
        json.dump(build.report, sys.stdout, indent=1)
        print()
    else:
        print(f"built {args.model} for {args.device} in {build.report['seconds']:.0f} s: "
              f"{build.out / 'report.md'}")
    mismatches = build.report["steps"]["simulate"].get("mismatches")
    return 1 if mismatches else 0


def _timed(step, build) -> dict:
    begun = time.monotonic()
    section = step(build)
    section["seconds"] = round(time.monotonic() - begun, 1)
    return section


def _check_arguments(args):
    """Refuse a bad device, configuration or input file before the long steps."""
    from fpgacnn.config import engine_keys
    from fpgacnn.plan.devices import load_device

    load_device(args.device)
    if args.config:
        HardwareConfig().with_(**engine_keys(args.config))
    for option, path in (("--data", args.data), ("--calib", args.calib)):
        if path and not Path(path).is_file():
            raise UserError(f"{option} {path}: no such file")


def _progress(line):
    print(line, file=sys.stderr, flush=True)


def _outcome(section) -> str:
    status = section.get("status", "done")
    return status if "reason" not in section else f"{status} ({section['reason']})"


def command_args(module, argv):
    """`argv` parsed as the arguments of the command `module` (its own defaults and checks)."""
    parser = argparse.ArgumentParser(prog=f"fpgacnn {module.__name__.rsplit('.', 1)[-1]}")
    module.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


# ---- the steps, in order -------------------------------------------------------------------

def quantize_step(build):
    """integers for every layer, calibrated as asked"""
    build.qmodel = quantize_model(build.args)
    build.qmodel.save(build.qmodel_path)
    q = build.qmodel
    return {"file": build.qmodel_path.name, "scheme": q.scheme, "mode": q.mode,
            "rounding": q.rounding, "layers": len(q.layers)}


def verify_step(build):
    """accuracy on the test inputs and bit-exactness against onnxruntime"""
    from fpgacnn.quant.verify import verify

    build.x, build.y = load_data(build.args.data, build.qmodel, build.args.random)
    report = verify(build.qmodel, build.x, build.y)
    counted = [l for l in report.layers if l.onnx_mismatches is not None]
    return {"samples": report.samples, "labels": build.y is not None,
            "float_accuracy": report.float_accuracy, "int_accuracy": report.int_accuracy,
            "onnxruntime": report.onnx_status,
            "onnx_mismatches": sum(l.onnx_mismatches for l in counted) if counted else None,
            "onnx_elements": sum(l.elements for l in counted) if counted else None,
            "requant_modes": sorted({l.requant.mode for l in build.qmodel.layers if l.requant})}


def plan_step(build):
    """the engine for the device (explored, or the given configuration) and its plots"""
    from fpgacnn.hw.program import check_config

    argv = [build.qmodel_path, "--device", build.args.device, "--plots", build.out / "plots",
            "-o", build.config_path, "--set", build.args.set]
    argv += ["--config", build.args.config] if build.args.config else ["--explore"]
    report = plan_command.plan_report(command_args(plan_command, argv))
    build.config = HardwareConfig.from_toml(build.config_path)
    check_config(build.config)
    build.report["plan"] = report
    return {"config": build.config_path.name, "planned_cycles": report["totals"]["cycles"],
            "plots": [str(Path(p).relative_to(build.out)) for p in report.get("plots", [])]}


def export_step(build):
    """memory images, the DDR image and the test vectors of the first sample"""
    manifest = export_with_progress(build.qmodel, build.out / "export", build.args.format,
                                    build.config, vectors=build.x[:1])
    return {"directory": "export", "files": len(manifest["files"]),
            "bytes": sum(f["bytes"] for f in manifest["files"].values())}


def compile_step(build):
    """the program: one descriptor per step, in its DDR image"""
    try:
        from fpgacnn.hw.compiler import compile_network
    except ImportError:
        return {"status": "not run", "reason": "no network compiler (fpgacnn.hw.compiler) "
                                               "in this version"}
    build.program = compile_network(build.qmodel, build.config)
    build.program.save(build.out / "program", _sample(build))
    units = [s.unit for s in build.program.steps]
    return {"directory": "program", "top": build.program.top,
            "steps": {unit: units.count(unit) for unit in dict.fromkeys(units)}}


def verilog_step(build):
    """the accelerator's top-level as Verilog"""
    from fpgacnn.hw.verilog import TOP_NAME, verilog_text

    top = _top_name(build)
    text = verilog_text(_top(top, build.config))
    path = build.out / "verilog" / f"{TOP_NAME}.v"
    path.parent.mkdir(exist_ok=True)
    with atomic_open(path) as f:
        f.write(text)
    return {"file": str(path.relative_to(build.out)), "top": top, "bytes": len(text)}


def simulate_step(build):
    """the first sample on the accelerator in Verilator, each step against the golden model"""
    if build.args.no_sim:
        return {"status": "skipped", "reason": "--no-sim"}
    from fpgacnn.sim.check import simulate

    device = _device(build)
    try:
        results = simulate(build.qmodel, _sample(build), build.config, device=device,
                           progress=lambda name: _progress(f"  simulated {name}"))
    except UserError as e:
        return {"status": "not run", "reason": str(e)}
    summary = simulation_summary(results, layer_macs(build.qmodel), build.config.clock_mhz)
    if device is not None:
        with atomic_open(build.out / "program" / "ddr_after.bin", "wb") as f:
            f.write(device.memory)
        summary["memory"] = "program/ddr_after.bin"
    return summary


def _device(build):
    """The simulated device of the compiled program (None without one: `simulate` makes its
    own), kept so that its memory can be saved after the run."""
    if build.program is None:
        return None
    from fpgacnn.sim.network import program_device
    return program_device(build.program, build.config)


def synth_step(build):
    """yosys synth_xilinx on the accelerator, beside the planner's estimate"""
    if build.args.no_synth:
        return {"status": "skipped", "reason": "--no-synth"}
    from fpgacnn.commands.synth import DESIGNS, synth_report

    design = _top_name(build)
    if design not in DESIGNS:
        return {"status": "not run", "reason": f"synth cannot build the {design} top-level"}
    from tqdm import tqdm

    with tqdm(desc="  yosys", unit=" passes", file=sys.stderr, leave=False) as bar:
        def progress(name):
            bar.set_postfix_str(name, refresh=False)
            bar.update()
        report = synth_report(build.config, design, progress)
    return {"design": design, "yosys": report["yosys"], "planned": report["planned"],
            "difference": report["difference"], "notes": report.get("notes", [])}


STEPS = (("quantize", quantize_step), ("verify", verify_step), ("plan", plan_step),
         ("export", export_step), ("compile", compile_step), ("verilog", verilog_step),
         ("simulate", simulate_step), ("synth", synth_step))


def _sample(build):
    from fpgacnn.golden import quantize_input

    x = build.x[:1]
    return x if np.issubdtype(x.dtype, np.integer) else quantize_input(build.qmodel, x)


def _top_name(build) -> str:
    return build.program.top if build.program is not None else "engine"


def _top(name, config):
    if name == "accelerator":
        from fpgacnn.hw.accelerator import accelerator_top
        return accelerator_top(config)
    from fpgacnn.hw.verilog import engine_top
    return engine_top(config)


# ---- figures -------------------------------------------------------------------------------

def layer_macs(qmodel) -> dict:
    """Multiply-accumulates of each layer for one sample (`ir.summary.node_macs`)."""
    from fpgacnn.ir.summary import node_macs

    return {layer.name: node_macs(layer, (1,) + tuple(qmodel.shapes[layer.name][1:]))
            for layer in qmodel.layers}


def gops(macs, cycles, clock_mhz):
    """2 * MACs operations in `cycles` at `clock_mhz`, in 1e9 operations per second."""
    return 2 * macs * clock_mhz * 1e6 / cycles / 1e9 if cycles else None


def step_layers(step_name) -> list[str]:
    """The layers a simulated step computed: "conv2+pool1" -> conv2, pool1 ("cat.in0": cat)."""
    return re.sub(r"\.in\d+$", "", step_name).split("+")


def simulation_summary(results, macs, clock_mhz) -> dict:
    """Per step: cycles, planned cycles, MACs, GOPS, mismatches; and the totals."""
    steps = []
    for r in results:
        step_macs = sum(macs.get(name, 0) for name in step_layers(r.name))
        steps.append(r.to_dict() | {"macs": step_macs,
                                    "gops": gops(step_macs, r.cycles, clock_mhz)})
    cycles = sum(r.cycles for r in results)
    total_macs = sum(s["macs"] for s in steps)
    return {"sample": 0, "steps": steps, "cycles": cycles, "macs": total_macs,
            "clock_mhz": clock_mhz, "gops": gops(total_macs, cycles, clock_mhz),
            "mismatches": sum(r.mismatches for r in results),
            "elements": sum(r.elements for r in results)}


# ---- the report ----------------------------------------------------------------------------

def write_reports(build):
    with atomic_open(build.out / "report.json") as f:
        json.dump(build.report, f, indent=1)
        f.write("\n")
    from fpgacnn.commands._build_report import markdown
    with atomic_open(build.out / "report.md") as f:
        f.write(markdown(build.report))
