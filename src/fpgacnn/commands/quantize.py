"""`fpgacnn quantize MODEL`: integer quantization (pow2 or affine) into one .npz file.

    fpgacnn quantize zoo:digits --scheme affine --bits 8 --calib-random 64 -o digits.q.npz
    fpgacnn quantize net.onnx --scheme pow2 --bits 8 --rounding half_even --calib x.npy \\
        --method mse -o net.q.npz
    fpgacnn quantize zoo:digits --scheme affine --mode float32 --per-channel \\
        --calib-random 32 -o d.q.npz --onnx d.qlinear.onnx
"""

import json
import sys

from fpgacnn.errors import UserError

HELP = "quantize a model to integers (pow2 or affine) and save it, optionally as QLinear ONNX"


def add_arguments(parser):
    parser.add_argument("model", help="zoo:NAME, FILE.onnx, FILE.cfg[:FILE.weights] or "
                                      "package.module:factory")
    add_quant_arguments(parser)
    parser.add_argument("-o", "--output", required=True, help="the quantized model (.npz)")
    parser.add_argument("--onnx", metavar="OUT.onnx",
                        help="also write the model in QLinear operator form")
    parser.add_argument("--json", action="store_true", help="the summary as JSON")


def add_quant_arguments(parser):
    """The quantization and calibration options (shared with `fpgacnn build`)."""
    parser.add_argument("--scheme", choices=["pow2", "affine"], default="affine")
    parser.add_argument("--bits", type=int, default=8, help="activation bits, 2..16 (default 8)")
    parser.add_argument("--weight-bits", type=int, help="weight bits, 2..16 (default --bits)")
    parser.add_argument("--layer-bits", action="append", default=[], metavar="LAYER=A[/W]",
                        help="bits of one layer's output (and weights); repeatable")
    parser.add_argument("--per-channel", action="store_true",
                        help="one weight scale per output channel")
    parser.add_argument("--mode", choices=["gemmlowp", "single_round", "float32", "shift"],
                        help="requantization: affine gemmlowp (default), single_round or "
                             "float32; pow2 shift")
    parser.add_argument("--rounding", choices=["half_up", "half_even", "truncate"],
                        default="half_up", help="rounding of every shift (default half_up)")
    calib = parser.add_mutually_exclusive_group()
    calib.add_argument("--calib", metavar="FILE.npy", help="calibration inputs (N, C, H, W)")
    calib.add_argument("--calib-random", type=int, metavar="N",
                       help="N seeded standard-normal inputs (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --calib-random")
    parser.add_argument("--method", choices=["minmax", "percentile", "mse"], default="minmax")
    parser.add_argument("--percentile", type=float, default=99.99)
    parser.add_argument("--acc-bits", type=int, default=32, help="accumulator width (default 32)")
    parser.add_argument("--input-shape", metavar="N,C,H,W", help="input shape of the model")


def parse_layer_bits(items) -> dict:
    """["conv1=4/4", "fc=8"] -> {"conv1": (4, 4), "fc": (8, 8)}."""
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        act, _, weight = value.partition("/")
        try:
            out[name] = (int(act), int(weight or act))
        except ValueError:
            raise UserError(f"--layer-bits {item!r}: expected LAYER=A or LAYER=A/W") from None
    return out


def quantize_model(args):
    """The quantized model of `args.model` with the options of `add_quant_arguments`."""
    from fpgacnn.commands.inspect import parse_shape
    from fpgacnn.frontends import load_model
    from fpgacnn.quant import QuantConfig, quantize
    from fpgacnn.quant.calibrate import load_calibration

    config = QuantConfig(scheme=args.scheme, bits=args.bits, weight_bits=args.weight_bits,
                         per_channel=args.per_channel, mode=args.mode, rounding=args.rounding,
                         method=args.method, percentile=args.percentile, acc_bits=args.acc_bits,
                         layer_bits=parse_layer_bits(args.layer_bits))
    graph = load_model(args.model, input_shape=parse_shape(args.input_shape))
    data = load_calibration(graph, args.calib, args.calib_random, args.seed)
    return quantize(graph, data, config)


def run(args) -> int:
    import onnx

    from fpgacnn.atomic import atomic_path
    from fpgacnn.quant.summary import summary_rows, format_summary

    qmodel = quantize_model(args)
    onnx_model = None
    if args.onnx:
        from fpgacnn.quant.to_onnx import to_onnx
        onnx_model = to_onnx(qmodel)  # fails before any file is written
    qmodel.save(args.output)
    if onnx_model is not None:
        with atomic_path(args.onnx) as tmp:
            onnx.save(onnx_model, str(tmp))
    rows = summary_rows(qmodel)
    if args.json:
        json.dump({"model": args.model, "output": args.output, "onnx": args.onnx,
                   "scheme": qmodel.scheme, "mode": qmodel.mode, "rounding": qmodel.rounding,
                   "acc_bits": qmodel.acc_bits, "layers": rows}, sys.stdout, indent=1)
        print()
    else:
        print(format_summary(qmodel, rows))
        print(f"wrote {args.output}" + (f" and {args.onnx}" if args.onnx else ""))
    return 0
