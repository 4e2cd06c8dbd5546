"""Layouts and formats against plain nested loops that the test derives from the pattern itself.

The oracle here parses the pattern with string splitting, walks the row axes and then the lane
axes with itertools.product (the seed-000 nested loops), computes each source index by mixed
radix and formats every value with Python's `format`, independent of fpgacnn's numpy code.
"""

import itertools
import re
from math import ceil, prod

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpgacnn.errors import UserError
from fpgacnn.export import FileOptions, Layout, read_tensor, write_tensor
from fpgacnn.export.layout import contiguous_copy


def parse_groups(side):
    groups, current = [], None
    for token in side.replace("(", " ( ").replace(")", " ) ").split():
        if token == "(":
            current = []
        elif token == ")":
            groups.append(current)
            current = None
        elif current is not None:
            current.append(token)
        else:
            groups.append([token])
    return groups


def nested_loop_words(tensor, pattern, sizes):
    """Lane values of every row, by nested loops over the pattern (padding reads as 0)."""
    left, right = (parse_groups(s) for s in pattern.split("->"))
    full = dict(sizes)
    for group, dim in zip(left, tensor.shape):
        known = prod(sizes[a] for a in group if a in sizes)
        for a in group:
            if a not in sizes:
                full[a] = ceil(dim / known)
    row_axes, lane_axes = right[0], (right[1] if len(right) > 1 else [])
    words = []
    for row in itertools.product(*[range(full[a]) for a in row_axes]):
        lanes = []
        for lane in itertools.product(*[range(full[a]) for a in lane_axes]):
            at = dict(zip(row_axes, row)) | dict(zip(lane_axes, lane))
            index = []
            for group in left:
                position = 0
                for a in group:
                    position = position * full[a] + at[a]
                index.append(position)
            inside = all(i < d for i, d in zip(index, tensor.shape))
            lanes.append(int(tensor[tuple(index)]) if inside else 0)
        words.append(lanes)
    return words


def word_int(lanes, bits, msb_first):
    """The word as a Python int: lane 0 at the top if msb_first, else at the bottom."""
    text = "".join(format(v & ((1 << bits) - 1), f"0{bits}b")
                   for v in (lanes if msb_first else lanes[::-1]))
    return int(text, 2) if text else 0


def word_text(value, word_bits, radix):
    return format(value, f"0{word_bits}b") if radix == 2 else \
        format(value, f"0{ceil(word_bits / 4)}x")


@st.composite
def layout_cases(draw):
    names = iter("abcdefghijklmnop")
    pad = draw(st.booleans())
    left, sizes, shape, axes = [], {}, [], []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            outer, inner = next(names), next(names)
            size = draw(st.integers(1, 4))
            dim = draw(st.integers(1, 3)) * size
            if pad:
                dim = draw(st.integers(max(1, dim - size + 1), dim))
            sizes[inner] = size
            left.append(f"({outer} {inner})")
            axes += [outer, inner]
        else:
            axis = next(names)
            dim = draw(st.integers(1, 4))
            left.append(axis)
            axes.append(axis)
        shape.append(dim)
    order = draw(st.permutations(axes))
    split = draw(st.integers(0, len(order)))
    if draw(st.integers(0, 5)) == 0:
        right = f"({' '.join(order)})"
    else:
        right = f"({' '.join(order[:split])}) ({' '.join(order[split:])})"
    bits = draw(st.integers(1, 20))
    signed = draw(st.booleans())
    extra = draw(st.integers(0, 6))
    layout = Layout(f"{' '.join(left)} -> {right}", sizes, bits=bits, signed=signed,
                    msb_first=draw(st.booleans()), pad=pad)
    n_lanes = layout.rows_shape(shape)[1]
    if extra:
        layout = Layout(layout.pattern, sizes, bits=bits, signed=signed,
                        msb_first=layout.msb_first, pad=pad, word_bits=n_lanes * bits + extra)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    seed = draw(st.integers(0, 2**32 - 1))
    tensor = np.random.default_rng(seed).integers(lo, hi + 1, size=shape)
    return layout, tensor


def expected_words(layout, tensor):
    words = nested_loop_words(tensor, layout.pattern, dict(layout.sizes))
    n_lanes = len(words[0])
    word_bits = layout.word_bits or n_lanes * layout.bits
    return [word_int(w, layout.bits, layout.msb_first) for w in words], word_bits


