"""The float reference executor against PyTorch's own modules."""

import numpy as np
import torch
from hypothesis import given, strategies as st

from fpgacnn.ir import Graph, Node, ops, run_float


def run_single(op, x, params=None):
    g = Graph("g", {"x": x.shape}, [Node("y", op, ("x",), params or {})], ["y"])
    return run_float(g, x)["y"]


pool_cases = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(0, 1), st.booleans(),
                       st.integers(5, 12), st.integers(5, 12))


@given(pool_cases, st.booleans())
def test_maxpool_and_avgpool_match_torch(case, include_pad):
    k, s, pad, ceil_mode, h, w = case
    if pad > k // 2:
        pad = 0
    x = np.random.default_rng(h * w).standard_normal((2, 3, h, w)).astype(np.float32)
    t = torch.from_numpy(x)
    want = torch.nn.MaxPool2d(k, s, pad, ceil_mode=ceil_mode)(t).numpy()
    np.testing.assert_array_equal(run_single(ops.MaxPool(k, s, pad, ceil_mode), x), want)
    want = torch.nn.AvgPool2d(k, s, pad, ceil_mode=ceil_mode, count_include_pad=include_pad)(t)
    got = run_single(ops.AvgPool(k, s, pad, ceil_mode, include_pad), x)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


@given(st.integers(1, 5), st.integers(1, 3), st.integers(1, 2), st.sampled_from([1, 2, 4]),
       st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)))
def test_conv_with_asymmetric_padding_matches_torch(k, s, d, groups, pads):
    rng = np.random.default_rng(k * 100 + s * 10 + d)
    x = rng.standard_normal((1, 4, 11, 9)).astype(np.float32)
    w = rng.standard_normal((8, 4 // groups, k, k)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    t, l, bo, r = pads
    padded = torch.nn.functional.pad(torch.from_numpy(x), (l, r, t, bo))
    want = torch.nn.functional.conv2d(padded, torch.from_numpy(w), torch.from_numpy(b), s, 0, d,
                                      groups).numpy()
    got = run_single(ops.Conv2d(4, 8, k, s, pads, d, groups), x, {"weight": w, "bias": b})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_lrn_matches_torch_for_odd_sizes():
    x = np.random.default_rng(1).standard_normal((1, 16, 5, 5)).astype(np.float32)
    want = torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)(torch.from_numpy(x)).numpy()
    got = run_single(ops.LRN(5, 1e-4, 0.75, 2.0), x)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_upsample_and_activations_match_torch():
    x = np.random.default_rng(2).standard_normal((1, 3, 4, 5)).astype(np.float32)
    t = torch.from_numpy(x)
    want = torch.nn.Upsample(scale_factor=2, mode="nearest")(t).numpy()
    np.testing.assert_array_equal(run_single(ops.Upsample(2), x), want)
    np.testing.assert_array_equal(run_single(ops.LeakyReLU(0.1), x),
                                  torch.nn.LeakyReLU(0.1)(t).numpy())
    np.testing.assert_array_equal(run_single(ops.Clip(0, 6), x), torch.nn.ReLU6()(t).numpy())
    slope = np.array([0.1, 0.2, 0.3], np.float32)
    np.testing.assert_array_equal(run_single(ops.PReLU(3), x, {"slope": slope}),
                                  torch.nn.functional.prelu(t, torch.from_numpy(slope)).numpy())


def test_channel_shuffle_matches_torch():
    x = np.random.default_rng(3).standard_normal((1, 12, 3, 3)).astype(np.float32)
    want = torch.nn.ChannelShuffle(3)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(run_single(ops.ChannelShuffle(3), x), want)
