"""`fpgacnn export`: per-layer files, DDR image, test vectors from the golden model, manifest."""

import hashlib
import json

import numpy as np
import pytest
from test_export_ddr import CONFIG, fmap_bytes, small_graph, weight_bytes

from fpgacnn import golden
from fpgacnn.cli import main
from fpgacnn.export import Layout, read_tensor
from fpgacnn.export.ddr import build_ddr_image
from fpgacnn.export.ddrmap import DdrMap
from fpgacnn.quant import QuantConfig, quantize


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    calib = np.random.default_rng(1).normal(size=(4, 3, 8, 8)).astype(np.float32)
    qmodel = quantize(small_graph(), calib, QuantConfig(scheme="pow2"))
    qmodel.save(directory / "small.q.npz")
    x = np.random.default_rng(3).normal(size=(2, 3, 8, 8)).astype(np.float32)
    np.save(directory / "x.npy", x)
    return directory, qmodel, golden.quantize_input(qmodel, x)


def export(directory, out, *extra):
    return main(["export", str(directory / "small.q.npz"), "--format", "mem",
                 "--vectors", str(directory / "x.npy"), "-o", str(out), *extra])


def test_export_writes_files_image_vectors_and_manifest(saved, tmp_path):
    directory, qmodel, x_int = saved
    assert export(directory, tmp_path / "out") == 0
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"manifest.json"}
    for name, info in manifest["files"].items():
        assert info["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    # a parameter file: one word per row, lane k in byte k of the little-endian word
    lines = (out / "a.weight.mem").read_text().splitlines()[1:]
    rows = b"".join(bytes.fromhex(line)[::-1] for line in lines)
    assert rows == weight_bytes(qmodel.layer("a").weight, CONFIG.tm, CONFIG.tn)
    # the DDR image is the API's image with the first test sample in the input region
    image, ddr_map = build_ddr_image(qmodel, CONFIG, input_int=x_int)
    assert (out / "ddr.bin").read_bytes() == image
    assert DdrMap.load(out / "ddr_map.json") == ddr_map
    r = ddr_map.region("fmap.x")
    assert image[r.offset:r.offset + r.size] == fmap_bytes(x_int[:1], CONFIG.tn)
    # test vectors: every tensor of the golden model, both samples, in the feature-map layout
    values = golden.run(qmodel, x_int, keep=True)
    expected_image = (out / "ddr_expected.bin").read_bytes()
    first_fmap = min(r.offset for r in ddr_map.regions if r.kind == "fmap")
    assert expected_image[:first_fmap] == image[:first_fmap]
    for name, value in values.items():
        np.testing.assert_array_equal(ddr_map.read_tensor(expected_image, f"fmap.{name}"),
                                      value[:1])
    for name, value in values.items():
        layout = Layout("n (cb l) h w -> (n cb h w) l", {"l": CONFIG.tn}, bits=8,
                        signed=qmodel.format_of(name).signed, pad=True)
        shape = value.shape + (1, 1) if value.ndim == 2 else value.shape
        back = read_tensor(out / "vectors" / f"{name}.mem", layout, shape, "mem")
        np.testing.assert_array_equal(back.reshape(value.shape), value)


@pytest.mark.parametrize("fmt, extra", [("bin", ["--byteorder", "big"]), ("npy", []),
                                         ("h", []), ("mif", ["--radix", "2"]), ("coe", [])])
def test_manifest_hashes_what_is_on_disk(saved, tmp_path, fmt, extra):
    """The digests are computed from the bytes as they are written (banks, vectors and the
    DDR image with its zero gaps included); they must be those of the files."""
    directory, _, _ = saved
    (tmp_path / "banks.toml").write_text(
        '[layouts.banked]\npattern = "(mb q) (nb l) ky kx -> (mb nb ky kx) (q l)"\n'
        'sizes = { q = 16, l = 8 }\nbits = 8\npad = true\nbank_depth = 4\n'
        '[kinds]\nweight = "banked"\n')
    out = tmp_path / "out"
    assert main(["export", str(directory / "small.q.npz"), "--format", fmt, *extra,
                 "--layout", str(tmp_path / "banks.toml"), "--vectors",
                 str(directory / "x.npy"), "-o", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert any("_bank1" in name for name in manifest["files"])
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"manifest.json"}
    for name, info in manifest["files"].items():
        data = (out / name).read_bytes()
        assert (info["bytes"], info["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())


def test_reruns_are_byte_identical(saved, tmp_path):
    directory, _, _ = saved
    assert export(directory, tmp_path / "one", "--radix", "2") == 0
    assert export(directory, tmp_path / "two", "--radix", "2") == 0
    one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*"))
    assert one == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*"))
    for p in one:
        if (tmp_path / "one" / p).is_file():
            assert (tmp_path / "one" / p).read_bytes() == (tmp_path / "two" / p).read_bytes()


def test_layout_file_overrides_one_layer(saved, tmp_path):
    directory, qmodel, _ = saved
    (tmp_path / "layouts.toml").write_text(
        '[layouts.seedlike]\npattern = "(k j) (p i) x y -> (p k x y) (i j)"\n'
        'sizes = { j = 2, i = 1 }\nbits = 8\nmsb_first = true\n\n'
        '[layers.a]\nweight = "seedlike"\n')
    assert main(["export", str(directory / "small.q.npz"), "--format", "coe", "--radix", "2",
                 "--layout", str(tmp_path / "layouts.toml"), "-o", str(tmp_path / "out")]) == 0
    w = qmodel.layer("a").weight
    expected = [
        "".join(format(int(w[2 * k + j, p, x, y]) & 0xFF, "08b") for j in range(2))
        for p in range(3) for k in range(4) for x in range(3) for y in range(3)]
    text = (tmp_path / "out" / "a.weight.coe").read_text()
    assert text.split("vector=\n")[1] == ",\n".join(expected) + ";\n"
    ddr_map = DdrMap.load(tmp_path / "out" / "ddr_map.json")
    assert ddr_map.region("a.weight").layout.pattern == "(k j) (p i) x y -> (p k x y) (i j)"
    assert ddr_map.region("g.weight").layout.pattern.startswith("(mb q)")


def test_export_errors(saved, tmp_path, capsys):
    directory, _, _ = saved
    (tmp_path / "bad.toml").write_text('[layers.nope]\nweight = "x"\n[layouts.x]\n'
                                       'pattern = "a b c d -> (a b c d)"\n')
    assert main(["export", str(directory / "small.q.npz"), "--format", "bin",
                 "--layout", str(tmp_path / "bad.toml"), "-o", str(tmp_path / "o")]) == 2
    assert "[layers.nope] is not a layer of small" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.npz"), "--format", "bin",
                 "-o", str(tmp_path / "o")]) == 2
    assert "missing.npz" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_too_wide_parameter_fails_or_saturates(saved, tmp_path, capsys):
    directory, qmodel, _ = saved
    (tmp_path / "narrow.toml").write_text('[layouts.b8]\npattern = "(mb q) -> mb q"\n'
                                          'sizes = { q = 16 }\nbits = 8\npad = true\n'
                                          '[kinds]\nbias = "b8"\n')
    bias = qmodel.layer("a").bias
    assert np.abs(bias).max() > 127  # the test needs a bias that does not fit 8 bits
    args = ["export", str(directory / "small.q.npz"), "--format", "npy", "--layout",
            str(tmp_path / "narrow.toml")]
    assert main([*args, "-o", str(tmp_path / "fail")]) == 2
    err = capsys.readouterr().err
    assert "tensor a.bias: value" in err and "does not fit 8-bit signed" in err
    assert not (tmp_path / "fail" / "manifest.json").exists()
    assert main([*args, "--saturate", "-o", str(tmp_path / "ok")]) == 0
    stored = np.load(tmp_path / "ok" / "a.bias.npy")
    padded = np.zeros(16, np.int64)
    padded[:len(bias)] = np.clip(bias, -128, 127)
    np.testing.assert_array_equal(stored.ravel(), padded)
