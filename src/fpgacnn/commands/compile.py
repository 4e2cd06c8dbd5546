"""`fpgacnn compile`: a quantized model becomes the accelerator's program and DDR image."""

import json
import sys

from fpgacnn.config import HardwareConfig

HELP = "compile a quantized model into the accelerator's program, DDR image and address map"


def add_arguments(p):
    p.add_argument("qmodel", help="quantized model (.npz from `fpgacnn quantize`)")
    p.add_argument("--config", metavar="HW.toml",
                   help="hardware configuration TOML (default: the built-in one)")
    p.add_argument("--input", metavar="X.npy",
                   help="put this input (its first sample) into the image's input region")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="output directory: ddr.bin, ddr_map.json, program.json")
    p.add_argument("--json", action="store_true", help="print program.json's content")


def summary(program) -> str:
    units = {}
    for step in program.steps:
        units[step.unit] = units.get(step.unit, 0) + 1
    counts = ", ".join(f"{n} {unit}" for unit, n in units.items())
    return (f"{program.qmodel.name}: {len(program.steps)} steps ({counts}), top "
            f"{program.top}, image {program.ddr_map.size:,} bytes")


def run(args):
    from fpgacnn.commands.export import load_qmodel
    from fpgacnn.commands.sim import load_input
    from fpgacnn.hw.compiler import compile_network

    qmodel = load_qmodel(args.qmodel)
    config = HardwareConfig.from_toml(args.config) if args.config else HardwareConfig()
    x = load_input(args.input, qmodel) if args.input else None
    program = compile_network(qmodel, config)
    program.save(args.output, x)
    if args.json:
        json.dump(program.to_json(), sys.stdout, indent=1)
        print()
    else:
        print(summary(program))
    return 0
