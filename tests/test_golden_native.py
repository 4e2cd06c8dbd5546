"""Building the golden model's C++ library (fpgacnn.golden.native): once into the cache, and
no library (nor a half-built directory) where the compiler or its flags fail."""

import subprocess

import pytest

from fpgacnn.golden import native


@pytest.mark.parametrize("change", [("COMPILER", "no-such-compiler-fpgacnn"),
                                    ("FLAGS", ("-shared", "--no-such-flag-fpgacnn"))])
def test_no_kernel_where_it_cannot_be_built(monkeypatch, tmp_path, change):
    monkeypatch.setenv("FPGACNN_CACHE", str(tmp_path))
    monkeypatch.setattr(native, *change)
    assert native.built.__wrapped__() is None
    assert not list(tmp_path.glob("kernels/*/*"))          # no half-built directory left


def test_kernel_is_built_into_the_cache_once(monkeypatch, tmp_path):
    try:
        subprocess.run([native.COMPILER, "--version"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no g++")
    monkeypatch.setenv("FPGACNN_CACHE", str(tmp_path))
    native._load()
    built = list((tmp_path / "kernels").glob(f"*/{native.LIBRARY}"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    native._load()
    assert list((tmp_path / "kernels").glob(f"*/{native.LIBRARY}")) == built
    assert built[0].stat().st_mtime_ns == stamp
