"""Conv2d and Linear gradients in fixed point against torch autograd on the dequantized values
(within the documented bound) and against a plain float64 loop model of the same integer
arithmetic (exactly)."""

import numpy as np
import torch
from hypothesis import given, settings, strategies as st

from fpgacnn.ir import ops
from fpgacnn.ir.graph import Node
from fpgacnn.ir.reference import run_node
from fpgacnn.train import conv_grad
from fpgacnn.train.fixed import Fixed, Rounder

BITS = 16


def random_fixed(rng, shape, bits=BITS):
    """Integers spread over the whole width, with a random fraction."""
    lo = -(1 << (bits - 1))
    value = rng.integers(lo, -lo, size=shape, dtype=np.int64)
    return Fixed(value, int(rng.integers(6, 15)), bits)


def naive_requantize(acc, frac, bits=BITS, rng=None):
    """Independent model of one rounding to `bits` with the shift from the maximum: nearest,
    or stochastic (floor((acc + r) / 2**shift), r drawn as documented) when `rng` is given."""
    acc = np.asarray(acc, dtype=np.float64)
    largest = int(np.max(np.abs(acc))) if acc.size else 0
    shift = 0  # the smallest shift with largest < 2**(bits - 1 + shift)
    while largest >= 2 ** (bits - 1 + shift):
        shift += 1
    while largest and largest < 2 ** (bits - 2 + shift):
        shift -= 1
    if rng is not None and shift > 0:
        q = np.floor((acc + rng.integers(0, 2 ** shift, size=acc.shape)) / 2.0 ** shift)
    else:
        q = np.floor(acc / 2.0 ** shift + (0.5 if rng is None else 0.0))
    q = np.clip(q, -2 ** (bits - 1), 2 ** (bits - 1) - 1)
    return q.astype(np.int64), frac - shift


def assert_within_bound(result: Fixed, reference, bits=BITS, stochastic=False):
    """Nearest rounding: every element within half a step (a whole step where saturated);
    stochastic: within a step. The largest error within 2**-(bits-2) of the largest reference
    magnitude."""
    reference = np.asarray(reference, dtype=np.float64)
    err = np.abs(result.to_float() - reference)
    step = 2.0 ** -result.frac_bits
    saturated = np.abs(result.value) == (1 << (bits - 1)) - 1
    slack = 1e-12 * np.abs(reference).max(initial=0)  # the float64 oracle's own rounding
    assert np.all(err[~saturated] <= (step if stochastic else step / 2) + slack)
    assert np.all(err <= step + slack)
    assert err.max(initial=0) <= 2.0 ** -(bits - 2) * np.abs(reference).max(initial=0) + slack


def assert_fixed_equal(result: Fixed, expected):
    value, frac = expected
    np.testing.assert_array_equal(result.value, value)
    if np.any(value):
        assert result.frac_bits == frac


def naive_conv_grads(op, x, w, dy):
    """dL/dx and dL/dw of a conv as plain loops over output positions and kernel taps."""
    n, cin, h, wd = x.shape
    cout, cin_g, kh, kw = w.shape
    _, _, oh, ow = dy.shape
    t, l, b, r = op.padding
    g = op.groups
    cout_g = cout // g
    xp = np.zeros((n, cin, h + t + b, wd + l + r))
    xp[:, :, t:t + h, l:l + wd] = x
    dxp = np.zeros_like(xp)
    dw = np.zeros(w.shape)
    for grp in range(g):
        ci = slice(grp * cin_g, (grp + 1) * cin_g)
        co = slice(grp * cout_g, (grp + 1) * cout_g)
        for i in range(oh):
            for j in range(ow):
                for u in range(kh):
                    for v in range(kw):
                        r_ = i * op.stride[0] + u * op.dilation[0]
                        c_ = j * op.stride[1] + v * op.dilation[1]
                        d = dy[:, co, i, j]                      # (n, cout_g)
                        dxp[:, ci, r_, c_] += d @ w[co, :, u, v]  # (n, cin_g)
                        dw[co, :, u, v] += d.T @ xp[:, ci, r_, c_]
    return dxp[:, :, t:t + h, l:l + wd], dw


conv_cases = st.fixed_dictionaries({
    "n": st.integers(1, 2), "groups": st.integers(1, 2), "cin_g": st.integers(1, 3),
    "cout_g": st.integers(1, 3), "kernel": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "dilation": st.tuples(st.integers(1, 2), st.integers(1, 2)),
    "padding": st.tuples(*[st.integers(0, 2)] * 4),
    "hw": st.tuples(st.integers(5, 9), st.integers(5, 9)),
    "bias": st.booleans(), "seed": st.integers(0, 2**32 - 1),
    "rounding": st.sampled_from(["nearest", "stochastic"]),
})


