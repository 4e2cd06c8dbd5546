"""`fpgacnn pack` / `fpgacnn unpack` on the command line."""

import json

import numpy as np
import pytest

from fpgacnn.cli import main

SEED_PATTERN = "(k j) (p i) x y -> (p k x y) (i j)"


def seed_000_coe(w):
    """Seed 000's writer (the nested loops, d2b as 16-bit two's complement), ended like a .coe."""
    lines = []
    for p in range(w.shape[1] // 16):
        for k in range(w.shape[0] // 2):
            for x in range(3):
                for y in range(3):
                    lines.append("".join(format(int(w[2 * k + j, 16 * p + i, x, y]) & 0xFFFF,
                                                "016b") for i in range(16) for j in range(2)))
    return ",\n".join(lines) + ";\n"


def test_pack_and_unpack_seed_000_conv5(tmp_path, capsys):
    w = np.random.default_rng(5).integers(-2**15, 2**15, size=(8, 32, 3, 3))
    np.save(tmp_path / "w.npy", w)
    args = ["--layout", SEED_PATTERN, "--sizes", "j=2,i=16", "--bits", "16", "--signed",
            "--msb-first", "--format", "coe", "--radix", "2"]
    assert main(["pack", str(tmp_path / "w.npy"), *args, "-o", str(tmp_path / "w.coe"),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["rows"], report["lanes"], report["word_bits"]) == (72, 32, 512)
    text = (tmp_path / "w.coe").read_text()
    assert text.split("memory_initialization_vector=\n")[1] == seed_000_coe(w)
    assert main(["unpack", str(tmp_path / "w.coe"), *args, "--shape", "8,32,3,3",
                 "-o", str(tmp_path / "back.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "back.npy"), w)


def test_named_layout_from_file(tmp_path):
    (tmp_path / "layouts.toml").write_text(
        '[layouts.fmap16]\npattern = "i (y j) k x -> (k x y) (i j)"\nsizes = { j = 2 }\n'
        'bits = 16\nsigned = true\n')
    f = np.random.default_rng(6).integers(-99, 99, size=(2, 6, 3, 3))
    np.save(tmp_path / "f.npy", f)
    named = ["--layout", "fmap16", "--layouts", str(tmp_path / "layouts.toml")]
    assert main(["pack", str(tmp_path / "f.npy"), *named, "-o", str(tmp_path / "f.bin")]) == 0
    words = [[f[i, 2 * y + j, k, x] for i in range(2) for j in range(2)]
             for k in range(3) for x in range(3) for y in range(3)]
    expected = np.array(words, dtype="<i2").tobytes()
    assert (tmp_path / "f.bin").read_bytes() == expected
    assert main(["unpack", str(tmp_path / "f.bin"), *named, "--shape", "2,6,3,3",
                 "-o", str(tmp_path / "g.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), f)


@pytest.mark.parametrize("extra, message", [
    (["--bits", "4", "--signed"], "tensor w: value 9 at index (0, 1) does not fit 4-bit"),
    (["--bits", "8", "--radix", "8"], "unknown radix 8"),
    (["--bits", "8", "--sizes", "j=x"], "--sizes: 'j=x' is not NAME=INTEGER"),
    (["--bits", "8", "--layout", "w16", "--layouts", "missing.toml"], "no such file"),
])
def test_pack_errors_exit_2_with_one_line(tmp_path, capsys, extra, message):
    np.save(tmp_path / "w.npy", np.array([[1, 9], [3, 4]]))
    out = tmp_path / "w.coe"
    status = main(["pack", str(tmp_path / "w.npy"), "--layout", "a b -> a b", *extra,
                   "-o", str(out)])
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert status == 2
    assert not out.exists()


def test_unknown_format_is_refused(tmp_path, capsys):
    np.save(tmp_path / "w.npy", np.array([[1, 9], [3, 4]]))
    assert main(["pack", str(tmp_path / "w.npy"), "--layout", "a b -> a b",
                 "-o", str(tmp_path / "w.xls")]) == 2
    assert "unknown format 'xls'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["pack", str(tmp_path / "w.npy"), "--layout", "a b -> a b", "--format", "xls",
              "-o", str(tmp_path / "w.coe")])
    assert exit_.value.code == 2


def test_pack_saturate_and_layout_mismatch(tmp_path, capsys):
    np.save(tmp_path / "w.npy", np.array([[1, 900], [-3, 4]]))
    assert main(["pack", str(tmp_path / "w.npy"), "--layout", "a b -> a b", "--bits", "8",
                 "--signed", "--saturate", "-o", str(tmp_path / "w.npy.bin")]) == 0
    assert (tmp_path / "w.npy.bin").read_bytes() == bytes([1, 127, 253, 4])
    assert main(["pack", str(tmp_path / "w.npy"), "--layout", "a (b l) -> (a b) l",
                 "--sizes", "l=3", "-o", str(tmp_path / "x.mem")]) == 2
    assert "axis 1 '(b l)' has size 2, the layout needs a multiple of 3" in \
        capsys.readouterr().err
