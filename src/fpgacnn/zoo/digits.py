"""The bundled `digits` model: a small CNN for scikit-learn's 8x8 handwritten digits.

Data: `sklearn.datasets.load_digits` (bundled with scikit-learn, no download), pixels divided
by 16 into [0, 1], shape N x 1 x 8 x 8, split by
`train_test_split(test_size=0.25, random_state=0, stratify=y)` (1347 train, 450 test).
Weights: trained by `scripts/train_digits.py`, stored in `data/digits.npz` (no pickle).

>>> model = trained_digits_net()
>>> x_train, y_train, x_test, y_test = digits_data()
>>> model(torch.from_numpy(x_test[:1])).argmax(1)
"""

from pathlib import Path

import numpy as np
import torch
from torch import nn

from fpgacnn.errors import UserError

WEIGHTS = Path(__file__).parent / "data" / "digits.npz"
SPLIT_SEED = 0
TEST_FRACTION = 0.25


class DigitsNet(nn.Module):
    """conv 1->16, conv 16->32, pool, conv 32->32, pool, linear 128->10.

    Convolutions are 3x3 with padding 1, each followed by a ReLU; pools are 2x2 max pools.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 32, kernel_size=3, padding=1)
        self.relu3 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.conv1(x))
        x = self.pool1(self.relu2(self.conv2(x)))
        x = self.pool2(self.relu3(self.conv3(x)))
        return self.fc(self.flatten(x))


def digits_data():
    """(x_train, y_train, x_test, y_test): float32 N x 1 x 8 x 8 in [0, 1], int64 labels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    return x_train, y_train, x_test, y_test


def trained_digits_net() -> DigitsNet:
    """A DigitsNet in eval mode with the committed weights."""
    if not WEIGHTS.is_file():
        raise UserError(f"zoo:digits: weights file {WEIGHTS} is missing; "
                        f"run scripts/train_digits.py")
    model = DigitsNet()
    with np.load(WEIGHTS, allow_pickle=False) as stored:
        state = {k: torch.from_numpy(stored[k]) for k in stored.files}
    model.load_state_dict(state)
    return model.eval()


def state_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """The state_dict as float32 numpy arrays, ready for `np.savez`."""
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
