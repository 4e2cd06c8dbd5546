"""The DDR image against the convention of docs/export.md, written out as nested loops here;
feature-map values against the golden model; concat inputs placed inside the concat's region."""

import dataclasses
from math import ceil

import numpy as np
import pytest

from fpgacnn import golden
from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.export.ddr import build_ddr_image, plan_ddr
from fpgacnn.export.ddrmap import DdrMap
from fpgacnn.ir import Graph, Node, ops
from fpgacnn.quant import QuantConfig, quantize

CONFIG = HardwareConfig()  # tm = 16, tn = 8, 8-bit values, 64-bit port, bursts of 16


def small_graph(seed=0):
    rng = np.random.default_rng(seed)

    def w(*shape):
        return rng.normal(0, 0.3, shape).astype(np.float32)

    nodes = [
        Node("a", ops.Conv2d(3, 8, 3, padding=1, activation=ops.ReLU()), ("x",),
             {"weight": w(8, 3, 3, 3), "bias": w(8)}),
        Node("b", ops.Conv2d(3, 5, 1), ("x",), {"weight": w(5, 3, 1, 1), "bias": w(5)}),
        Node("cat", ops.Concat(), ("a", "b")),
        Node("pool", ops.MaxPool(2, 2), ("cat",)),
        Node("g", ops.Conv2d(13, 20, 3, padding=1), ("pool",),
             {"weight": w(20, 13, 3, 3), "bias": w(20)}),
        Node("dw", ops.Conv2d(20, 20, 3, padding=1, groups=20), ("g",),
             {"weight": w(20, 1, 3, 3), "bias": w(20)}),
        Node("flat", ops.Flatten(), ("dw",)),
        Node("fc", ops.Linear(320, 10), ("flat",), {"weight": w(10, 320), "bias": w(10)}),
    ]
    return Graph("small", {"x": (1, 3, 8, 8)}, nodes, ("fc",))


@pytest.fixture(scope="module")
def qmodel():
    calib = np.random.default_rng(1).normal(size=(4, 3, 8, 8)).astype(np.float32)
    return quantize(small_graph(), calib, QuantConfig(per_channel=True))


@pytest.fixture(scope="module")
def x_int(qmodel):
    x = np.random.default_rng(2).normal(size=(2, 3, 8, 8)).astype(np.float32)
    return golden.quantize_input(qmodel, x)


# ---- the convention, as nested loops ----------------------------------------------------------

def weight_bytes(w, q_size, l_size):
    """(mb q) (nb l) ky kx -> (mb nb ky kx) (q l), 8-bit, lane q*L+l at byte q*L+l of the row."""
    o_n, i_n, kh, kw = w.shape
    out = bytearray()
    for mb in range(ceil(o_n / q_size)):
        for nb in range(ceil(i_n / l_size)):
            for ky in range(kh):
                for kx in range(kw):
                    for q in range(q_size):
                        for l in range(l_size):
                            o, i = mb * q_size + q, nb * l_size + l
                            v = int(w[o, i, ky, kx]) if o < o_n and i < i_n else 0
                            out += (v & 0xFF).to_bytes(1, "little")
    return bytes(out)


def channel_bytes(values, q_size, nbytes):
    padded = list(values) + [0] * (-len(values) % q_size)
    return b"".join((int(v) & ((1 << 8 * nbytes) - 1)).to_bytes(nbytes, "little")
                    for v in padded)


def fmap_bytes(x, l_size):
    """n (cb l) h w -> (n cb h w) l at batch 1, 8-bit."""
    _, c_n, h_n, w_n = x.shape
    out = bytearray()
    for cb in range(ceil(c_n / l_size)):
        for h in range(h_n):
            for w in range(w_n):
                for l in range(l_size):
                    c = cb * l_size + l
                    out.append(int(x[0, c, h, w]) & 0xFF if c < c_n else 0)
    return bytes(out)


def engine_record_bytes(layer, channels, q_size):
    """Per block of Q output channels: Q int32 biases, Q multipliers, Q shifts, Q slopes."""
    def column(values):
        values = np.broadcast_to(np.atleast_1d(values), (channels,))
        return list(values) + [0] * (-channels % q_size)

    rq = layer.requant
    slope = 0 if layer.act_multiplier is None else layer.act_multiplier
    columns = [column(v) for v in (layer.bias, rq.multiplier, rq.shift, slope)]
    out = b""
    for start in range(0, len(columns[0]), q_size):
        out += b"".join(channel_bytes(c[start:start + q_size], q_size, 4) for c in columns)
    return out


