"""Gradients of activations, pooling and routing ops in fixed point: against torch autograd
on the dequantized values (within the documented bound) and against plain loop models of the
same integer arithmetic (exactly, rationals where a division is involved)."""

from fractions import Fraction
import math

import numpy as np
import torch
from hypothesis import given, settings, strategies as st

from fpgacnn.ir import ops
from fpgacnn.ir.graph import Node
from fpgacnn.ir.reference import run_node
from fpgacnn.train import pooling, routing
from fpgacnn.train.activation_grad import activation_grad, prelu_slope_grad
from fpgacnn.train.fixed import Fixed, Rounder
from fpgacnn.train.forward import leaky_alpha

BITS = 16


def random_fixed(rng, shape, bits=BITS, spread=None):
    spread = spread or (1 << (bits - 1))
    value = rng.integers(-spread, spread, size=shape, dtype=np.int64)
    return Fixed(value, int(rng.integers(6, 15)), bits)


def rational_requantize(values, frac, bits=BITS):
    """Round exact rationals (in units of 2**-frac) once: shift from the largest, nearest."""
    flat = [Fraction(v) for v in np.ravel(values)]
    largest = max((abs(v) for v in flat), default=0)
    shift = 0  # the smallest shift with largest < 2**(bits - 1 + shift)
    while largest >= Fraction(2) ** (bits - 1 + shift):
        shift += 1
    while largest and largest < Fraction(2) ** (bits - 2 + shift):
        shift -= 1
    lo, hi = -2 ** (bits - 1), 2 ** (bits - 1) - 1
    q = [min(max(math.floor(v / Fraction(2) ** shift + Fraction(1, 2)), lo), hi)
         for v in flat]
    return np.array(q, dtype=np.int64).reshape(np.shape(values)), frac - shift


def assert_fixed_equal(result: Fixed, expected):
    value, frac = expected
    np.testing.assert_array_equal(result.value, value)
    if np.any(value):
        assert result.frac_bits == frac


def assert_within_bound(result: Fixed, reference, bits=BITS):
    reference = np.asarray(reference, dtype=np.float64)
    err = np.abs(result.to_float() - reference)
    step = 2.0 ** -result.frac_bits
    saturated = np.abs(result.value) == (1 << (bits - 1)) - 1
    slack = 1e-12 * np.abs(reference).max(initial=0)  # the float64 oracle's own rounding
    assert np.all(err[~saturated] <= step / 2 + slack)
    assert err.max(initial=0) <= 2.0 ** -(bits - 2) * np.abs(reference).max(initial=0) + slack


def autograd(op, xs: list[Fixed], dy: Fixed, params=None):
    """Input (and parameter) gradients of `op` by torch autograd on the dequantized values."""
    ts = [torch.tensor(x.to_float(), requires_grad=True) for x in xs]
    ps = {k: torch.tensor(v, requires_grad=True) for k, v in (params or {}).items()}
    run_node(Node("n", op), ts, ps).backward(torch.tensor(dy.to_float()))
    return [t.grad.numpy() for t in ts], {k: p.grad.numpy() for k, p in ps.items()}


# ---- activations -----------------------------------------------------------------------------

