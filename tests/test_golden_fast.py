"""The fast 8-bit path (fpgacnn.golden.fast) against the numpy definition (fpgacnn.golden.ops).

Random small networks in every requantization mode and rounding, with convolutions (strides,
dilations, asymmetric padding, 1-16+ channels), linear layers, max pools (padding, ceil mode,
Darknet's stride-1 pool), concat with requantized inputs, upsample, flatten and standalone
activations: `golden.run` must give the same integers with and without the fast path. The
definition itself is held to PyTorch/onnxruntime/fbgemm and plain loops by the other tests.
"""

import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from fpgacnn import golden
from fpgacnn.errors import UserError
from fpgacnn.golden import fast, int8_gemm, workers
from fpgacnn.golden.epilogue import Epilogue
from fpgacnn.golden.requant import finish, requantize
from fpgacnn.golden.stored import offset
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, QModel, Requant, TensorFormat

MODES = ["shift", "gemmlowp", "single_round", "float32"]
ROUNDINGS = ["half_up", "half_even", "truncate"]


def _fmt(draw, bits=None):
    bits = bits or draw(st.sampled_from([8, 8, 8, 4, 6]))
    signed = draw(st.booleans())
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return TensorFormat(bits, signed, 0.1, draw(st.integers(lo, hi)))


def _requant(draw, mode, channels, rng):
    if mode == "shift":
        return Requant("shift", rng.integers(1, 4, channels), rng.integers(4, 14, channels),
                       draw(st.sampled_from(ROUNDINGS)))
    if mode == "float32":
        return Requant("float32", rng.uniform(1e-4, 2e-2, channels).astype(np.float32),
                       np.zeros(channels, np.int64))
    return Requant(mode, rng.integers(1 << 30, 1 << 31, channels), rng.integers(-14, 0, channels))


def _activation(draw, rng, channels):
    kind = draw(st.sampled_from([None, "relu", "leaky", "prelu"]))
    slopes = {None: None, "relu": None, "leaky": np.array([6554]),
              "prelu": rng.integers(-70000, 70000, channels)}[kind]
    return kind, slopes


def _layer(name, op, inputs, fout, draw, rng, mode, channels, weight_shape=None):
    kind, slopes = _activation(draw, rng, channels)
    lo = max(fout.lo, fout.zero_point) if kind == "relu" else fout.lo
    extra = {}
    if weight_shape is not None:
        extra = dict(weight=rng.integers(-127, 128, weight_shape).astype(np.int8),
                     weight_scale=np.ones(1), weight_bits=8,
                     bias=rng.integers(-3000, 3000, channels) if draw(st.booleans()) else None)
    return QLayer(name, op, inputs, fout, lo, fout.hi,
                  requant=_requant(draw, mode, channels if draw(st.booleans()) else 1, rng),
                  act_multiplier=slopes, act_shift=16, **extra)


