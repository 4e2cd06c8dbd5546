"""Stochastic gradient descent with the weight update in integers.

Each trainable tensor keeps a master copy `w` and a velocity `v`, both `update_bits` wide at
one fixed fraction chosen at initialisation: the range is 4 times the power of two above
the largest initial magnitude (at least 1), e.g. +-16 for weights up to 3.9. The learning
rate, momentum and weight decay are `const_bits`-wide fixed-point constants
(lr_q = lr_int * 2**-f_lr, ...). One step, with every product exact and every
division by a power of two rounded by the update rounding (nearest or stochastic):

    g' = grad brought to w's fraction                      (rounded right shift or exact left)
    g' = g' + round(wd_int * w / 2**f_wd)                  (if weight decay)
    v  = sat(round(mu_int * v / 2**f_mu) + g')             (if momentum; else v = g')
    w  = sat(w - round(lr_int * v / 2**f_lr))

`sat` saturates to `update_bits`; each saturated element is counted in `saturations`. The
forward pass uses `w` rounded to the weight width (dynamic fraction, see fixed.py).

>>> master = MasterWeight.from_float(np.array([0.5, -1.0]), update_bits=32)
>>> SGD(lr=0.1).step(master, Fixed(np.array([1, 1]), 0, 16))
>>> master.to_float()  # lr 0.1 is 26214 * 2**-18 in 16 bits
array([ 0.40000153, -1.09999847])
"""

from dataclasses import dataclass

import numpy as np

from fpgacnn.golden.arith import int_range, saturate
from fpgacnn.train.fixed import Fixed, Rounder, align, quantize_float, round_divide

HEADROOM_BITS = 2
MAX_UPDATE_BITS = 40  # a 16-bit constant times a 40-bit velocity stays exact in int64


@dataclass(eq=False)
class MasterWeight:
    """A trainable tensor in the update width: `value * 2**-frac_bits`, and its velocity."""

    value: np.ndarray
    velocity: np.ndarray
    frac_bits: int
    bits: int
    saturations: int = 0

    @classmethod
    def from_float(cls, x, update_bits: int) -> "MasterWeight":
        x = np.asarray(x, dtype=np.float64)
        largest = max(float(np.max(np.abs(x))) if x.size else 0.0, 1.0)
        int_bits = int(np.floor(np.log2(largest))) + 1 + HEADROOM_BITS
        frac = update_bits - 1 - int_bits
        value = saturate(np.floor(np.ldexp(x, frac) + 0.5).astype(np.int64), update_bits, True)
        return cls(value, np.zeros_like(value), frac, update_bits)

    def to_float(self) -> np.ndarray:
        return np.ldexp(self.value.astype(np.float64), -self.frac_bits)

    def narrowed(self, rounder: Rounder) -> Fixed:
        """The weight the forward and backward passes use: rounded to the weight width."""
        return rounder(self.value, self.frac_bits)

    def saturate(self, x) -> np.ndarray:
        lo, hi = int_range(self.bits, True)
        self.saturations += int(np.count_nonzero((x < lo) | (x > hi)))
        return np.clip(x, lo, hi)


@dataclass(frozen=True, eq=False)
class SGD:
    """The update rule above. `rng` drives stochastic rounding (seeded)."""

    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    rounding: str = "nearest"
    rng: np.random.Generator | None = None
    const_bits: int = 16

    def constant(self, value: float) -> Fixed:
        return quantize_float(np.array(value), self.const_bits)

    def _scale(self, x, const: Fixed):
        return round_divide(const.value * x, 1 << const.frac_bits, self.rounding, self.rng)

    def step(self, master: MasterWeight, grad: Fixed) -> None:
        if grad.frac_bits >= master.frac_bits:
            g = round_divide(grad.value, 1 << (grad.frac_bits - master.frac_bits),
                             self.rounding, self.rng)
        else:
            # past MAX_UPDATE_BITS every nonzero value saturates anyway: cap the shift
            shift = min(master.frac_bits - grad.frac_bits, MAX_UPDATE_BITS)
            g = align(grad.value, 0, shift)
        g = master.saturate(g)
        if self.weight_decay:
            g = g + self._scale(master.value, self.constant(self.weight_decay))
        if self.momentum:
            g = self._scale(master.velocity, self.constant(self.momentum)) + g
        master.velocity = master.saturate(g)
        step = self._scale(master.velocity, self.constant(self.lr))
        master.value = master.saturate(master.value - step)
