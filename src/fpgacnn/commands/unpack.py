"""`fpgacnn unpack`: a memory file in a layout back to the tensor (.npy)."""

import json

import numpy as np

from fpgacnn.atomic import atomic_open
from fpgacnn.commands.pack import add_layout_arguments, format_of, layout_from_args, \
    options_from_args
from fpgacnn.errors import UserError
from fpgacnn.export import read_tensor

HELP = "read a .coe/.mem/.mif/.bin/.h/.npy memory file in a layout back to a tensor (.npy)"


def add_arguments(parser) -> None:
    parser.add_argument("file", help="the memory file (its banks are found by name)")
    add_layout_arguments(parser)
    parser.add_argument("--shape", required=True, help="tensor shape, e.g. 256,256,3,3")
    parser.add_argument("-o", "--output", required=True, help="output .npy file")


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise UserError(f"--shape {text!r} is not a comma-separated list of integers") from None
    if not shape or min(shape) < 1:
        raise UserError(f"--shape {text!r}: every size must be >= 1")
    return shape


def run(args):
    layout = layout_from_args(args)
    shape = parse_shape(args.shape)
    tensor = read_tensor(args.file, layout, shape, format_of(args, args.file),
                         options_from_args(args))
    with atomic_open(args.output, "wb") as f:
        np.save(f, tensor, allow_pickle=False)
    report = {"file": args.file, "output": args.output, "shape": list(shape),
              "min": int(tensor.min()), "max": int(tensor.max())}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.file} -> {args.output}: shape {shape}, values in "
              f"[{report['min']}, {report['max']}]")
    return 0
