"""Softmax cross-entropy on the host, in float64, on the dequantized logits.

loss = mean over the batch of -log softmax(z)[label];  dL/dz = (softmax(z) - onehot) / N,
then rounded to the gradient width like any other gradient.

>>> loss, correct, dz = softmax_cross_entropy(logits, labels, rounder=Rounder(16))
"""

import numpy as np

from fpgacnn.train.fixed import Fixed, Rounder


def softmax_cross_entropy(logits: Fixed, labels, rounder: Rounder):
    """(mean loss, number correct, dL/dlogits as Fixed)."""
    z = logits.to_float()
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = len(labels)
    loss = -log_p[np.arange(n), labels].mean()
    grad = np.exp(log_p)
    grad[np.arange(n), labels] -= 1.0
    correct = int(np.count_nonzero(logits.value.argmax(axis=1) == labels))
    return float(loss), correct, rounder.float(grad / n)