@settings(max_examples=40)
@given(st.sampled_from(["relu", "leaky", "prelu1", "prelu", "clip"]), st.integers(1, 3),
       st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_activation_grads(kind, n, c, seed):
    rng = np.random.default_rng(seed)
    z = random_fixed(rng, (n, c, 3, 4), spread=40)  # small values: zeros and ties happen
    dy = random_fixed(rng, (n, c, 3, 4))
    rounder = Rounder(BITS)
    slope, params = None, None
    if kind == "relu":
        op = ops.ReLU()
    elif kind == "clip":
        op = ops.Clip(-10 * 2.0 ** -z.frac_bits, 17 * 2.0 ** -z.frac_bits)  # exact boundaries
    elif kind == "leaky":
        slope = leaky_alpha(ops.LeakyReLU(0.1), BITS)
        op = ops.LeakyReLU(float(slope.to_float()))
    else:
        channels = 1 if kind == "prelu1" else c
        op = ops.PReLU(channels)
        slope = random_fixed(rng, (channels,), spread=1 << 12)
        params = {"slope": slope.to_float()}
    dz = activation_grad(op, dy, z, rounder, slope)
    (ref_dz,), ref_params = autograd(op, [z], dy, params)
    assert_within_bound(dz, ref_dz)

    zv, dyv = z.value, dy.value
    if kind in ("relu", "clip"):
        lo, hi = (-10, 17) if kind == "clip" else (1, np.inf)
        np.testing.assert_array_equal(dz.value, np.where((zv >= lo) & (zv <= hi), dyv, 0))
        assert dz.frac_bits == dy.frac_bits
        return
    s = np.broadcast_to(slope.value.reshape((1, -1, 1, 1) if slope.value.size > 1 else ()),
                        zv.shape)
    exact = [Fraction(int(d)) * 2 ** slope.frac_bits if zz > 0 else Fraction(int(d) * int(k))
             for d, zz, k in zip(dyv.ravel(), zv.ravel(), s.ravel())]
    assert_fixed_equal(dz, rational_requantize(np.array(exact, dtype=object).reshape(zv.shape),
                                               dy.frac_bits + slope.frac_bits))
    if kind.startswith("prelu"):
        dslope = prelu_slope_grad(dy, z, op.channels, rounder)
        assert_within_bound(dslope, ref_params["slope"])
        per_channel = [sum(int(d) * int(zz) for d, zz in zip(dyv[:, ch].ravel(), zv[:, ch].ravel())
                           if zz <= 0) for ch in range(c)]
        sums = per_channel if op.channels > 1 else [sum(per_channel)]
        assert_fixed_equal(dslope, rational_requantize(sums, dy.frac_bits + z.frac_bits))


# ---- pooling ---------------------------------------------------------------------------------

pool_cases = st.fixed_dictionaries({
    "kernel": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "pad": st.tuples(*[st.integers(0, 1)] * 4), "ceil": st.booleans(),
    "hw": st.tuples(st.integers(3, 7), st.integers(3, 7)), "seed": st.integers(0, 2**32 - 1),
})


def _pool_op(cls, case, **extra):
    k = case["kernel"]
    pad = tuple(min(p, kk // 2) for p, kk in zip(case["pad"], k + k))  # PyTorch's limit
    return cls(k, case["stride"], pad, case["ceil"], **extra)


def naive_window_cells(op, h, w, i, j):
    """(row, col) of each cell of window (i, j) in input coordinates, row-major."""
    t, l = op.padding[:2]
    return [(i * op.stride[0] + u - t, j * op.stride[1] + v - l)
            for u in range(op.kernel[0]) for v in range(op.kernel[1])]


@settings(max_examples=50)
@given(pool_cases)
def test_maxpool_grad_routes_to_the_forward_choice(case):
    rng = np.random.default_rng(case["seed"])
    op = _pool_op(ops.MaxPool, case)
    x = random_fixed(rng, (2, 2) + case["hw"], spread=3)  # many ties
    y, argmax = pooling.maxpool_forward(op, x)
    dy = random_fixed(rng, y.shape)
    dx = pooling.maxpool_grad(op, dy, argmax, x.shape, Rounder(BITS))
    (ref,), _ = autograd(op, [x], dy)
    assert_within_bound(dx, ref)
    np.testing.assert_array_equal(y.to_float(), run_node(Node("p", op), [
        torch.tensor(x.to_float())], {}).numpy())

    n, c, h, w = x.shape
    naive = np.zeros(x.shape, dtype=object)
    for a in range(n):
        for b in range(c):
            for i in range(y.shape[2]):
                for j in range(y.shape[3]):
                    cells = [(r, s) for r, s in naive_window_cells(op, h, w, i, j)
                             if 0 <= r < h and 0 <= s < w]
                    best = cells[0]
                    for r, s in cells[1:]:
                        if x.value[a, b, r, s] > x.value[a, b][best]:
                            best = (r, s)
                    naive[a, b][best] += int(dy.value[a, b, i, j])
    assert_fixed_equal(dx, rational_requantize(naive, dy.frac_bits))


@settings(max_examples=50)
@given(pool_cases, st.booleans())
def test_avgpool_grad(case, include_pad):
    rng = np.random.default_rng(case["seed"])
    op = _pool_op(ops.AvgPool, case, count_include_pad=include_pad)
    x = random_fixed(rng, (1, 2) + case["hw"])
    out_shape = op.output_shape([x.shape])
    dy = random_fixed(rng, out_shape)
    dx = pooling.avgpool_grad(op, dy, x.shape, Rounder(BITS))
    (ref,), _ = autograd(op, [x], dy)
    assert_within_bound(dx, ref)

    _, _, h, w = x.shape
    t, l, b, r = op.padding
    naive = np.full(x.shape, Fraction(0), dtype=object)
    for i in range(out_shape[2]):
        for j in range(out_shape[3]):
            cells = naive_window_cells(op, h, w, i, j)
            inside = [(p, q) for p, q in cells if 0 <= p < h and 0 <= q < w]
            padded = [(p, q) for p, q in cells if -t <= p < h + b and -l <= q < w + r]
            count = len(padded) if include_pad else len(inside)
            for p, q in inside:
                for ch in range(2):
                    naive[0, ch, p, q] += Fraction(int(dy.value[0, ch, i, j]), count)
    assert_fixed_equal(dx, rational_requantize(naive, dy.frac_bits))


@settings(max_examples=20)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_global_avgpool_grad(h, w, seed):
    rng = np.random.default_rng(seed)
    x = random_fixed(rng, (2, 3, h, w))
    dy = random_fixed(rng, (2, 3, 1, 1))
    dx = pooling.global_avgpool_grad(dy, x.shape, Rounder(BITS))
    (ref,), _ = autograd(ops.GlobalAvgPool(), [x], dy)
    assert_within_bound(dx, ref)
    naive = np.empty(x.shape, dtype=object)
    for idx in np.ndindex(x.shape):
        naive[idx] = Fraction(int(dy.value[idx[0], idx[1], 0, 0]), h * w)
    assert_fixed_equal(dx, rational_requantize(naive, dy.frac_bits))


# ---- routing ---------------------------------------------------------------------------------

@settings(max_examples=20)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_upsample_concat_flatten_add_grads(scale, c1, c2, seed):
    rng = np.random.default_rng(seed)
    rounder = Rounder(BITS)
    x = random_fixed(rng, (2, c1, 3, 2))
    dy = random_fixed(rng, (2, c1, 3 * scale, 2 * scale))
    dx = routing.upsample_grad(dy, scale, rounder)
    (ref,), _ = autograd(ops.Upsample(scale), [x], dy)
    assert_within_bound(dx, ref)
    naive = np.zeros(x.shape, dtype=np.int64)
    for i in range(3 * scale):
        for j in range(2 * scale):
            naive[:, :, i // scale, j // scale] += dy.value[:, :, i, j]
    assert_fixed_equal(dx, rational_requantize(naive, dy.frac_bits))

    a, b = random_fixed(rng, (2, c1, 2, 2)), random_fixed(rng, (2, c2, 2, 2))
    dcat = random_fixed(rng, (2, c1 + c2, 2, 2))
    da, db = routing.concat_grad(dcat, [c1, c2])
    (ref_a, ref_b), _ = autograd(ops.Concat(), [a, b], dcat)
    np.testing.assert_array_equal(da.to_float(), ref_a)
    np.testing.assert_array_equal(db.to_float(), ref_b)

    dflat = random_fixed(rng, (2, c1 * 4))
    (ref_f,), _ = autograd(ops.Flatten(), [a], dflat)
    np.testing.assert_array_equal(routing.flatten_grad(dflat, a.shape).to_float(), ref_f)

    (ref_1, ref_2), _ = autograd(ops.Add(), [a, a], Fixed(dcat.value[:, :c1], 3, BITS))
    np.testing.assert_array_equal(ref_1, Fixed(dcat.value[:, :c1], 3, BITS).to_float())
    np.testing.assert_array_equal(ref_2, ref_1)
