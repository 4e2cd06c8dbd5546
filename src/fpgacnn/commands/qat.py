"""`fpgacnn qat MODEL`: quantization-aware fine-tuning, then conversion to a quantized model.

    fpgacnn qat zoo:digits --scheme affine --bits 8 --weight-bits 4 --epochs 3 -o d4.q.npz

For zoo:digits the bundled scikit-learn digits split is used; any other model needs
`--train FILE.npz` (arrays `x`, `y`) and may take `--test FILE.npz`. The report compares the
accuracy of post-training quantization and of QAT on the test data.
"""

import json
import sys

import numpy as np

from fpgacnn.errors import UserError

HELP = "quantization-aware training (fake-quant = golden model) and conversion"


def add_arguments(parser):
    parser.add_argument("model", help="zoo:digits, or any model with --train data")
    parser.add_argument("--scheme", choices=["pow2", "affine"], default="affine")
    parser.add_argument("--bits", type=int, default=8, help="activation bits (default 8)")
    parser.add_argument("--weight-bits", type=int, default=4, help="weight bits (default 4)")
    parser.add_argument("--per-channel", action="store_true")
    parser.add_argument("--mode", choices=["gemmlowp", "single_round", "float32", "shift"])
    parser.add_argument("--rounding", choices=["half_up", "half_even", "truncate"],
                        default="half_up")
    parser.add_argument("--train", metavar="FILE.npz", help="training data: x, y")
    parser.add_argument("--test", metavar="FILE.npz", help="test data: x, y")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", required=True, help="the converted model (.npz)")
    parser.add_argument("--json", action="store_true", help="the report as JSON")


def _labelled(path, what):
    try:
        with np.load(path, allow_pickle=False) as data:
            if not {"x", "y"} <= set(data.files):
                raise UserError(f"{what} {path}: needs arrays 'x' and 'y', has {data.files}")
            return data["x"], data["y"]
    except FileNotFoundError:
        raise UserError(f"{what} {path}: no such file") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{what} {path}: not an .npz file ({e})") from None


def _data(args):
    if args.train:
        x_train, y_train = _labelled(args.train, "--train")
        x_test, y_test = _labelled(args.test, "--test") if args.test else (x_train, y_train)
        return x_train, y_train, x_test, y_test
    if args.model != "zoo:digits":
        raise UserError(f"model {args.model!r}: QAT needs labelled data, give --train FILE.npz")
    from fpgacnn.zoo import digits_data
    return digits_data()


def run(args) -> int:
    from fpgacnn import golden
    from fpgacnn.frontends import load_model
    from fpgacnn.quant import QuantConfig, quantize
    from fpgacnn.quant.qat import QATModel, train_qat

    if args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {args.epochs}")
    config = QuantConfig(scheme=args.scheme, bits=args.bits, weight_bits=args.weight_bits,
                         per_channel=args.per_channel, mode=args.mode, rounding=args.rounding)
    x_train, y_train, x_test, y_test = _data(args)
    graph = load_model(args.model)
    ptq = quantize(graph, x_train[:256], config)
    model = QATModel(ptq)
    if len(y_train) != len(x_train):
        raise UserError(f"--train: {len(y_train)} labels for {len(x_train)} inputs")
    losses = train_qat(model, golden.quantize_input(ptq, x_train), y_train, args.epochs,
                       args.lr, seed=args.seed)
    qat = model.convert()

    def accuracy(qm):
        out = golden.run(qm, golden.quantize_input(qm, x_test))[qm.outputs[0]]
        return float(np.mean(out.reshape(len(out), -1).argmax(1) == y_test))

    report = {"model": args.model, "output": args.output, "scheme": args.scheme,
              "bits": args.bits, "weight_bits": args.weight_bits, "epochs": args.epochs,
              "losses": losses, "ptq_accuracy": accuracy(ptq), "qat_accuracy": accuracy(qat)}
    qat.save(args.output)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print(f"{args.model}: {args.scheme}, {args.bits}-bit activations, {args.weight_bits}-bit "
              f"weights; PTQ accuracy {report['ptq_accuracy']:.4f}, QAT accuracy "
              f"{report['qat_accuracy']:.4f} after {args.epochs} epochs; wrote {args.output}")
    return 0
