"""Observers: statistics of a float tensor -> the real range [lo, hi] it is quantized over.

Three methods: "minmax" (the observed extremes), "percentile" (the extremes after dropping the
given tail fraction) and "mse" (the clipping range whose quantization error is smallest).
"""

from dataclasses import dataclass, field

import numpy as np

from fpgacnn.errors import UserError

METHODS = ("minmax", "percentile", "mse")
SAMPLE_SIZE = 200_000


@dataclass
class TensorStats:
    """Running min/max and a seeded random sample of the values seen."""

    lo: float = np.inf
    hi: float = -np.inf
    sample: list = field(default_factory=list)
    seen: int = 0

    def update(self, values: np.ndarray, rng: np.random.Generator) -> None:
        flat = np.asarray(values, np.float64).ravel()
        if not flat.size:
            return
        self.lo = min(self.lo, float(flat.min()))
        self.hi = max(self.hi, float(flat.max()))
        keep = max(1, SAMPLE_SIZE // 8)
        if flat.size > keep:
            flat = flat[rng.integers(0, flat.size, keep)]
        self.sample.append(flat)
        self.seen += flat.size

    def values(self) -> np.ndarray:
        return np.concatenate(self.sample) if self.sample else np.zeros(1)


def observed_range(stats: TensorStats, method: str, quantizer, percentile: float = 99.99):
    """The real range to quantize over; `quantizer(lo, hi)` -> fake-quantize function.

    >>> s = TensorStats(); s.update(np.arange(11.0), np.random.default_rng(0))
    >>> observed_range(s, "minmax", None)
    (0.0, 10.0)
    """
    lo, hi = min(stats.lo, 0.0), max(stats.hi, 0.0)
    if method == "minmax":
        return lo, hi
    values = stats.values()
    if method == "percentile":
        p_lo = float(np.percentile(values, 100.0 - percentile)) if lo < 0 else 0.0
        p_hi = float(np.percentile(values, percentile)) if hi > 0 else 0.0
        return min(p_lo, 0.0), max(p_hi, 0.0)
    if method == "mse":
        return _mse_range(values, lo, hi, quantizer)
    raise UserError(f"calibration method must be one of {', '.join(METHODS)}, not {method!r}")


def _mse_range(values, lo, hi, quantizer):
    """Shrink [lo, hi] by factors in (0, 1]; keep the one with the least squared error."""
    best, best_err = (lo, hi), np.inf
    for fraction in np.linspace(1.0, 0.2, 33):
        cand = (lo * fraction, hi * fraction)
        if cand[1] - cand[0] <= 0:
            continue
        err = float(np.mean((quantizer(*cand)(values) - values) ** 2))
        if err < best_err - 1e-15:
            best, best_err = cand, err
    return best
