"""`fpgacnn sim`: run a compiled model on the accelerator in Verilator and compare every step with
the golden model; a mismatch names the first layer that differs and its first wrong element."""

import json
import sys
from pathlib import Path

import numpy as np

from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError

HELP = "simulate a quantized model on the accelerator (Verilator) against the golden model"


def add_arguments(p):
    p.add_argument("qmodel", help="quantized model (.npz from `fpgacnn quantize`)")
    p.add_argument("--config", help="hardware configuration TOML (default: the built-in one)")
    p.add_argument("--input", required=True, metavar="X.npy",
                   help="input tensor: integers in the model's input format, or floats to be "
                        "quantized; the first sample is run")
    p.add_argument("--max-cycles", type=int, default=None,
                   help="stop a step at this many cycles and say where the controller was")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def load_input(path, qmodel):
    """The integer input of batch 1 from X.npy (floats are quantized with the model's format)."""
    from fpgacnn.golden import quantize_input

    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"input {path}: no such file") from None
    except ValueError as e:
        raise UserError(f"input {path}: not a .npy array ({e})") from None
    expected = next(iter(qmodel.input_shapes.values()))
    if x.ndim == len(expected) - 1:
        x = x[None]
    if x.ndim != len(expected) or tuple(x.shape[1:]) != tuple(expected[1:]):
        raise UserError(f"input {path}: shape {x.shape}, the model takes (N,) + "
                        f"{tuple(expected[1:])}")
    if not np.issubdtype(x.dtype, np.integer):
        x = quantize_input(qmodel, x)
    return x[:1]


def report_of(results):
    from fpgacnn.sim.check import first_mismatch

    report = {"layers": [r.to_dict() for r in results],
              "total_cycles": sum(r.cycles for r in results),
              "total_mismatches": sum(r.mismatches for r in results)}
    wrong = first_mismatch(results)
    if wrong:
        report["first_mismatch"] = {"layer": wrong.name, "index": list(wrong.first_mismatch)}
    return report


def text_report(report):
    lines = [f"{'layer':<28}{'unit':<9}{'cycles':>12}{'planned':>12}{'mismatches':>12}"]
    for layer in report["layers"]:
        lines.append(f"{layer['name']:<28}{layer['unit']:<9}{layer['cycles']:>12}"
                     f"{layer['planned_cycles']:>12}{layer['mismatches']:>8} / "
                     f"{layer['elements']}")
    lines.append(f"{'total':<37}{report['total_cycles']:>12}{'':>12}"
                 f"{report['total_mismatches']:>8}")
    if "first_mismatch" in report:
        wrong = report["first_mismatch"]
        lines.append(f"first mismatch: layer {wrong['layer']} at (N, C, H, W) = "
                     f"{tuple(wrong['index'])}")
    return "\n".join(lines)


def run(args):
    from tqdm import tqdm

    from fpgacnn.hw.compiler import compile_network
    from fpgacnn.quant.serialize import load_qmodel
    from fpgacnn.sim.check import simulate

    if not Path(args.qmodel).is_file():
        raise UserError(f"qmodel {args.qmodel}: no such file")
    qmodel = load_qmodel(args.qmodel)
    config = HardwareConfig.from_toml(args.config) if args.config else HardwareConfig()
    x = load_input(args.input, qmodel)
    program = compile_network(qmodel, config)
    with tqdm(total=len(program.steps), desc="sim", unit=" steps", file=sys.stderr,
              leave=False) as bar:
        results = simulate(qmodel, x, config, max_cycles=args.max_cycles,
                           progress=lambda name: bar.update(), program=program)
    report = report_of(results)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print(text_report(report))
    return 0 if report["total_mismatches"] == 0 else 1
