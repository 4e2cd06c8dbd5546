"""Darknet's binary .weights format, and seeded random weights when there is no file.

The file is: int32 major, minor, revision; `seen` as int64 if major*10+minor >= 2 (and both
are below 1000), else int32; then float32 values layer by layer in cfg order. A
convolutional layer stores biases[filters], then with batch_normalize scales, rolling means
and rolling variances (filters each), then weights[filters, c/groups, size, size]. A
connected layer stores biases[out], weights[out, in] (stored [in, out] when major or minor
is above 1000), then with batch_normalize scales, rolling means, rolling variances. With
batch_normalize the biases are BatchNorm's beta and the layer itself has no bias.
"""

import math
from pathlib import Path

import numpy as np

from fpgacnn.errors import UserError


class WeightsFile:
    """Reads the floats of a Darknet .weights file layer by layer; `finish` checks the end."""

    def __init__(self, path):
        self.path = Path(path)
        data = self.path.read_bytes()
        if len(data) < 16:
            raise UserError(f"{self.path}: too short for a Darknet weights header "
                            f"({len(data)} bytes)")
        major, minor, _ = np.frombuffer(data[:12], "<i4")
        wide_seen = major * 10 + minor >= 2 and major < 1000 and minor < 1000
        start = 12 + (8 if wide_seen else 4)
        self.transpose = major > 1000 or minor > 1000
        if (len(data) - start) % 4:
            raise UserError(f"{self.path}: {len(data) - start} bytes after the header is not "
                            f"a whole number of float32 values")
        self.values = np.frombuffer(data[start:], "<f4")
        self.position = 0

    def _take(self, where: str, count: int, what: str) -> np.ndarray:
        end = self.position + count
        if end > self.values.size:
            raise UserError(f"{self.path}: file too short: {where} needs {count} {what} values "
                            f"at value {self.position}, only {self.values.size - self.position} "
                            f"left")
        out = self.values[self.position:end].astype(np.float32)
        self.position = end
        return out

    def convolutional(self, where, filters, kernel_shape, batch_normalize) -> dict:
        bias = self._take(where, filters, "bias")
        bn = self._batchnorm(where, filters, bias) if batch_normalize else None
        weight = self._take(where, filters * math.prod(kernel_shape), "weight")
        return _pack(weight.reshape((filters,) + tuple(kernel_shape)), bias, bn)

    def connected(self, where, outputs, inputs, batch_normalize) -> dict:
        bias = self._take(where, outputs, "bias")
        weight = self._take(where, outputs * inputs, "weight")
        weight = weight.reshape(inputs, outputs).T if self.transpose \
            else weight.reshape(outputs, inputs)
        bn = self._batchnorm(where, outputs, bias) if batch_normalize else None
        return _pack(np.ascontiguousarray(weight), bias, bn)

    def _batchnorm(self, where, channels, bias) -> dict:
        scales = self._take(where, channels, "BatchNorm scale")
        mean = self._take(where, channels, "rolling mean")
        var = self._take(where, channels, "rolling variance")
        return {"gamma": scales, "beta": bias, "mean": mean, "var": var}

    def finish(self) -> None:
        left = self.values.size - self.position
        if left:
            raise UserError(f"{self.path}: file too long: {left} float32 values left after the "
                            f"last layer (does it belong to another cfg?)")


class RandomWeights:
    """Seeded He-normal weights, small biases and random BatchNorm statistics."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def convolutional(self, where, filters, kernel_shape, batch_normalize) -> dict:
        return self._layer((filters,) + tuple(kernel_shape), batch_normalize)

    def connected(self, where, outputs, inputs, batch_normalize) -> dict:
        return self._layer((outputs, inputs), batch_normalize)

    def _layer(self, shape, batch_normalize) -> dict:
        fan_in = math.prod(shape[1:])
        weight = self.rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)
        bias = 0.1 * self.rng.standard_normal(shape[0])
        bn = None
        if batch_normalize:
            bn = {"gamma": 0.5 + self.rng.random(shape[0]), "beta": bias,
                  "mean": 0.1 * self.rng.standard_normal(shape[0]),
                  "var": 0.5 + self.rng.random(shape[0])}
        return _pack(weight.astype(np.float32), bias, bn)

    def finish(self) -> None:
        pass


def _pack(weight, bias, bn) -> dict:
    """Parameters of the layer node and of its BatchNorm node (None without one)."""
    if bn is None:
        return {"layer": {"weight": weight, "bias": bias}, "bn": None}
    return {"layer": {"weight": weight}, "bn": {k: np.asarray(v, np.float32)
                                                for k, v in bn.items()}}
