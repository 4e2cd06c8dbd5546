"""`fpgacnn pack`: one tensor (.npy) to a memory file in a layout."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.export import FORMATS, FileOptions, Layout, write_tensor
from fpgacnn.export.layoutfile import LayoutFile
from fpgacnn.export.words import WordGeometry

HELP = "write one tensor (.npy) to a .coe/.mem/.mif/.bin/.h/.npy memory file in a layout"


def add_layout_arguments(parser) -> None:
    """The layout and format options shared by `pack` and `unpack`."""
    parser.add_argument("--layout", required=True,
                        help="einops pattern 'LEFT -> ROWS LANES', or a layout name from "
                             "--layouts, e.g. '(k j) (p i) x y -> (p k x y) (i j)'")
    parser.add_argument("--layouts", metavar="FILE", help="layout file (TOML) for named layouts")
    parser.add_argument("--sizes", default="", help="sizes of split axes, e.g. j=2,i=16")
    parser.add_argument("--bits", type=int, help="width of one value (default 8)")
    sign = parser.add_mutually_exclusive_group()
    sign.add_argument("--signed", dest="signed", action="store_true", default=None,
                      help="two's complement values")
    sign.add_argument("--unsigned", dest="signed", action="store_false",
                      help="unsigned values (the default)")
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--msb-first", dest="msb_first", action="store_true", default=None,
                       help="lane 0 at the most significant end of a word")
    order.add_argument("--lsb-first", dest="msb_first", action="store_false",
                       help="lane 0 at the least significant end (the default)")
    parser.add_argument("--word-bits", type=int, help="word width (default lanes x bits)")
    parser.add_argument("--pad", action="store_true", default=None,
                        help="zero-pad split axes up to a multiple of their sizes")
    parser.add_argument("--bank-depth", type=int, help="split into memories of this many words")
    parser.add_argument("--format", choices=sorted(FORMATS),
                        help="file format (default: from the file's suffix)")
    parser.add_argument("--radix", type=int, default=16, help="2 or 16 (.coe/.mem/.mif)")
    parser.add_argument("--byteorder", default="little", help="little or big (.bin)")
    parser.add_argument("--address-every", type=int, default=0,
                        help=".mem: an @address line every N words")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def add_arguments(parser) -> None:
    parser.add_argument("tensor", help="the tensor, a .npy file of integers")
    add_layout_arguments(parser)
    parser.add_argument("--saturate", action="store_true",
                        help="clamp values that do not fit instead of failing")
    parser.add_argument("--name", help="tensor name in messages and headers (default: stem)")
    parser.add_argument("-o", "--output", required=True, help="output file")


def parse_sizes(text: str) -> dict[str, int]:
    """'j=2,i=16' -> {'j': 2, 'i': 16}."""
    sizes = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier() or not value.strip().isdigit():
            raise UserError(f"--sizes: {item!r} is not NAME=INTEGER")
        sizes[name.strip()] = int(value)
    return sizes


def layout_from_args(args) -> Layout:
    """The layout named or written in --layout, with the options given on the command line."""
    if "->" in args.layout:
        layout = Layout(args.layout, bits=8, signed=False)
    elif args.layouts:
        layout = LayoutFile.load(args.layouts).named(args.layout, "--layout")
    else:
        raise UserError(f"--layout {args.layout!r} is neither a pattern (it has no '->') nor a "
                        f"name (no --layouts file given)")
    changes = {"sizes": {**layout.sizes, **parse_sizes(args.sizes)}, "bits": args.bits,
               "signed": args.signed, "msb_first": args.msb_first, "word_bits": args.word_bits,
               "pad": args.pad, "bank_depth": args.bank_depth}
    return replace(layout, **{k: v for k, v in changes.items() if v is not None})


def format_of(args, path) -> str:
    fmt = args.format or Path(path).suffix.lstrip(".")
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r} (from {path}); use --format with one of "
                        f"{', '.join(FORMATS)}")
    return fmt


def options_from_args(args) -> FileOptions:
    return FileOptions(radix=args.radix, byteorder=args.byteorder,
                       address_every=args.address_every)


def load_npy(path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except ValueError as e:
        raise UserError(f"{path}: not a .npy array ({e})") from None


def run(args):
    layout = layout_from_args(args)
    fmt = format_of(args, args.output)
    options = options_from_args(args)
    tensor = load_npy(args.tensor)
    name = args.name or Path(args.tensor).stem
    paths = write_tensor(args.output, tensor, layout, fmt, options, name, args.saturate)
    rows, lanes = layout.rows_shape(tensor.shape)
    report = {"tensor": name, "shape": list(tensor.shape), "files": [str(p) for p in paths],
              "rows": rows, "lanes": lanes,
              "word_bits": WordGeometry.of(layout, lanes).word_bits, "layout": layout.describe()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{name} {tuple(tensor.shape)} -> {', '.join(report['files'])}: {rows} words of "
              f"{report['word_bits']} bits ({lanes} x {layout.bits})")
    return 0
