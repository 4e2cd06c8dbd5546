"""Fixed-point training on zoo:digits against float32 training (the peer) from the same start.

    .venv/bin/python bench/train_digits.py [--epochs 10] [--seeds 0 1 2]

For each seed: float32 (torch.optim.SGD), 16-bit nearest, 8-bit nearest and 8-bit stochastic
rounding; prints test accuracy, the difference to float in points, and seconds per epoch with
the ratio to float's.
"""

import argparse
import time

from fpgacnn.frontends import load_model
from fpgacnn.train.float_train import train_float
from fpgacnn.train.settings import TrainSettings, Widths
from fpgacnn.train.trainer import train_fixed
from fpgacnn.zoo import digits_data

RUNS = (("fixed16 nearest", Widths(bits=16)),
        ("fixed8 nearest", Widths(bits=8)),
        ("fixed8 stochastic", Widths(bits=8, rounding="stochastic")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    graph, data = load_model("zoo:digits"), digits_data()
    print(f"{'seed':>4}  {'run':<18} {'test acc':>8} {'vs float':>9} {'s/epoch':>8} {'ratio':>6}")
    for seed in args.seeds:
        settings = TrainSettings(epochs=args.epochs, seed=seed)
        start = time.perf_counter()
        floating = train_float(graph, data, settings)
        float_time = (time.perf_counter() - start) / args.epochs
        print(f"{seed:>4}  {'float32':<18} {100 * floating.test_accuracy:7.2f}% {'':>9} "
              f"{float_time:8.3f} {1.0:6.2f}", flush=True)
        for name, widths in RUNS:
            start = time.perf_counter()
            result = train_fixed(graph, data, widths, settings)
            per_epoch = (time.perf_counter() - start) / args.epochs
            diff = 100 * (result.test_accuracy - floating.test_accuracy)
            print(f"{seed:>4}  {name:<18} {100 * result.test_accuracy:7.2f}% {diff:+8.2f}p "
                  f"{per_epoch:8.3f} {per_epoch / float_time:6.2f}", flush=True)


if __name__ == "__main__":
    main()