@settings(max_examples=60)
@given(conv_cases)
def test_conv2d_grads_match_autograd_and_naive_model(case):
    rng = np.random.default_rng(case["seed"])
    g = case["groups"]
    op = ops.Conv2d(case["cin_g"] * g, case["cout_g"] * g, case["kernel"], case["stride"],
                    case["padding"], case["dilation"], g, case["bias"])
    in_shape = (case["n"], op.in_channels) + case["hw"]
    out_shape = op.output_shape([in_shape])
    x = random_fixed(rng, in_shape)
    w = random_fixed(rng, (op.out_channels, case["cin_g"]) + op.kernel)
    dy = random_fixed(rng, out_shape)
    stochastic = case["rounding"] == "stochastic"
    rounder = Rounder(BITS, case["rounding"], np.random.default_rng(case["seed"]))
    dx = conv_grad.conv2d_grad_input(op, dy, w, in_shape[2:], rounder)
    dw = conv_grad.conv2d_grad_weight(op, x, dy, rounder)
    db = conv_grad.bias_grad(dy, rounder)

    xt = torch.tensor(x.to_float(), requires_grad=True)
    wt = torch.tensor(w.to_float(), requires_grad=True)
    bt = torch.zeros(op.out_channels, dtype=torch.float64, requires_grad=True)
    params = {"weight": wt, "bias": bt} if op.bias else {"weight": wt}
    run_node(Node("c", op), [xt], params).backward(torch.tensor(dy.to_float()))
    assert_within_bound(dx, xt.grad.numpy(), stochastic=stochastic)
    assert_within_bound(dw, wt.grad.numpy(), stochastic=stochastic)
    if op.bias:
        assert_within_bound(db, bt.grad.numpy(), stochastic=stochastic)

    naive_dx, naive_dw = naive_conv_grads(op, x.value.astype(float), w.value.astype(float),
                                          dy.value.astype(float))
    draws = np.random.default_rng(case["seed"]) if stochastic else None  # same order of draws
    assert_fixed_equal(dx, naive_requantize(naive_dx, dy.frac_bits + w.frac_bits, rng=draws))
    assert_fixed_equal(dw, naive_requantize(naive_dw, dy.frac_bits + x.frac_bits, rng=draws))
    assert_fixed_equal(db, naive_requantize(dy.value.astype(float).sum(axis=(0, 2, 3)),
                                            dy.frac_bits, rng=draws))


@settings(max_examples=40)
@given(st.integers(1, 6), st.integers(1, 12), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_linear_grads_match_autograd_and_naive_model(n, fin, fout, seed):
    rng = np.random.default_rng(seed)
    x, w, dy = (random_fixed(rng, s) for s in ((n, fin), (fout, fin), (n, fout)))
    rounder = Rounder(BITS)
    dx = conv_grad.linear_grad_input(dy, w, rounder)
    dw = conv_grad.linear_grad_weight(x, dy, rounder)
    db = conv_grad.bias_grad(dy, rounder)

    xt = torch.tensor(x.to_float(), requires_grad=True)
    wt = torch.tensor(w.to_float(), requires_grad=True)
    bt = torch.zeros(fout, dtype=torch.float64, requires_grad=True)
    out = run_node(Node("fc", ops.Linear(fin, fout)), [xt], {"weight": wt, "bias": bt})
    out.backward(torch.tensor(dy.to_float()))
    assert_within_bound(dx, xt.grad.numpy())
    assert_within_bound(dw, wt.grad.numpy())
    assert_within_bound(db, bt.grad.numpy())

    xv, wv, dyv = (t.value.astype(float) for t in (x, w, dy))
    naive_dx = [[sum(dyv[i, o] * wv[o, k] for o in range(fout)) for k in range(fin)]
                for i in range(n)]
    naive_dw = [[sum(dyv[i, o] * xv[i, k] for i in range(n)) for k in range(fin)]
                for o in range(fout)]
    assert_fixed_equal(dx, naive_requantize(naive_dx, dy.frac_bits + w.frac_bits))
    assert_fixed_equal(dw, naive_requantize(naive_dw, dy.frac_bits + x.frac_bits))
    assert_fixed_equal(db, naive_requantize(dyv.sum(axis=0), dy.frac_bits))


def test_stochastic_rounding_is_unbiased_and_reproducible():
    """Stochastic rounding of a constant x/2**s averages to the exact value."""
    acc = np.full(20000, 5 * 2**18 + 3 * 2**16, dtype=np.int64)  # 5.75 * 2**18, shift 6 at 16b
    a = Rounder(BITS, "stochastic", np.random.default_rng(7))(acc, 20)
    b = Rounder(BITS, "stochastic", np.random.default_rng(7))(acc, 20)
    np.testing.assert_array_equal(a.value, b.value)
    exact = 5.75 * 2**18 / 2**(20 - a.frac_bits)  # the exact value in result steps
    assert set(np.unique(a.value)) <= {np.floor(exact), np.floor(exact) + 1}
    assert abs(a.value.mean() - exact) < 0.02
