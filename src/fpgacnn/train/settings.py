"""What a training run is given: the widths of each tensor kind and the optimiser settings.

>>> Widths(bits=8, rounding="stochastic").grad
8
"""

from dataclasses import dataclass

from fpgacnn.errors import UserError
from fpgacnn.train.fixed import EXACT_FLOAT_BITS, ROUNDINGS

MAX_BITS = 16  # the widths a quantized model file holds (docs/numerics.md)


@dataclass(frozen=True)
class Widths:
    """bits: activations and weights; grad_bits: gradients (default: bits); acc_bits: every
    accumulator; update_bits: master weights and velocities of the SGD update."""

    bits: int = 16
    grad_bits: int | None = None
    acc_bits: int = 48
    update_bits: int = 32
    rounding: str = "nearest"
    update_rounding: str | None = None

    def __post_init__(self):
        from fpgacnn.train.sgd import MAX_UPDATE_BITS

        for name, value, lo, hi in (("--bits", self.bits, 2, MAX_BITS),
                                    ("--grad-bits", self.grad, 2, MAX_BITS),
                                    ("--acc-bits", self.acc_bits, 8, EXACT_FLOAT_BITS),
                                    ("--update-bits", self.update_bits, self.bits + 1,
                                     MAX_UPDATE_BITS)):
            if not isinstance(value, int) or not lo <= value <= hi:
                raise UserError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
        for name, value in (("--rounding", self.rounding),
                            ("--update-rounding", self.update_rounding or self.rounding)):
            if value not in ROUNDINGS:
                raise UserError(f"{name} must be one of {', '.join(ROUNDINGS)}, not {value!r}")

    @property
    def grad(self) -> int:
        return self.grad_bits or self.bits

    @property
    def update(self) -> str:
        return self.update_rounding or self.rounding


@dataclass(frozen=True)
class TrainSettings:
    """The optimiser and the schedule; the same for fixed-point and float training."""

    epochs: int = 8
    batch: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 1 or self.batch < 1:
            raise UserError(f"--epochs and --batch must be >= 1, got {self.epochs} and "
                            f"{self.batch}")
        if not self.lr > 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise UserError(f"need --lr > 0, 0 <= --momentum < 1, --weight-decay >= 0 (got "
                            f"{self.lr}, {self.momentum}, {self.weight_decay})")
