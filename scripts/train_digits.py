"""Train the bundled `zoo:digits` model and write src/fpgacnn/zoo/data/digits.npz.

Deterministic: fixed seeds, torch.use_deterministic_algorithms, one thread. Run:

    .venv/bin/python scripts/train_digits.py [--epochs 60] [--out PATH]
"""

import argparse
import sys

import numpy as np
import torch
from torch import nn

from fpgacnn.atomic import atomic_open
from fpgacnn.zoo.digits import WEIGHTS, DigitsNet, digits_data, state_arrays

SEED = 2024


def train(epochs: int, batch_size: int = 32, lr: float = 2e-3) -> DigitsNet:
    """A DigitsNet trained with Adam on the training split; the same bits on every run."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        return _train(epochs, batch_size, lr)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)


def _train(epochs: int, batch_size: int, lr: float) -> DigitsNet:
    torch.manual_seed(SEED)
    x_train, y_train, _, _ = digits_data()
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    model = DigitsNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    order = torch.Generator().manual_seed(SEED)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        for batch in torch.randperm(len(x), generator=order).split(batch_size):
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
        schedule.step()
    return model.eval()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        predicted = model(torch.from_numpy(x)).argmax(1).numpy()
    return float((predicted == y).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--out", default=str(WEIGHTS))
    args = parser.parse_args(argv)
    model = train(args.epochs)
    x_train, y_train, x_test, y_test = digits_data()
    print(f"train accuracy {accuracy(model, x_train, y_train):.4f}, "
          f"test accuracy {accuracy(model, x_test, y_test):.4f}", file=sys.stderr)
    with atomic_open(args.out, "wb") as f:
        np.savez(f, **state_arrays(model))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
