"""The host's softmax cross-entropy: loss against torch's F.cross_entropy, the logits'
gradient against torch autograd within the documented bound (one rounding to --grad-bits)."""

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from fpgacnn.train.fixed import Fixed, Rounder
from fpgacnn.train.loss import softmax_cross_entropy

BITS = 16


@settings(max_examples=30)
@given(st.integers(1, 8), st.integers(2, 12), st.integers(0, 2**32 - 1))
def test_softmax_cross_entropy_matches_autograd(n, classes, seed):
    rng = np.random.default_rng(seed)
    logits = Fixed(rng.integers(-2**15, 2**15, size=(n, classes)), int(rng.integers(10, 14)),
                   BITS)
    labels = rng.integers(0, classes, size=n)
    loss, correct, d_logits = softmax_cross_entropy(logits, labels, Rounder(BITS))

    z = torch.tensor(logits.to_float(), requires_grad=True)
    ref_loss = F.cross_entropy(z, torch.as_tensor(labels))
    ref_loss.backward()
    ref = z.grad.numpy()
    assert abs(loss - ref_loss.item()) <= 1e-12 * max(1.0, abs(loss))
    assert correct == int(np.count_nonzero(logits.value.argmax(axis=1) == labels))
    err = np.abs(d_logits.to_float() - ref)
    slack = 1e-12 * np.abs(ref).max()       # float64 softmax on both sides
    step = 2.0 ** -d_logits.frac_bits
    saturated = np.abs(d_logits.value) == 2 ** (BITS - 1) - 1     # rounded up past the top
    assert np.all(err[~saturated] <= step / 2 + slack) and np.all(err <= step + slack)
    assert err.max() <= 2.0 ** -(BITS - 2) * np.abs(ref).max() + slack
