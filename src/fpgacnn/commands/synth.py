"""`fpgacnn synth`: yosys synth_xilinx on the engine's Verilog, beside the planner's estimate."""

import json
import sys

from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError

HELP = "synthesise the engine with yosys (synth_xilinx) and compare with the planner's estimate"
DESIGNS = ("engine", "accelerator", "memcopy")
ROWS = (("dsp", "DSP"), ("bram18", "RAMB18"), ("bram36", "RAMB36"),
        ("bram18_units", "BRAM (RAMB18 units)"), ("lut", "LUT"), ("ff", "FF"))


def add_arguments(p):
    p.add_argument("--config", help="hardware configuration TOML (default: the built-in one)")
    p.add_argument("--design", choices=DESIGNS, default="engine",
                   help="what to synthesise: the engine, the accelerator (engine and vector "
                        "unit), or the memory-copy test design")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def build_design(name, config):
    """The accelerator `name` for `config`, wrapped in the harness top-level."""
    from fpgacnn.hw.verilog import MemoryCopy, SimTop

    if name == "memcopy":
        return SimTop(MemoryCopy.from_config(config))
    if name == "accelerator":
        from fpgacnn.hw.accelerator import accelerator_top
        return accelerator_top(config)
    try:
        from fpgacnn.hw.verilog import engine_top
        return engine_top(config)
    except ImportError:
        raise UserError("synth: the engine (fpgacnn.hw.engine) is not part of this version; "
                        "--design memcopy synthesises the memory side alone") from None


def synth_report(config, design="engine", progress=None):
    """The JSON report: `yosys` and `planned` resources, their ratios, and yosys's cells."""
    from fpgacnn.hw.synth import planned_resources, relative_difference, synthesize
    from fpgacnn.plan.devices import load_device

    dsp_type = load_device(config.device).dsp_type
    measured, cells = synthesize(build_design(design, config), dsp_type, progress)
    planned = planned_resources(config, dsp_type, design)
    yosys, plan = measured.to_dict(), planned.to_dict()
    return {
        "device": config.device,
        "design": design,
        "yosys": yosys,
        "planned": plan,
        "difference": {key: relative_difference(yosys[key], plan[key]) for key, _ in ROWS},
        "cells": dict(sorted(cells.items())),
        "notes": missing_from_plan(plan),
    }


def missing_from_plan(plan):
    """A note naming the resources the planner gives no figure for (none: no note)."""
    missing = [label for key, label in ROWS if plan[key] is None]
    return [f"the planner has no estimate of {', '.join(missing)} ('-', null)"] if missing else []


def text_report(report):
    lines = [f"{report['design']} on {report['device']} (yosys synth_xilinx)",
             f"{'resource':<22}{'yosys':>10}{'planned':>10}{'difference':>12}"]
    for key, label in ROWS:
        planned = report["planned"][key]
        diff = report["difference"][key]
        lines.append(f"{label:<22}{report['yosys'][key]:>10}"
                     f"{'-' if planned is None else planned:>10}"
                     f"{'-' if diff is None else f'{diff:+.1%}':>12}")
    return "\n".join(lines + report["notes"])


def run(args):
    from tqdm import tqdm

    config = HardwareConfig.from_toml(args.config) if args.config else HardwareConfig()
    with tqdm(desc="yosys", unit=" passes", file=sys.stderr, leave=False) as bar:
        def progress(name):
            bar.set_postfix_str(name)
            bar.update()
        report = synth_report(config, args.design, progress)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print(text_report(report))
    return 0
