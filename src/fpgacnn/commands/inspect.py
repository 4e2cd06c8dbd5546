"""`fpgacnn inspect MODEL`: the per-layer table of a model (shapes, params, MACs, bytes).

    fpgacnn inspect zoo:alexnet
    fpgacnn inspect zoo:yolov3-tiny --input-shape 1,3,64,64 --bits 4 --json
"""

import json
import sys

from fpgacnn.errors import UserError
from fpgacnn.ir.summary import MAX_BITS, MIN_BITS, GraphSummary, summarize

HELP = "per-layer table of a model: shapes, parameters, MACs, feature-map and weight bytes"

COLUMNS = ("#", "name", "op", "input", "output", "params", "MACs", "out bytes", "w bytes")


def add_arguments(parser):
    parser.add_argument("model", help="zoo:NAME, FILE.onnx, FILE.cfg[:FILE.weights] or "
                                      "package.module:factory")
    parser.add_argument("--input-shape", metavar="N,C,H,W",
                        help="input shape (default: the model's own)")
    parser.add_argument("--bits", type=int, default=8,
                        help=f"bits per stored value for the byte columns, {MIN_BITS}..{MAX_BITS} "
                             f"(default 8)")
    parser.add_argument("--raw", action="store_true",
                        help="the graph as imported (BatchNorm not folded, activations not fused)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")


def run(args) -> int:
    from fpgacnn.frontends import load_model

    if not MIN_BITS <= args.bits <= MAX_BITS:
        raise UserError(f"--bits: must be from {MIN_BITS} to {MAX_BITS}, got {args.bits}")
    shape = parse_shape(args.input_shape)
    graph = load_model(args.model, input_shape=shape, simplify=not args.raw)
    summary = summarize(graph, args.bits)
    if args.json:
        json.dump({"model": args.model} | summary.as_dict(), sys.stdout, indent=1)
        print()
    else:
        print(format_table(summary, args.model))
    return 0


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """`"1,3,224,224"` -> `(1, 3, 224, 224)`; UserError naming --input-shape otherwise."""
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise UserError(f"--input-shape: expected four positive integers N,C,H,W, got {text!r}")
    return shape


def _dims(shape) -> str:
    return "x".join(str(d) for d in shape)


def format_table(summary: GraphSummary, model: str) -> str:
    """The text table: one row per layer (host ops marked `*`), then the totals."""
    rows = []
    for i, layer in enumerate(summary.layers):
        op = layer.op + (f"+{layer.activation}" if layer.activation else "")
        rows.append((str(i), layer.name, op + (" *" if layer.host else ""),
                     " + ".join(_dims(s) for s in layer.input_shapes) or "-",
                     _dims(layer.output_shape), f"{layer.params:,}", f"{layer.macs:,}",
                     f"{layer.output_bytes:,}", f"{layer.weight_bytes:,}"))
    t = summary.totals
    rows.append(("", "total", "", "", "", f"{t['params']:,}", f"{t['macs']:,}",
                 f"{t['output_bytes']:,}", f"{t['weight_bytes']:,}"))
    widths = [max(len(row[i]) for row in rows + [COLUMNS]) for i in range(len(COLUMNS))]
    numeric = {0, 5, 6, 7, 8}

    def line(row):
        cells = [c.rjust(w) if i in numeric else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    inputs = ", ".join(f"{k}={_dims(v)}" for k, v in summary.inputs.items())
    head = [f"{model}: graph {summary.graph!r}, inputs {inputs}, {summary.bits}-bit values",
            line(COLUMNS), line(tuple("-" * w for w in widths))]
    body = [line(row) for row in rows[:-1]] + [line(tuple("-" * w for w in widths)),
                                                line(rows[-1])]
    foot = [f"{t['macs'] / 1e9:.3f} GMACs, {t['params'] / 1e6:.3f} M parameters, "
            f"largest feature map {t['max_output_bytes']:,} bytes, "
            f"weights {t['weight_bytes']:,} bytes"]
    if t["host_layers"]:
        foot.append(f"* {t['host_layers']} host op(s): run in float on the host, not the engine")
    return "\n".join(head + body + foot)