@settings(max_examples=200, deadline=None)
@given(layout_cases(), st.sampled_from([2, 16]))
def test_text_formats_equal_nested_loops(tmp_path_factory, case, radix):
    layout, tensor = case
    words, word_bits = expected_words(layout, tensor)
    texts = [word_text(w, word_bits, radix) for w in words]
    title = "t"
    head = f"fpgacnn {title}: {len(words)} words of {word_bits} bits\n"
    expected = {
        "coe": f"; {head}memory_initialization_radix={radix};\nmemory_initialization_vector=\n"
               + ",\n".join(texts) + ";\n",
        "mem": f"// {head}" + "".join(t + "\n" for t in texts),
    }
    width = len(str(len(words) - 1))
    expected["mif"] = (f"-- {head}WIDTH={word_bits};\nDEPTH={len(words)};\n\nADDRESS_RADIX=UNS;\n"
                       f"DATA_RADIX={'BIN' if radix == 2 else 'HEX'};\n\nCONTENT BEGIN\n"
                       + "".join(f"    {a:>{width}} : {t};\n" for a, t in enumerate(texts))
                       + "END;\n")
    directory = tmp_path_factory.mktemp("fmt")
    options = FileOptions(radix=radix)
    for fmt, text in expected.items():
        path = directory / f"t.{fmt}"
        write_tensor(path, tensor, layout, fmt, options, name=title)
        assert path.read_text() == text, fmt
        np.testing.assert_array_equal(read_tensor(path, layout, tensor.shape, fmt, options),
                                      tensor)


@settings(max_examples=200, deadline=None)
@given(layout_cases(), st.sampled_from(["little", "big"]))
def test_binary_formats_equal_nested_loops(tmp_path_factory, case, byteorder):
    layout, tensor = case
    words, word_bits = expected_words(layout, tensor)
    directory = tmp_path_factory.mktemp("bin")
    options = FileOptions(byteorder=byteorder)
    nbytes = ceil(word_bits / 8)
    write_tensor(directory / "t.bin", tensor, layout, "bin", options, name="t")
    assert (directory / "t.bin").read_bytes() == b"".join(w.to_bytes(nbytes, byteorder)
                                                          for w in words)
    write_tensor(directory / "t.h", tensor, layout, "h", options, name="t")
    header = (directory / "t.h").read_text()
    limb_bits = next((s for s in (8, 16, 32, 64) if word_bits <= s), 32)
    limbs = 1 if word_bits <= 64 else ceil(word_bits / 32)
    expected = [(w >> (32 * k)) & 0xFFFFFFFF if limbs > 1 else w
                for w in words for k in range(limbs)]
    body = header[header.index("= {"):]
    assert [int(t, 16) for t in re.findall(r"0x([0-9a-f]+)", body)] == expected
    assert f"uint{limb_bits}_t T[{len(words)}]" in header
    write_tensor(directory / "t.npy", tensor, layout, "npy", options, name="t")
    stored = np.load(directory / "t.npy")
    np.testing.assert_array_equal(stored, np.array(nested_loop_words(
        tensor, layout.pattern, dict(layout.sizes))).reshape(stored.shape))
    for fmt in ("bin", "h", "npy"):
        back = read_tensor(directory / f"t.{fmt}", layout, tensor.shape, fmt, options)
        np.testing.assert_array_equal(back, tensor)


def test_seed_000_conv5_orders():
    """The two orders of seed 000 against its own loops, written out literally."""
    rng = np.random.default_rng(1)
    w = rng.integers(-5, 5, size=(8, 32, 3, 3))
    layout = Layout("(k j) (p i) x y -> (p k x y) (i j)", {"j": 2, "i": 16}, bits=16)
    rows = layout.rows(w)
    seed_rows = [[w[2 * k + j, 16 * p + i, x, y] for i in range(16) for j in range(2)]
                 for p in range(2) for k in range(4) for x in range(3) for y in range(3)]
    np.testing.assert_array_equal(rows, seed_rows)
    f = rng.integers(0, 9, size=(2, 6, 4, 5))
    rows = Layout("i (y j) k x -> (k x y) (i j)", {"j": 2}, bits=16).rows(f)
    seed_rows = [[f[i, y * 2 + j, k, x] for i in range(2) for j in range(2)]
                 for k in range(4) for x in range(5) for y in range(3)]
    np.testing.assert_array_equal(rows, seed_rows)


def test_value_too_wide_names_tensor_index_value(tmp_path):
    w = np.zeros((4, 4), dtype=np.int64)
    w[2, 3] = 128
    layout = Layout("a b -> a b", bits=8)
    with pytest.raises(UserError, match=r"tensor conv1\.weight: value 128 at index \(2, 3\)"):
        write_tensor(tmp_path / "w.coe", w, layout, "coe", name="conv1.weight")
    assert not list(tmp_path.iterdir())
    w[0, 0] = -300
    write_tensor(tmp_path / "w.bin", w, layout, "bin", saturating=True)
    np.testing.assert_array_equal(read_tensor(tmp_path / "w.bin", layout, w.shape, "bin"),
                                  np.clip(w, -128, 127))
    with pytest.raises(UserError, match=r"value -1 at index \(0, 0\).*8-bit unsigned"):
        Layout("a b -> a b", bits=8, signed=False).rows(-np.ones((2, 2), int), "x")


