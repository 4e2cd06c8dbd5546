"""Float <-> integer at the edges of the model (and around host ops), as ONNX defines them."""

import numpy as np

from fpgacnn.quant.model import TensorFormat


def quantize_tensor(x, fmt: TensorFormat) -> np.ndarray:
    """round_half_even(x / scale) + zero_point, saturated: ONNX QuantizeLinear in float32.

    >>> quantize_tensor(np.array([0.26]), TensorFormat(8, False, 0.1, 3))
    array([6])
    """
    x32 = np.asarray(x, np.float32)
    q = np.rint(x32 / np.float32(fmt.scale)).astype(np.float64) + fmt.zero_point
    return np.clip(q, fmt.lo, fmt.hi).astype(np.int64)


def dequantize(q, fmt: TensorFormat) -> np.ndarray:
    """scale * (q - zero_point) as float64.

    >>> dequantize(np.array([6]), TensorFormat(8, False, 0.1, 3))
    array([0.3])
    """
    return fmt.scale * (np.asarray(q, np.float64) - fmt.zero_point)
