"""`fpgacnn train MODEL`: train a model in fixed point (forward, backward, SGD in integers).

    fpgacnn train zoo:digits --bits 16 --epochs 10 --float
    fpgacnn train zoo:digits --bits 8 --rounding stochastic --epochs 10 --json -o d8.q.npz
"""

import json
import sys

from fpgacnn.errors import UserError
from fpgacnn.train.fixed import ROUNDINGS

HELP = "train a model in fixed point (backward pass and SGD in integers) on the digits data"

DATASETS = ("digits",)


def add_arguments(parser):
    parser.add_argument("model", help="zoo:NAME, FILE.onnx, FILE.cfg[:FILE.weights] or "
                                      "package.module:factory")
    parser.add_argument("--bits", type=int, default=16,
                        help="width of activations and weights (default 16)")
    parser.add_argument("--grad-bits", type=int, help="width of gradients (default: --bits)")
    parser.add_argument("--acc-bits", type=int, default=48,
                        help="width of every accumulator (default 48, a DSP48's)")
    parser.add_argument("--update-bits", type=int, default=32,
                        help="width of master weights and velocities in the SGD update "
                             "(default 32)")
    parser.add_argument("--rounding", default="nearest", choices=ROUNDINGS,
                        help="rounding of activations and gradients (default nearest)")
    parser.add_argument("--update-rounding", choices=ROUNDINGS,
                        help="rounding of the weight update (default: --rounding)")
    parser.add_argument("--epochs", type=int, default=10, help="passes over the data (default 10)")
    parser.add_argument("--batch", type=int, default=32, help="mini-batch size (default 32)")
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05)")
    parser.add_argument("--momentum", type=float, default=0.9, help="momentum (default 0.9)")
    parser.add_argument("--weight-decay", type=float, default=0.0,
                        help="L2 weight decay (default 0)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of initialisation, batch order and stochastic rounding")
    parser.add_argument("--init", choices=("random", "model"), default="random",
                        help="start from seeded He-normal weights (default) or the model's own")
    parser.add_argument("--data", choices=DATASETS, default="digits",
                        help="training data (default digits: scikit-learn's 8x8 digits)")
    parser.add_argument("--float", action="store_true",
                        help="also train the same network in float32 from the same start")
    parser.add_argument("--json", action="store_true",
                        help="end with one JSON object (epoch lines go to stderr)")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="quantized model file to write (default: no file)")


def run(args) -> int:
    from fpgacnn.frontends import load_model
    from fpgacnn.train import float_train, trainer
    from fpgacnn.train.settings import TrainSettings, Widths

    widths = Widths(args.bits, args.grad_bits, args.acc_bits, args.update_bits, args.rounding,
                    args.update_rounding)
    settings = TrainSettings(args.epochs, args.batch, args.lr, args.momentum,
                             args.weight_decay, args.seed)
    graph = load_model(args.model)
    data = load_data(args.data, graph)
    params = trainer.model_params(graph) if args.init == "model" else None
    out = sys.stderr if args.json else sys.stdout
    report = _epoch_printer(out)
    result = trainer.train_fixed(graph, data, widths, settings, params, report, progress=True)
    summary = _summary(result)
    if args.float:
        floating = float_train.train_float(graph, data, settings, params, report, progress=True)
        summary["float"] = _summary(floating)
        summary["float_minus_fixed_pp"] = round(
            100 * (floating.test_accuracy - result.test_accuracy), 3)
    if args.output:
        from fpgacnn.atomic import atomic_path
        from fpgacnn.train.save import trained_qmodel

        qmodel = trained_qmodel(graph, result.params, data[0][:64], widths)
        with atomic_path(args.output) as tmp:
            qmodel.save(tmp)
        summary["output"] = args.output
    if args.json:
        json.dump({"model": args.model, "bits": widths.bits, "grad_bits": widths.grad,
                   "rounding": widths.rounding} | summary, sys.stdout)
        print()
    else:
        _print_summary(summary, args)
    return 0


def load_data(name: str, graph):
    """(x_train, y_train, x_test, y_test), checked against the model's input and classes."""
    from fpgacnn.zoo import digits_data

    data = digits_data()
    (shape,) = graph.inputs.values()
    (output,) = graph.outputs
    if tuple(shape[1:]) != data[0].shape[1:]:
        raise UserError(f"input {next(iter(graph.inputs))!r}: the {name} data is "
                        f"{'x'.join(map(str, data[0].shape[1:]))} per image, the model takes "
                        f"{'x'.join(map(str, shape[1:]))}")
    classes = graph.shapes[output][-1]
    if len(graph.shapes[output]) != 2 or classes != 10:
        raise UserError(f"output {output!r}: the {name} data has 10 classes, the model gives "
                        f"shape {graph.shapes[output]}")
    return data


def _summary(result) -> dict:
    return {"mode": result.mode, "test_accuracy": result.test_accuracy,
            "loss": [e.loss for e in result.epochs],
            "train_accuracy": [e.train_accuracy for e in result.epochs],
            "epoch_test_accuracy": [e.test_accuracy for e in result.epochs],
            "saturations": result.saturations}


def _epoch_printer(out):
    def report(mode, stats):
        print(f"{mode:>8} epoch {stats.epoch:3d}: loss {stats.loss:.4f}  train "
              f"{100 * stats.train_accuracy:6.2f}%  test {100 * stats.test_accuracy:6.2f}%",
              file=out, flush=True)
    return report


def _print_summary(summary: dict, args) -> None:
    print(f"{summary['mode']}: test accuracy {100 * summary['test_accuracy']:.2f}% "
          f"({summary['saturations']} saturated updates)")
    if "float" in summary:
        print(f"float32: test accuracy {100 * summary['float']['test_accuracy']:.2f}% "
              f"(float - fixed: {summary['float_minus_fixed_pp']:+.2f} points)")
    if args.output:
        print(f"wrote {args.output}")