def test_shape_mismatch_names_axis_and_sizes():
    layout = Layout("(k j) (p i) x y -> (p k x y) (i j)", {"j": 2, "i": 16}, bits=16)
    with pytest.raises(UserError, match=r"tensor w: axis 1 '\(p i\)' has size 20, the layout "
                                        r"needs a multiple of 16"):
        layout.rows(np.zeros((4, 20, 3, 3), int), "w")
    with pytest.raises(UserError, match=r"layout .* has 4 axes, the tensor has shape \(4, 20\)"):
        layout.rows(np.zeros((4, 20), int), "w")
    fixed = Layout("a (b c) -> a (b c)", {"b": 2, "c": 3})
    with pytest.raises(UserError, match=r"axis 1 '\(b c\)' has size 5, the layout needs 6"):
        fixed.rows(np.zeros((1, 5), int), "w")
    with pytest.raises(UserError, match="size given for axis 'z'"):
        Layout("a b -> a b", {"z": 2})
    with pytest.raises(UserError, match="ROWS LANES"):
        Layout("a b c -> a b c")


def test_padding_fills_zeros_and_crops_back():
    layout = Layout("n (cb l) h w -> (n cb h w) l", {"l": 8}, pad=True)
    x = np.arange(1 * 3 * 2 * 2).reshape(1, 3, 2, 2)
    rows = layout.rows(x)
    assert rows.shape == (4, 8)
    np.testing.assert_array_equal(rows[:, 3:], 0)
    np.testing.assert_array_equal(rows[:, :3], x[0].reshape(3, 4).T)
    np.testing.assert_array_equal(layout.unrows(rows, x.shape), x)


def test_banks_split_rows_and_read_back(tmp_path):
    layout = Layout("a b -> a b", bits=8, bank_depth=4)
    x = np.arange(-20, 10).reshape(10, 3)
    paths = write_tensor(tmp_path / "m.mem", x, layout, "mem", name="m")
    assert [p.name for p in paths] == ["m_bank0.mem", "m_bank1.mem", "m_bank2.mem"]
    assert len((tmp_path / "m_bank2.mem").read_text().splitlines()) == 1 + 2
    np.testing.assert_array_equal(read_tensor(tmp_path / "m.mem", layout, x.shape, "mem"), x)


def test_unknown_format_and_radix(tmp_path):
    layout = Layout("a b -> a b")
    with pytest.raises(UserError, match="unknown format 'xls'"):
        write_tensor(tmp_path / "x", np.zeros((2, 2), int), layout, "xls")
    with pytest.raises(UserError, match="unknown radix 8"):
        FileOptions(radix=8)
    (tmp_path / "bad.coe").write_text("memory_initialization_radix=10;\n"
                                      "memory_initialization_vector=1,2;\n")
    with pytest.raises(UserError, match="unknown radix '10'"):
        read_tensor(tmp_path / "bad.coe", layout, (2, 1), "coe")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    from fpgacnn.export.formats import coe

    layout = Layout("a b -> a b", bits=8)
    target = tmp_path / "w.coe"
    target.write_text("old")

    def broken(f, rows, g, options, title):
        f.write(b"memory_initialization_radix=2;\n")
        raise RuntimeError("disk full")

    monkeypatch.setattr(coe, "write", broken)
    with pytest.raises(RuntimeError):
        write_tensor(target, np.ones((2, 2), int), layout, "coe")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["w.coe"]


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("msb_first", [False, True])
@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize("signed", [False, True])
def test_whole_byte_lanes_in_bin(tmp_path, bits, msb_first, byteorder, signed):
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    x = np.random.default_rng(bits).integers(lo, hi, size=(6, 3), endpoint=True)
    layout = Layout("a b -> a b", bits=bits, signed=signed, msb_first=msb_first)
    options = FileOptions(byteorder=byteorder)
    write_tensor(tmp_path / "x.bin", x, layout, "bin", options)
    words = [word_int([int(v) for v in row], bits, msb_first) for row in x]
    assert (tmp_path / "x.bin").read_bytes() == b"".join(
        w.to_bytes(3 * bits // 8, byteorder) for w in words)
    np.testing.assert_array_equal(read_tensor(tmp_path / "x.bin", layout, x.shape, "bin", options),
                                  x)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint8, np.int32])
@pytest.mark.parametrize("shape, axes", [
    ((32, 72, 1, 1), (0, 2, 3, 1)), ((6, 4, 8), (1, 0, 2)), ((5, 3, 4, 2), (2, 0, 1, 3)),
    ((4, 6, 3, 2), (1, 0, 3, 2)), ((2, 3, 4), (0, 1, 2)), ((3, 1, 6), (2, 1, 0))])
def test_contiguous_copy_equals_numpy(dtype, shape, axes):
    """Runs copied as wider integers give what np.ascontiguousarray gives, whatever the run."""
    source = np.arange(prod(shape), dtype=np.int64).astype(dtype).reshape(shape)
    view = source.reshape(shape[0], -1, *shape[2:]) if len(shape) > 3 else source
    view = view.transpose(axes)
    copy = contiguous_copy(view, source)
    assert copy.flags.c_contiguous and copy.dtype == view.dtype
    np.testing.assert_array_equal(copy, view)
