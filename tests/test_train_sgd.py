"""The integer SGD update against a plain Python-integer model of the documented rule (exactly)
and against torch.optim.SGD on the dequantized values (within the bound of its roundings)."""

import numpy as np
import torch
from hypothesis import given, settings, strategies as st

from fpgacnn.train.fixed import Fixed
from fpgacnn.train.sgd import SGD, MasterWeight


def floor_div_half_up(x: int, d: int) -> int:
    """floor(x / d + 1/2) in Python integers."""
    return (2 * x + d) // (2 * d)


def naive_step(w, v, g, g_frac, w_frac, bits, lr, mu, wd):
    """The update rule of sgd.py in Python integers; lr, mu, wd are (int, frac) pairs."""
    lo, hi = -2 ** (bits - 1), 2 ** (bits - 1) - 1
    sat = lambda a: min(max(a, lo), hi)  # noqa: E731
    if g_frac >= w_frac:
        g2 = floor_div_half_up(g, 2 ** (g_frac - w_frac))
    else:
        g2 = g * 2 ** (w_frac - g_frac)
    g2 = sat(g2)
    if wd[0]:
        g2 += floor_div_half_up(wd[0] * w, 2 ** wd[1])
    if mu[0]:
        g2 = floor_div_half_up(mu[0] * v, 2 ** mu[1]) + g2
    v = sat(g2)
    w = sat(w - floor_div_half_up(lr[0] * v, 2 ** lr[1]))
    return w, v


@settings(max_examples=40)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.9]), st.sampled_from([0.0, 1e-3]),
       st.integers(16, 32))
def test_sgd_matches_integer_model_and_float_sgd(seed, momentum, weight_decay, update_bits):
    rng = np.random.default_rng(seed)
    w0 = rng.standard_normal(12) * rng.uniform(0.05, 3)
    master = MasterWeight.from_float(w0, update_bits)
    sgd = SGD(lr=0.05, momentum=momentum, weight_decay=weight_decay)
    consts = [(int(c.value), c.frac_bits) if v else (0, 0) for c, v in
              ((sgd.constant(sgd.lr), 1), (sgd.constant(momentum), momentum),
               (sgd.constant(weight_decay), weight_decay))]
    lr_q, mu_q, wd_q = (c[0] * 2.0 ** -c[1] for c in consts)

    w_naive = [int(a) for a in master.value]
    v_naive = [0] * len(w_naive)
    wt = torch.tensor(master.to_float(), requires_grad=True)
    opt = torch.optim.SGD([wt], lr=lr_q, momentum=mu_q, weight_decay=wd_q)
    step = 2.0 ** -master.frac_bits
    err_w, err_v = 0.0, 0.0
    for _ in range(5):
        grad = Fixed(rng.integers(-2**15, 2**15, size=12), int(rng.integers(8, 40)), 16)
        sgd.step(master, grad)
        for i in range(12):
            w_naive[i], v_naive[i] = naive_step(w_naive[i], v_naive[i], int(grad.value[i]),
                                                grad.frac_bits, master.frac_bits, update_bits,
                                                *consts)
        wt.grad = torch.tensor(grad.to_float())
        opt.step()
        # each step rounds at most three times into v (half a step each) and once into w
        err_v = mu_q * err_v + wd_q * err_w + 1.5 * step
        err_w = err_w + lr_q * err_v + 0.5 * step
    np.testing.assert_array_equal(master.value, w_naive)
    np.testing.assert_array_equal(master.velocity, v_naive)
    if master.saturations == 0:
        assert np.max(np.abs(master.to_float() - wt.detach().numpy())) <= err_w * (1 + 1e-9)


def test_saturation_is_counted_not_wrapped():
    master = MasterWeight.from_float(np.array([3.9, -3.9]), update_bits=16)
    # range +-16: the bound 4 of 3.9 times 4; the update moves by about 16 each way
    SGD(lr=1.0).step(master, Fixed(np.array([-2**15, 2**15 - 1]), 11, 16))
    np.testing.assert_array_equal(master.value, [2**15 - 1, -2**15])
    assert master.saturations == 2


def test_stochastic_update_rounding_is_unbiased():
    """A tiny gradient times the learning rate is far below one step of the master weight:
    nearest rounding loses it, stochastic rounding keeps it on average."""
    grad = Fixed(np.full(4000, 1), 40, 16)  # 2**-40, far below the 2**-28 step
    near = MasterWeight.from_float(np.zeros(4000), 32)
    SGD(lr=0.5, rounding="nearest").step(near, grad)
    assert not near.value.any()
    sto = MasterWeight.from_float(np.zeros(4000), 32)
    sgd = SGD(lr=0.5, rounding="stochastic", rng=np.random.default_rng(3))
    for _ in range(16):
        sgd.step(sto, grad)
    expected = -16 * 0.5 * 2.0 ** -40 / 2.0 ** -sto.frac_bits  # in master steps
    assert abs(sto.value.mean() - expected) < 0.3 * abs(expected) + 0.01