@st.composite
def networks(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mode = draw(st.sampled_from(MODES))
    cin = draw(st.sampled_from([1, 3, 8, 16, 20]))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 3)))
    conv = ops.Conv2d(cin, draw(st.integers(1, 12)), kernel,
                      (draw(st.integers(1, 3)), draw(st.integers(1, 2))),
                      tuple(draw(st.integers(0, 2)) for _ in range(4)),
                      (draw(st.integers(1, 2)), draw(st.integers(1, 2))))
    h = draw(st.integers(0, 9)) + conv.dilation[0] * (kernel[0] - 1) + 1
    w = draw(st.integers(0, 9)) + conv.dilation[1] * (kernel[1] - 1) + 1
    shape = (draw(st.integers(1, 3)), cin, h, w)
    fin, f1 = _fmt(draw), _fmt(draw)
    cout = conv.out_channels
    layers = [_layer("conv", conv, ("x",), f1, draw, rng, mode, cout,
                     (cout, cin) + kernel)]
    _, _, oh, ow = conv.output_shape([shape])
    size = draw(st.integers(1, 3))
    pool = ops.MaxPool(size, draw(st.integers(1, 2)),
                       tuple(draw(st.integers(0, size // 2)) for _ in range(4)),
                       draw(st.booleans()))
    try:
        pool.output_shape([(1, cout, oh, ow)])
        layers.append(QLayer("pool", pool, ("conv",), f1, f1.lo, f1.hi))
        last = "pool"
    except ValueError:
        last = "conv"
    f2 = _fmt(draw)
    layers.append(QLayer("act", ops.LeakyReLU(0.1), (last,), f2, f2.lo, f2.hi,
                         input_requants=(_requant(draw, mode, 1, rng),),
                         act_multiplier=np.array([draw(st.integers(-9000, 9000))]),
                         act_shift=16))
    layers.append(QLayer("up", ops.Upsample(2), ("act",), f2, f2.lo, f2.hi))
    f3 = _fmt(draw)
    cat = ops.Concat(1)
    layers.append(QLayer("cat", cat, ("up", "up"), f3, f3.lo, f3.hi,
                         input_requants=(None if f3 == f2 else _requant(draw, mode, 1, rng),
                                         _requant(draw, mode, 1, rng))))
    layers.append(QLayer("flat", ops.Flatten(), ("cat",), f3, f3.lo, f3.hi))
    qm = QModel("t", "affine", mode, draw(st.sampled_from(ROUNDINGS)), 32, {"x": shape},
                {"x": fin}, layers, ["flat"])
    features = qm.shapes["flat"][1]
    outputs = draw(st.integers(1, 50))
    fc = _layer("fc", ops.Linear(features, outputs), ("flat",), _fmt(draw, 8), draw, rng, mode,
                outputs, (outputs, features))
    qm = QModel("t", "affine", mode, qm.rounding, 32, {"x": shape}, {"x": fin},
                layers + [fc], ["fc", "pool" if last == "pool" else "conv"])
    return qm, rng.integers(fin.lo, fin.hi + 1, shape)


@given(networks())
@settings(max_examples=120, deadline=None)
def test_fast_path_equals_the_definition(case):
    qm, x = case
    got = golden.run(qm, x, keep=True)
    expected = golden.run(qm, x, keep=True, fast_path=False)
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name].dtype == np.int64
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_fast_path_is_taken_for_8_bit_layers_and_refused_outside_its_proof():
    fin = TensorFormat(8, False, 0.1, 3)
    conv = QLayer("c", ops.Conv2d(4, 2, 3), ("x",), fin, 0, 255,
                  weight=np.ones((2, 4, 3, 3), np.int8), weight_scale=np.ones(1),
                  weight_bits=8, requant=Requant("float32", [0.01], [0]))
    shape = [(1, 4, 5, 5)]
    assert fast.kernel_for(conv, [fin], shape) is fast.conv_or_linear
    wide = TensorFormat(9, False, 0.1, 3)
    assert fast.kernel_for(conv, [wide], shape) is None
    big_bias = QLayer("c", conv.op, ("x",), fin, 0, 255, weight=conv.weight,
                      weight_scale=np.ones(1), weight_bits=8, bias=np.array([2**31 - 10, 0]),
                      requant=conv.requant)
    assert fast.kernel_for(big_bias, [fin], shape) is None      # int32 sum could overflow
    wide_w = QLayer("c", conv.op, ("x",), fin, 0, 255, weight=np.full((2, 4, 3, 3), 200),
                    weight_scale=np.ones(1), weight_bits=9, requant=conv.requant)
    assert fast.kernel_for(wide_w, [fin], shape) is None
    all_pad = QLayer("p", ops.MaxPool(2, 2, (0, 0, 2, 2)), ("x",), fin, 0, 255)
    assert fast.kernel_for(all_pad, [fin], [(1, 1, 2, 2)]) is None  # a window of padding only
    qm = QModel("t", "affine", "float32", "half_up", 32, {"x": (1, 1, 2, 2)}, {"x": fin},
                [all_pad], ["p"])
    with pytest.raises(UserError, match="layer 'p'.*only padding"):
        golden.run(qm, np.zeros((1, 1, 2, 2), np.int64))


@pytest.mark.parametrize("bias", [2**31 - 10, -2**31 + 10])
def test_big_bias_falls_back_and_stays_exact(bias):
    fin = TensorFormat(8, False, 0.1, 255)
    w = np.full((1, 16, 3, 3), 127, np.int8)
    layer = QLayer("c", ops.Conv2d(16, 1, 3), ("x",), TensorFormat(8, True, 1.0, 0), -128, 127,
                   weight=w, weight_scale=np.ones(1), weight_bits=8, bias=np.array([bias]),
                   requant=Requant("shift", [1], [24], "half_even"))
    x = np.zeros((1, 16, 3, 3), np.int64)
    qm = QModel("t", "pow2", "shift", "half_up", 64, {"x": x.shape}, {"x": fin}, [layer], ["c"])
    acc = bias + 16 * 9 * (0 - 255) * 127
    expected = min(127, max(-128, round(acc / 2**24)))
    assert golden.run(qm, x)["c"].item() == expected


def test_weight_matrix_is_cached_per_array_and_sums_are_exact():
    w = np.random.default_rng(0).integers(-127, 128, (5, 3, 2, 2)).astype(np.int8)
    wm = int8_gemm.weight_matrix(w)
    assert int8_gemm.weight_matrix(w) is wm
    np.testing.assert_array_equal(wm.sums, w.reshape(5, -1).astype(np.int64).sum(axis=1))
    assert wm.peak == np.abs(w.astype(np.int64)).max()
    dense = torch.zeros(wm.matrix.shape, dtype=torch.int64)
    dense[:12, :5] = torch.from_numpy(w.transpose(0, 2, 3, 1).reshape(5, 12).T.copy())
    assert torch.equal(wm.matrix.to(torch.int64), dense)


def _edge_accumulators(rng, channels):
    """int32 sums: exact ties for power-of-two multipliers, the int32 extremes, both signs."""
    edges = np.array([0, 1, -1, 2, 3, -3, 5, -5, 255, -255, 257, 2**22, -2**22, 2**24 + 1,
                      2**31 - 1, -2**31 + 1, 12582912, -12582912], np.int64)
    noise = rng.integers(-2**31 + 1, 2**31, 64)
    small = rng.integers(-1000, 1000, 64)
    column = np.concatenate([edges, noise, small])
    return np.repeat(column[:, None], channels, axis=1)


@pytest.mark.parametrize("zero_point", [0, 1, 2, 127, 128, 131, 255])
@pytest.mark.parametrize("signed_out", [False, True])
@pytest.mark.parametrize("activation", [None, "relu", "leaky"])
def test_float32_epilogue_equals_the_definition_on_ties_and_extremes(zero_point, signed_out,
                                                                     activation):
    """The float32 epilogue (rounding by 1.5 * 2**23, int8 from the low byte) against
    requantize + finish in numpy, on ties, saturation and every output offset parity."""
    rng = np.random.default_rng(zero_point)
    fout = TensorFormat(8, signed_out, 0.1, zero_point - (128 if signed_out else 0))
    channels = 5
    multipliers = np.array([0.5, 0.25, 1.0, 3e-10, 1.5e-3], np.float32)
    lo = max(fout.lo, fout.zero_point) if activation == "relu" else fout.lo
    layer = QLayer("fc", ops.Linear(3, channels), ("x",), fout, lo, fout.hi,
                   weight=np.ones((channels, 3), np.int8), weight_scale=np.ones(1),
                   weight_bits=8, requant=Requant("float32", multipliers, np.zeros(5, np.int64)),
                   act_multiplier=np.array([6554]) if activation == "leaky" else None,
                   act_shift=16)
    acc = _edge_accumulators(rng, channels)
    corr = np.array([0, 1, -1, 7, 0], np.int64)
    acc = np.clip(acc, -2**31 + 8, 2**31 - 8)           # the caller's promise: acc + corr fits
    dst = torch.empty(acc.shape, dtype=torch.int8)
    epilogue = Epilogue(layer, layer.requant, corr, "half_up")
    assert epilogue.fast
    epilogue(torch.from_numpy(acc.astype(np.int32)), dst)
    expected = finish(requantize(acc + corr, layer.requant, axis=1), layer, axis=1)
    np.testing.assert_array_equal(dst.numpy().astype(np.int64) + offset(fout), expected)


def test_for_each_runs_every_item_once_and_raises_after_the_others_finish():
    seen = []

    def record(item):
        if item == 7:
            raise ValueError("item 7")
        time.sleep(0.001)
        seen.append(item)

    with workers.torch_threads_as_workers():
        workers.for_each(record, [i for i in range(40) if i != 7])
        assert sorted(seen) == [i for i in range(40) if i != 7]
        seen.clear()
        with pytest.raises(ValueError, match="item 7"):
            workers.for_each(record, range(40))
        finished = len(seen)
        time.sleep(0.05)
        assert len(seen) == finished        # nothing still running after the raise


@pytest.mark.parametrize("mode", ["gemmlowp", "float32"])
def test_per_channel_activation_tables_equal_the_definition(mode):
    """A standalone PReLU with one slope per channel: a table per channel (not shared)."""
    rng = np.random.default_rng(3)
    fin, fout = TensorFormat(8, False, 0.1, 7), TensorFormat(8, True, 0.2, -3)
    channels = 6
    rq = (Requant("float32", [0.37], [0]) if mode == "float32" else
          Requant("gemmlowp", [1 << 30], [-1]))
    prelu = QLayer("prelu", ops.PReLU(channels), ("x",), fout, fout.lo, fout.hi,
                   input_requants=(rq,), act_multiplier=rng.integers(-70000, 70000, channels),
                   act_shift=16)
    shape = (3, channels, 5, 4)
    qm = QModel("t", "affine", mode, "half_up", 32, {"x": shape}, {"x": fin}, [prelu],
                ["prelu"])
    x = rng.integers(0, 256, shape)
    assert fast.kernel_for(prelu, [fin], [shape]) is fast.elementwise
    np.testing.assert_array_equal(golden.run(qm, x)["prelu"],
                                  golden.run(qm, x, fast_path=False)["prelu"])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("activation", [None, "relu", "leaky"])
def test_residual_add_equals_the_definition(mode, rounding, activation, monkeypatch):
    """The add from its table of every pair of codes, in every mode (float32: onnxruntime's
    QLinearAdd; else integer rescaling), signed and unsigned inputs, against the definition;
    and on the definition's own path where a pair would raise."""
    rng = np.random.default_rng(len(mode) + len(rounding))
    fa, fb = TensorFormat(8, False, 0.1, 7), TensorFormat(8, True, 0.3, -2)
    fout = TensorFormat(8, False, 0.25, 131)
    if mode == "float32":
        rqs, final = (Requant("float32", [0.4], [0]), Requant("float32", [1.2], [0])), None
    else:
        rqs = (_requant_for_add(mode, rounding, 3), _requant_for_add(mode, rounding, 5))
        final = Requant("shift", [1], [4], rounding)
    lo = fout.zero_point if activation == "relu" else fout.lo
    act = dict(act_multiplier=np.array([6554]), act_shift=16) if activation == "leaky" else {}
    layer = QLayer("add", ops.Add(), ("a", "b"), fout, lo, fout.hi, input_requants=rqs,
                   requant=final, **act)
    shape = (2, 5, 7, 3)
    qm = QModel("t", "affine", mode, rounding, 32, {"a": shape, "b": shape},
                {"a": fa, "b": fb}, [layer], ["add"])
    x = {"a": rng.integers(0, 256, shape), "b": rng.integers(-128, 128, shape)}
    assert fast.kernel_for(layer, [fa, fb], [shape, shape]) is fast.add
    np.testing.assert_array_equal(golden.run(qm, x)["add"],
                                  golden.run(qm, x, fast_path=False)["add"])


def _requant_for_add(mode, rounding, seed):
    rng = np.random.default_rng(seed)
    if mode == "shift":
        return Requant("shift", [int(rng.integers(1, 9))], [-2], rounding)
    return Requant(mode, [int(rng.integers(1 << 30, 1 << 31))], [int(rng.integers(-3, 3))])


def test_add_with_per_channel_slopes_runs_the_definition():
    fin = TensorFormat(8, False, 0.1, 0)
    layer = QLayer("add", ops.Add(), ("a", "b"), fin, 0, 255,
                   input_requants=(Requant("gemmlowp", [1 << 30], [0]),
                                   Requant("gemmlowp", [1 << 30], [0])),
                   requant=Requant("shift", [1], [1], "half_up"),
                   act_multiplier=np.array([100, 200]), act_shift=8)
    assert fast.kernel_for(layer, [fin, fin], [(1, 2, 3, 3)] * 2) is None


def test_add_whose_table_would_raise_runs_the_definition_and_its_errors():
    """A multiplier that overflows 64 bits for codes away from the zero point: the table
    cannot be made, so the definition runs, raising only where the data reach those codes."""
    fin = TensorFormat(8, False, 0.1, 100)
    huge = Requant("shift", [1 << 40], [-22], "half_up")
    layer = QLayer("add", ops.Add(), ("a", "b"), fin, 0, 255,
                   input_requants=(huge, huge), requant=Requant("shift", [1], [61], "half_up"))
    shape = (1, 2, 3, 3)
    qm = QModel("t", "pow2", "shift", "half_up", 32, {"a": shape, "b": shape},
                {"a": fin, "b": fin}, [layer], ["add"])
    at_zero = {"a": np.full(shape, 100), "b": np.full(shape, 100)}
    np.testing.assert_array_equal(golden.run(qm, at_zero)["add"],
                                  golden.run(qm, at_zero, fast_path=False)["add"])
    away = {"a": np.full(shape, 255), "b": np.full(shape, 100)}
    for fast_path in (True, False):
        with pytest.raises(UserError, match="layer 'add'"):
            golden.run(qm, away, fast_path=fast_path)