def test_fc_after_a_flatten_wider_than_the_kernel_limit_keeps_its_matrix(qmodel, x_int):
    image, ddr_map = build_ddr_image(qmodel, CONFIG.with_(max_kernel=3), input_int=x_int)
    w = qmodel.layer("fc").weight[:, :, None, None]
    assert region_bytes(image, ddr_map, "fc.weight") == weight_bytes(w, CONFIG.tm, CONFIG.tn)


def region_bytes(image, ddr_map, name):
    r = ddr_map.region(name)
    return image[r.offset:r.offset + r.size]


@pytest.mark.parametrize("tm, tn", [(16, 8), (3, 4), (8, 2)])
def test_parameters_follow_the_convention(qmodel, x_int, tm, tn):
    config = CONFIG.with_(tm=tm, tn=tn)
    image, ddr_map = build_ddr_image(qmodel, config, input_int=x_int)
    for layer in qmodel.layers:
        if layer.weight is None:
            continue
        w = layer.weight if layer.weight.ndim == 4 else layer.weight[:, :, None, None]
        if layer.name == "fc":  # reads flatten(dw), 20 x 4 x 4: stored as the 4x4 conv it runs as
            w = layer.weight.reshape(10, 20, 4, 4)
        groups = getattr(layer.op, "groups", 1)
        per_group = np.split(w, groups)
        expected = b"".join(weight_bytes(part, config.tm, config.tn) for part in per_group)
        assert region_bytes(image, ddr_map, f"{layer.name}.weight") == expected, layer.name
        assert region_bytes(image, ddr_map, f"{layer.name}.bias") == \
            channel_bytes(layer.bias, config.tm, 4)
        channels = layer.weight.shape[0]
        multiplier = np.broadcast_to(layer.requant.multiplier, (channels,))
        assert region_bytes(image, ddr_map, f"{layer.name}.multiplier") == \
            channel_bytes(multiplier, config.tm, 4)
        assert region_bytes(image, ddr_map, f"{layer.name}.shift") == \
            channel_bytes(np.broadcast_to(layer.requant.shift, (channels,)), config.tm, 1)
        assert region_bytes(image, ddr_map, f"{layer.name}.params") == \
            engine_record_bytes(layer, channels, config.tm)
    # the depthwise conv: 20 groups of one output channel, each padded to a Q x L block
    assert ddr_map.region("dw.weight").rows == 20 * 9
    assert region_bytes(image, ddr_map, "fmap.x") == fmap_bytes(x_int[:1], config.tn)
    assert not any(region_bytes(image, ddr_map, "fmap.a"))


def test_regions_are_aligned_and_disjoint(qmodel):
    ddr_map = plan_ddr(qmodel, CONFIG)
    alignment = CONFIG.ddr_width_bits // 8 * CONFIG.burst_len
    roots = sorted((r for r in ddr_map.regions if r.parent is None), key=lambda r: r.offset)
    for r in roots:
        assert r.offset % alignment == 0
    for before, after in zip(roots, roots[1:]):
        assert before.offset + before.size <= after.offset
    assert roots[-1].offset + roots[-1].size <= ddr_map.size
    kinds = [r.kind for r in roots]
    assert kinds.index("fmap") == len(kinds) - kinds[::-1].count("fmap")  # fmaps come last


def test_every_feature_map_round_trips_through_the_image(qmodel, x_int, tmp_path):
    values = golden.run(qmodel, x_int[:1], keep=True)
    image, ddr_map = build_ddr_image(qmodel, CONFIG, fmaps=values)
    ddr_map.save(tmp_path / "ddr_map.json")
    loaded = DdrMap.load(tmp_path / "ddr_map.json")
    assert loaded == ddr_map
    for name, value in values.items():
        np.testing.assert_array_equal(loaded.read_tensor(image, f"fmap.{name}"), value)
    assert region_bytes(image, ddr_map, "fmap.cat") == fmap_bytes(values["cat"], CONFIG.tn)
    # the concat's inputs are adjacent channel ranges of its region
    cat = ddr_map.region("fmap.cat")
    in0, in1 = ddr_map.region("fmap.cat.in0"), ddr_map.region("fmap.cat.in1")
    assert (in0.offset, in0.channel_offset, in0.parent) == (cat.offset, 0, "fmap.cat")
    assert (in1.offset, in1.channel_offset) == (cat.offset + 64 * 8, 8)
    assert in1.offset + in1.size == cat.offset + cat.size
    assert in0.requantize and in1.requantize  # affine: each input has its own scale
    np.testing.assert_array_equal(ddr_map.read_tensor(image, "fmap.cat.in1"),
                                  values["cat"][:, 8:])
    written = ddr_map.write_tensor(bytearray(len(image)), "fmap.cat", values["cat"])
    assert bytes(written) == bytes(len(image))[:cat.offset] + region_bytes(
        image, ddr_map, "fmap.cat") + bytes(len(image) - cat.offset - cat.size)


