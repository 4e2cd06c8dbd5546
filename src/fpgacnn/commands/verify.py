"""`fpgacnn verify QMODEL`: per-layer SQNR against the float model, accuracy, and the
bit-exactness check against onnxruntime (mismatching elements per layer).

    fpgacnn verify digits.q.npz --data digits_test.npz --json

`--data` is an .npz with `x` (N, C, H, W float inputs) and optionally `y` (labels);
without it, `--random N` seeded standard-normal inputs are used.
"""

import json
import math
import sys

import numpy as np

from fpgacnn.errors import UserError

HELP = "per-layer SQNR vs float, accuracy, and element mismatches against onnxruntime"


def add_arguments(parser):
    parser.add_argument("qmodel", help="a quantized model written by `fpgacnn quantize`")
    parser.add_argument("--data", metavar="FILE.npz", help="inputs `x` and optional labels `y`")
    parser.add_argument("--random", type=int, default=16, metavar="N",
                        help="seeded random inputs when --data is not given (default 16)")
    parser.add_argument("--no-onnxruntime", action="store_true",
                        help="skip the comparison with onnxruntime")
    parser.add_argument("--json", action="store_true", help="the report as JSON")


def load_data(path, qmodel, random_count):
    if path is None:
        shape = next(iter(qmodel.input_shapes.values()))
        rng = np.random.default_rng(0)
        return rng.standard_normal((random_count,) + tuple(shape[1:])).astype(np.float32), None
    try:
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data.files:
                raise UserError(f"--data {path}: no array named 'x' (has {data.files})")
            return data["x"], (data["y"] if "y" in data.files else None)
    except FileNotFoundError:
        raise UserError(f"--data {path}: no such file") from None
    except (OSError, ValueError) as e:
        raise UserError(f"--data {path}: not an .npz file ({e})") from None


def _num(value):
    return None if value is None or not math.isfinite(value) else round(value, 2)


def run(args) -> int:
    from fpgacnn.quant import QModel
    from fpgacnn.quant.verify import verify

    qmodel = QModel.load(args.qmodel)
    x, y = load_data(args.data, qmodel, args.random)
    report = verify(qmodel, x, y, use_onnxruntime=not args.no_onnxruntime)
    if args.json:
        json.dump(report.as_dict(), sys.stdout, indent=1, default=str)
        print()
        return 0
    print(f"{report.model}: {report.samples} samples; onnxruntime {report.onnx_status}")
    print(f"{'layer':24} {'op':14} {'SQNR dB':>8} {'ORT mismatches':>15}")
    for layer in report.layers:
        op = layer.op + (" (host)" if layer.host else "")
        sq = "" if layer.sqnr_db is None else f"{layer.sqnr_db:8.2f}"
        mism = "" if layer.onnx_mismatches is None else \
            f"{layer.onnx_mismatches}/{layer.elements}"
        print(f"{layer.name[:24]:24} {op[:14]:14} {sq:>8} {mism:>15}")
    if report.int_accuracy is not None:
        print(f"accuracy: float {report.float_accuracy:.4f}, integer {report.int_accuracy:.4f}")
    return 0
