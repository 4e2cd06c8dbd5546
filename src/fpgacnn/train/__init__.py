"""Training in fixed point: the backward pass and SGD with FPGA arithmetic (docs/training.md).

    >>> from fpgacnn.train import TrainSettings, Widths, train_fixed, train_float
    >>> result = train_fixed(load_model("zoo:digits"), digits_data(), Widths(bits=16),
    ...                      TrainSettings(epochs=10))
    >>> result.test_accuracy, [e.loss for e in result.epochs]
"""

from fpgacnn.train.float_train import train_float
from fpgacnn.train.settings import TrainSettings, Widths
from fpgacnn.train.trainer import TrainResult, train_fixed
from fpgacnn.train.workload import training_step_layers

__all__ = ["TrainResult", "TrainSettings", "Widths", "train_fixed", "train_float",
           "training_step_layers"]