def test_concat_inputs_in_the_output_format_share_its_region(qmodel, x_int):
    """A concat whose inputs already have its format costs nothing: they live in its region."""
    cat = qmodel.layer("cat")
    layers = [dataclasses.replace(layer, output=cat.output, out_lo=cat.out_lo,
                                  out_hi=cat.out_hi) if layer.name in ("a", "b") else
              dataclasses.replace(layer, input_requants=(None, None)) if layer.name == "cat"
              else layer for layer in qmodel.layers]
    same_format = dataclasses.replace(qmodel, layers=tuple(layers))
    values = golden.run(same_format, x_int[:1], keep=True)
    image, ddr_map = build_ddr_image(same_format, CONFIG, fmaps={"x": values["x"],
                                                                 "cat": values["cat"]})
    assert ddr_map.region("fmap.a").parent == "fmap.cat"
    np.testing.assert_array_equal(ddr_map.read_tensor(image, "fmap.a"), values["a"])
    np.testing.assert_array_equal(ddr_map.read_tensor(image, "fmap.b"), values["b"])


def test_errors_name_the_layer(qmodel):
    with pytest.raises(UserError, match=r"concat cat: input a has 8 channels, not a multiple "
                                        r"of tn=16"):
        plan_ddr(qmodel, CONFIG.with_(tn=16))
    with pytest.raises(UserError, match=r"layer a: weights are 8-bit, the weight layout holds "
                                        r"4 bits"):
        plan_ddr(qmodel, CONFIG.with_(weight_bits=4))
    with pytest.raises(UserError, match=r"tensor cat: values are 8-bit, the feature-map layout "
                                        r"holds 6 bits"):
        plan_ddr(qmodel, CONFIG.with_(act_bits=6))
    with pytest.raises(UserError, match="region fmap.x: tensor has shape"):
        build_ddr_image(qmodel, CONFIG, fmaps={"x": np.zeros((1, 3, 4, 4), int)})


def leaky_model(mode):
    rng = np.random.default_rng(7)
    graph = Graph("leaky", {"x": (1, 3, 4, 4)}, [
        Node("c", ops.Conv2d(3, 5, 1, activation=ops.LeakyReLU(0.1)), ("x",),
             {"weight": rng.normal(size=(5, 3, 1, 1)).astype(np.float32),
              "bias": rng.normal(size=5).astype(np.float32)})], ("c",))
    calib = rng.normal(size=(2, 3, 4, 4)).astype(np.float32)
    return quantize(graph, calib, QuantConfig(mode=mode, per_channel=True))


def test_float32_multipliers_are_bit_patterns():
    """float32 mode stores the IEEE-754 bit pattern of each multiplier."""
    import struct

    qmodel = leaky_model("float32")
    (layer,) = [layer for layer in qmodel.layers if isinstance(layer.op, ops.Conv2d)]
    image, ddr_map = build_ddr_image(qmodel, CONFIG)
    multipliers = np.broadcast_to(layer.requant.multiplier, (5,))
    expected = b"".join(struct.pack("<f", float(m)) for m in multipliers) + bytes(4 * 11)
    assert region_bytes(image, ddr_map, f"{layer.name}.multiplier") == expected


def test_activation_slopes_are_repeated_per_channel():
    qmodel = leaky_model("gemmlowp")
    layer = qmodel.layer("c")
    image, ddr_map = build_ddr_image(qmodel, CONFIG)
    slope = np.broadcast_to(np.atleast_1d(layer.act_multiplier), (5,))
    assert region_bytes(image, ddr_map, "c.act_multiplier") == channel_bytes(slope, 16, 4)
    assert region_bytes(image, ddr_map, "c.params") == engine_record_bytes(layer, 5, 16)
