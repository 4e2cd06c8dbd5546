"""The whole engine in Amaranth's simulator, one tiny layer at a time, against the golden model.

The DDR image is packed here by the convention (feature maps "(cb h w) l", weights
"(mb nb ky kx) (q l)"); the output region is unpacked the same way and compared exactly with
`fpgacnn.golden.ops.run_layer`.
"""

import numpy as np
from amaranth.sim import Simulator
from hypothesis import Phase, given, settings, strategies as st

from fpgacnn.config import HardwareConfig
from fpgacnn.golden.ops import run_layer
from fpgacnn.hw.engine import Engine
from fpgacnn.hw.program import compile_layer, pack_params
from fpgacnn.ir import ops
from fpgacnn.quant.model import QLayer, Requant, TensorFormat
from fpgacnn.sim.ddr import DDRModel, add_ddr_process

NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)
ALIGN = 64


def pack_feature_map(x, l):
    """(C, H, W) ints -> bytes, rows of L int8/uint8 values, channels zero-padded."""
    c, h, w = x.shape
    cb = -(-c // l)
    padded = np.zeros((cb * l, h, w), np.int64)
    padded[:c] = x
    rows = padded.reshape(cb, l, h, w).transpose(0, 2, 3, 1)        # cb h w l
    return (rows.astype(np.int64) & 0xFF).astype(np.uint8).tobytes()


def unpack_feature_map(raw, c, h, w, l, signed):
    cb = -(-c // l)
    v = np.frombuffer(raw, np.int8 if signed else np.uint8)[:cb * h * w * l].astype(np.int64)
    return v.reshape(cb, h, w, l).transpose(0, 3, 1, 2).reshape(cb * l, h, w)[:c]


def pack_weights(wt, q, l):
    m, n, kh, kw = wt.shape
    mb, nb = -(-m // q), -(-n // l)
    padded = np.zeros((mb * q, nb * l, kh, kw), np.int64)
    padded[:m, :n] = wt
    rows = padded.reshape(mb, q, nb, l, kh, kw).transpose(0, 2, 4, 5, 1, 3)
    return (rows & 0xFF).astype(np.uint8).tobytes()


def place(regions):
    """Concatenate regions at ALIGN-byte offsets; returns (image, offsets)."""
    offsets, pos = {}, 0
    for name, size in regions:
        offsets[name] = pos
        pos += -(-max(size, 1) // ALIGN) * ALIGN
    return bytearray(pos + ALIGN), offsets


def run_engine(config, layer, x, in_fmt, pool=False, rounding="half_up", max_cycles=200_000):
    c, h, w = x.shape
    if isinstance(layer.op, ops.Linear):              # a 1x1 convolution on a 1x1 map
        out = run_layer(layer, [x.reshape(1, c)], [in_fmt], rounding).reshape(-1, 1, 1)
    else:
        out = run_layer(layer, [x[None]], [in_fmt], rounding)[0]      # golden (M, OH, OW)
    if pool:
        m_, oh, ow = out.shape
        out = out[:, :oh // 2 * 2, :ow // 2 * 2].reshape(m_, oh // 2, 2, ow // 2, 2).max(
            axis=(2, 4))
    m_, oh, ow = out.shape
    l = config.tn
    x_bytes = pack_feature_map(x, l)
    weight = layer.weight if layer.weight.ndim == 4 else layer.weight.reshape(m_, c, 1, 1)
    w_bytes = pack_weights(weight, config.tm, l)
    p_bytes = pack_params(layer, config)
    out_size = -(-m_ // l) * l * oh * ow
    image, ddr = place([("program", 128), ("input", len(x_bytes)), ("weight", len(w_bytes)),
                        ("params", len(p_bytes)), ("output", out_size)])
    desc = compile_layer(layer, config, ddr, input_shape=(1, c, h, w), input_format=in_fmt,
                         pool=pool, rounding=rounding)
    for name, blob in (("program", desc.to_bytes()), ("input", x_bytes), ("weight", w_bytes),
                       ("params", p_bytes)):
        image[ddr[name]:ddr[name] + len(blob)] = blob
    image[ddr["output"]:ddr["output"] + out_size] = b"\xa5" * out_size     # poison

    dut = Engine(config)
    model = DDRModel.from_config(image, config)
    cycles = []

    async def bench(ctx):
        ctx.set(dut.desc_addr, ddr["program"])
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for n in range(max_cycles):
            if ctx.get(dut.done):
                cycles.append(n)
                return
            await ctx.tick()
        raise AssertionError(f"engine did not finish: state {ctx.get(dut.state)} tile "
                             f"({ctx.get(dut.tile_r)}, {ctx.get(dut.tile_c)}) mb "
                             f"{ctx.get(dut.mb)} nb {ctx.get(dut.nb)}")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    add_ddr_process(sim, model, rd=dut.rd, wr=dut.wr)
    sim.add_testbench(bench)
    sim.run()
    raw = bytes(image[ddr["output"]:ddr["output"] + out_size])
    got = unpack_feature_map(raw, m_, oh, ow, l, layer.output.signed)
    # channels beyond M in the last block must be written as zeros
    cb = -(-m_ // l)
    full = np.frombuffer(raw, np.uint8).reshape(cb, oh, ow, l)
    assert not full[-1, :, :, m_ - (cb - 1) * l:].any()
    return got, out, cycles[0]


def make_layer(rng, n, m, k, s, p, mode, rounding, act, linear=False):
    if linear:
        op = ops.Linear(n, m)
        weight = rng.integers(-128, 128, size=(m, n))
    else:
        op = ops.Conv2d(n, m, k, stride=s, padding=p)
        weight = rng.integers(-128, 128, size=(m, n, k, k))
    bias = rng.integers(-5000, 5000, size=m)
    if mode == "shift":
        rq = Requant("shift", [1], rng.integers(6, 12, size=m), rounding)
    else:
        mult = rng.integers(1 << 30, 1 << 31, size=m)
        rq = Requant(mode, mult, rng.integers(-14, -8, size=m), rounding)
    out_fmt = TensorFormat(8, bool(rng.integers(2)), 0.1, 0)
    zero = int(rng.integers(out_fmt.lo, out_fmt.hi + 1)) // 4
    out_fmt = TensorFormat(8, out_fmt.signed, 0.1, zero)
    lo, hi = (zero, out_fmt.hi) if act == "relu" else (out_fmt.lo, out_fmt.hi)
    slope = None
    if act == "prelu":
        slope = rng.integers(-300, 300, size=m)
    elif act == "leaky":
        slope = np.array([int(rng.integers(1, 60))])
    return QLayer("layer", op, ("x",), out_fmt, lo, hi, weight=weight, weight_bits=8,
                  bias=bias, requant=rq, act_multiplier=slope, act_shift=7 if slope is not None
                  else 0)


CONFIGS = [HardwareConfig(tm=4, tn=4, tr=3, tc=4, ddr_width_bits=32, max_kernel=11),
           HardwareConfig(tm=8, tn=4, tr=4, tc=3, ddr_width_bits=32, max_kernel=11),
           HardwareConfig(tm=2, tn=2, tr=2, tc=2, ddr_width_bits=16, max_kernel=5)]


def test_engine_conv_3x3_padded_matches_golden():
    rng = np.random.default_rng(0)
    config = CONFIGS[0]
    layer = make_layer(rng, 5, 6, 3, 1, 1, "gemmlowp", "half_up", "relu")
    in_fmt = TensorFormat(8, False, 0.1, 7)
    x = rng.integers(0, 256, size=(5, 5, 6))
    got, want, _ = run_engine(config, layer, x, in_fmt)
    np.testing.assert_array_equal(got, want)


@st.composite
def conv_cases(draw):
    config = draw(st.sampled_from(CONFIGS))
    k = draw(st.integers(1, config.max_kernel))
    s = draw(st.integers(1, config.max_stride))
    p = draw(st.integers(0, min(k - 1, 3)))
    h = draw(st.integers(max(1, k - 2 * p), max(1, k - 2 * p) + 5))
    w = draw(st.integers(max(1, k - 2 * p), max(1, k - 2 * p) + 5))
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    pool = draw(st.booleans()) and oh >= 2 and ow >= 2
    return dict(config=config, n=draw(st.integers(1, 9)), m=draw(st.integers(1, 10)), k=k,
                s=s, p=p, h=h, w=w, pool=pool, mode=draw(st.sampled_from(
                    ["shift", "gemmlowp", "single_round"])),
                rounding=draw(st.sampled_from(["half_up", "half_even", "truncate"])),
                act=draw(st.sampled_from(["none", "relu", "leaky", "prelu"])),
                in_signed=draw(st.booleans()), seed=draw(st.integers(0, 1 << 30)))


def _input(rng, c, h, w, signed):
    fmt = TensorFormat(8, signed, 0.1, int(rng.integers(-20, 20)) if signed else
                       int(rng.integers(0, 40)))
    return fmt, rng.integers(fmt.lo, fmt.hi + 1, size=(c, h, w))


@settings(max_examples=25, deadline=None, phases=NO_SHRINK)
@given(conv_cases())
def test_engine_conv_sweep_matches_golden(c):
    rng = np.random.default_rng(c["seed"])
    layer = make_layer(rng, c["n"], c["m"], c["k"], c["s"], c["p"], c["mode"], c["rounding"],
                       c["act"])
    in_fmt, x = _input(rng, c["n"], c["h"], c["w"], c["in_signed"])
    got, want, _ = run_engine(c["config"], layer, x, in_fmt, pool=c["pool"],
                              rounding=c["rounding"])
    np.testing.assert_array_equal(got, want)


@settings(max_examples=8, deadline=None, phases=NO_SHRINK)
@given(st.sampled_from(CONFIGS), st.integers(1, 20), st.integers(1, 12),
       st.sampled_from(["shift", "gemmlowp", "single_round"]),
       st.sampled_from(["half_up", "half_even", "truncate"]), st.integers(0, 1 << 30))
def test_engine_linear_matches_golden(config, n, m, mode, rounding, seed):
    rng = np.random.default_rng(seed)
    layer = make_layer(rng, n, m, 1, 1, 0, mode, rounding, "relu", linear=True)
    in_fmt, x = _input(rng, n, 1, 1, bool(seed & 1))
    got, want, _ = run_engine(config, layer, x, in_fmt, rounding=rounding)
    np.testing.assert_array_equal(got, want)

