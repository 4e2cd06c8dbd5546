"""The C++ convolution with its float32 requantization (fpgacnn.golden.int8conv) against the
numpy definition (fpgacnn.golden.ops): random convolutions (strides, dilations, asymmetric
padding, channel and output counts off the kernel's 4/64 steps, batches, per-channel and
per-tensor multipliers, biases, ReLU/LeakyReLU/PReLU, signed and unsigned formats of every
zero-point parity), on AMX and on AVX-512 VNNI, in one part and split over two threads; and
the requantization's ties and extremes; the integer modes (gemmlowp, single_round, shift with
every rounding) at their corners through the conv kernel and the GEMV. The definition itself
is held to onnxruntime, fbgemm and gemmlowp's reference formulas by the other tests.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fpgacnn import golden
from fpgacnn.golden import gemv, int8conv, native, workers
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, QModel, Requant, TensorFormat

needs_kernel = pytest.mark.skipif(not int8conv.available(),
                                  reason="no g++ or no AVX-512 VNNI: the torch path runs")


@pytest.fixture(params=["amx", "vnni"])
def instructions(request, monkeypatch):
    if request.param == "amx" and not native.amx_usable():
        pytest.skip("no AMX here")
    if request.param == "vnni":
        monkeypatch.setattr(native, "amx_usable", lambda: False)
    return request.param


@pytest.fixture(params=["one part", "two threads"])
def parts(request, monkeypatch):
    if request.param == "two threads":
        if workers.thread_count() < 2:
            pytest.skip("torch has one thread here")
        monkeypatch.setattr(int8conv, "SHARED_MACS", 0)
    return request.param


def _format(signed: bool, zero_point: int) -> TensorFormat:
    return TensorFormat(8, signed, 0.1, zero_point - 128 if signed else zero_point)


def _activation(kind: str, rng, channels: int) -> dict:
    if kind == "leaky":
        return dict(act_multiplier=np.array([6554]), act_shift=16)
    if kind == "prelu":
        return dict(act_multiplier=rng.integers(-70000, 70000, channels), act_shift=16)
    return {}


def _model(conv, shape, fin, fout, activation, per_channel, bias, rng):
    cout = conv.out_channels
    channels = cout if per_channel else 1
    lo = max(fout.lo, fout.zero_point) if activation == "relu" else fout.lo
    layer = QLayer("conv", conv, ("x",), fout, lo, fout.hi,
                   weight=rng.integers(-127, 128, (cout, conv.in_channels) + conv.kernel
                                       ).astype(np.int8),
                   weight_scale=np.ones(1), weight_bits=8,
                   bias=rng.integers(-30000, 30000, cout) if bias else None,
                   requant=Requant("float32",
                                   rng.uniform(2e-5, 4e-3, channels).astype(np.float32),
                                   np.zeros(channels, np.int64)),
                   **_activation(activation, rng, cout))
    return QModel("t", "affine", "float32", "half_even", 32, {"x": shape}, {"x": fin},
                  [layer], ["conv"])


@st.composite
def convolutions(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cin = draw(st.sampled_from([1, 3, 4, 17, 64, 70]))
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    conv = ops.Conv2d(cin, draw(st.sampled_from([1, 5, 16, 63, 64, 65, 130])), kernel,
                      (draw(st.integers(1, 4)), draw(st.integers(1, 3))),
                      tuple(draw(st.integers(0, 3)) for _ in range(4)),
                      (draw(st.integers(1, 2)), draw(st.integers(1, 2))))
    h = draw(st.integers(0, 12)) + conv.dilation[0] * (kernel[0] - 1) + 1
    w = draw(st.integers(0, 12)) + conv.dilation[1] * (kernel[1] - 1) + 1
    shape = (draw(st.integers(1, 3)), cin, h, w)
    fin = _format(draw(st.booleans()), draw(st.integers(0, 255)))
    fout = _format(draw(st.booleans()), draw(st.integers(0, 255)))
    qm = _model(conv, shape, fin, fout, draw(st.sampled_from(["none", "relu", "leaky", "prelu"])),
                draw(st.booleans()), draw(st.booleans()), rng)
    return qm, rng.integers(fin.lo, fin.hi + 1, shape)


def _counted(monkeypatch, cls, method: str) -> list:
    """A list that grows by one at each call of cls.method (which still runs)."""
    calls = []
    original = getattr(cls, method)
    monkeypatch.setattr(cls, method, lambda *args: calls.append(1) or original(*args))
    return calls


def _assert_kernel_equals_definition(qm, x, monkeypatch):
    calls = _counted(monkeypatch, int8conv.ConvKernel, "__call__")
    got = golden.run(qm, x)["conv"]
    expected = golden.run(qm, x, fast_path=False)["conv"]
    per_channel_table = qm.layers[0].act_multiplier is not None and \
        qm.layers[0].act_multiplier.size > 1
    assert calls or per_channel_table           # PReLU's slopes: the definition's epilogue
    np.testing.assert_array_equal(got, expected)


@needs_kernel
@given(case=convolutions())
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_kernel_equals_the_definition(case, instructions, parts, monkeypatch):
    qm, x = case
    with monkeypatch.context() as patch:
        _assert_kernel_equals_definition(qm, x, patch)


@needs_kernel
@pytest.mark.parametrize("name, cin, cout, kernel, stride, padding, size", [
    ("alexnet conv1", 3, 64, 11, 4, (2, 2, 2, 2), 63),
    ("vgg conv", 64, 128, 3, 1, (1, 1, 1, 1), 20),
    ("1x1 wide", 512, 255, 1, 1, (0, 0, 0, 0), 13),
])
def test_kernel_equals_the_definition_on_network_sized_layers(name, cin, cout, kernel, stride,
                                                              padding, size, instructions,
                                                              parts, monkeypatch):
    rng = np.random.default_rng(cin * cout)
    conv = ops.Conv2d(cin, cout, kernel, stride, padding)
    shape = (2, cin, size, size)
    fin, fout = _format(False, 3), _format(False, 128)
    qm = _model(conv, shape, fin, fout, "relu", True, True, rng)
    _assert_kernel_equals_definition(qm, rng.integers(0, 256, shape), monkeypatch)


@needs_kernel
@pytest.mark.parametrize("zero_point", [0, 1, 127, 128, 131, 255])
@pytest.mark.parametrize("signed_out", [False, True])
@pytest.mark.parametrize("activation", ["none", "relu", "leaky"])
def test_requantization_ties_and_extremes_equal_the_definition(zero_point, signed_out,
                                                                activation, instructions,
                                                                monkeypatch):
    """A 1x1 conv of one input channel, weight 1: each output is the input plus its bias, so
    biases around the int32 extremes, 2**22 and 1.5 * 2**23 and multipliers of 0.5 / 0.25
    (exact ties) reach every corner of the float32 requantization."""
    biases = np.array([0, 1, -1, 2**22, -2**22, 12582912, -12582912, 2**24 + 1,
                       2**31 - 17000, -2**31 + 17000, 255, -255, 5, -5, 3, -3], np.int64)
    cout = len(biases)
    multipliers = np.resize(np.array([0.5, 0.25, 1.0, 3e-10, 1.5e-3], np.float32), cout)
    fin, fout = _format(False, 128), _format(signed_out, zero_point)
    lo = max(fout.lo, fout.zero_point) if activation == "relu" else fout.lo
    layer = QLayer("conv", ops.Conv2d(1, cout, 1), ("x",), fout, lo, fout.hi,
                   weight=np.ones((cout, 1, 1, 1), np.int8), weight_scale=np.ones(1),
                   weight_bits=8, bias=biases,
                   requant=Requant("float32", multipliers, np.zeros(cout, np.int64)),
                   **_activation(activation, None, cout))
    shape = (1, 1, 4, 64)
    qm = QModel("t", "affine", "float32", "half_even", 32, {"x": shape}, {"x": fin}, [layer],
                ["conv"])
    x = np.arange(256).reshape(shape)
    _assert_kernel_equals_definition(qm, x, monkeypatch)


@needs_kernel
def test_amx_can_be_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("FPGACNN_AMX", "0")
    assert not native.amx_usable.__wrapped__()


_INTEGER_CASES = {   # mode -> (multiplier, shift) per output channel: the corners of each mode
    "gemmlowp": [(1 << 30, -1), (2**31 - 1, -31), (-2**31, 0), (-2**31, 3), (1 << 30, 32),
                 (1 << 30, 40), (2**31 - 1, -62), (1 << 30, -70), (1518500250, -9),
                 (-1518500250, -4), (3, 0), (0, 5)],
    "single_round": [(1 << 30, -1), (2**31 - 1, -31), (-2**31, 0), (1 << 30, 30),
                     (1518500250, -9), (-12345, -2), (3, 0), (0, 5)],
    "shift": [(1, 0), (1, 1), (3, 7), (-2, 4), (127, 20), (1, 31), (5, -8), (1, 61),
              (-1, 2), (0, 3), (7, 13), (1, -20)],
}


def _integer_layer(kind: str, mode: str, rounding: str, activation: str, fout: TensorFormat):
    pairs = _INTEGER_CASES[mode]
    biases = np.resize(np.array([0, 1, -1, 3, -3, 2**20 + 7, -2**20 - 9, 2**31 - 17000,
                                 -2**31 + 17000, 2**24 + 1, -12582912, 255], np.int64),
                       len(pairs))
    cout = len(pairs)
    op = ops.Conv2d(1, cout, 1) if kind == "conv" else ops.Linear(1, cout)
    weight = np.ones((cout, 1, 1, 1) if kind == "conv" else (cout, 1), np.int8)
    lo = max(fout.lo, fout.zero_point) if activation == "relu" else fout.lo
    return QLayer("conv", op, ("x",), fout, lo, fout.hi, weight=weight,
                  weight_scale=np.ones(1), weight_bits=8, bias=biases,
                  requant=Requant(mode, np.array([m for m, _ in pairs], np.int64),
                                  np.array([s for _, s in pairs], np.int64), rounding),
                  **_activation(activation, None, cout))


@needs_kernel
@pytest.mark.parametrize("kind", ["conv", "linear"])
@pytest.mark.parametrize("mode, rounding", [("gemmlowp", "half_up"),
                                            ("single_round", "half_up"),
                                            ("shift", "half_up"), ("shift", "half_even"),
                                            ("shift", "truncate")])
@pytest.mark.parametrize("activation", ["none", "relu", "leaky"])
@pytest.mark.parametrize("signed_out, zero_point", [(False, 0), (False, 131), (True, 127)])
def test_integer_modes_equal_the_definition_at_their_corners(kind, mode, rounding, activation,
                                                              signed_out, zero_point,
                                                              monkeypatch):
    """requant.h's gemmlowp (saturating left shifts, INT32_MIN x INT32_MIN, right shifts past
    31), single_round and shift (every rounding, left shifts) modes, through the conv kernel
    and the GEMV, against the numpy definition; each output is the input plus its bias."""
    fout = _format(signed_out, zero_point)
    layer = _integer_layer(kind, mode, rounding, activation, fout)
    rows = 16 if kind == "linear" else 1
    monkeypatch.setattr(int8conv, "AMX_LINEAR_ROWS", 10**9)     # linear: the GEMV
    shape = (1, 1, 4, 64) if kind == "conv" else (rows, 1)
    fin = _format(False, 128)
    qm = QModel("t", "affine" if mode != "shift" else "pow2", mode, rounding, 32,
                {"x": shape}, {"x": fin}, [layer], ["conv"])
    x = np.arange(256).reshape(shape) if kind == "conv" else np.arange(0, 256, 16)[:, None]
    native_kernel = int8conv.ConvKernel if kind == "conv" else gemv.RequantizedGemv
    calls = _counted(monkeypatch, native_kernel, "__call__")
    with workers.torch_threads_as_workers():
        got = golden.run(qm, x)["conv"]
    assert calls
    np.testing.assert_array_equal(got, golden.run(qm, x, fast_path=False)["conv"])


@needs_kernel
@pytest.mark.parametrize("rows", [12, 16, 17, 100])
@pytest.mark.parametrize("mode", ["float32", "gemmlowp", "shift"])
def test_linear_layers_on_amx_equal_the_definition(rows, mode, monkeypatch):
    """From AMX_LINEAR_ROWS rows a linear layer is a 1x1 convolution in the conv kernel, its
    weight tiles split over the threads."""
    if not native.amx_usable():
        pytest.skip("no AMX here")
    rng = np.random.default_rng(rows)
    k, outputs = 1000, 200
    fin, fout = _format(False, 3), _format(True, 120)
    channels = outputs if mode != "shift" else 1
    rq = {"float32": Requant("float32", rng.uniform(2e-5, 4e-4, channels).astype(np.float32),
                             np.zeros(channels, np.int64)),
          "gemmlowp": Requant("gemmlowp", rng.integers(1 << 30, 1 << 31, channels),
                              rng.integers(-14, -8, channels)),
          "shift": Requant("shift", [3], [13], "half_even")}[mode]
    layer = QLayer("conv", ops.Linear(k, outputs), ("x",), fout, fout.lo, fout.hi,
                   weight=rng.integers(-127, 128, (outputs, k)).astype(np.int8),
                   weight_scale=np.ones(1), weight_bits=8,
                   bias=rng.integers(-30000, 30000, outputs), requant=rq)
    qm = QModel("t", "affine", mode, "half_even", 32, {"x": (rows, k)}, {"x": fin}, [layer],
                ["conv"])
    x = rng.integers(0, 256, (rows, k))
    calls = _counted(monkeypatch, int8conv.ConvKernel, "linear")
    with workers.torch_threads_as_workers():
        got = golden.run(qm, x)["conv"]
    assert calls
    np.testing.assert_array_equal(got, golden.run(qm, x, fast_path=False)["conv"])
