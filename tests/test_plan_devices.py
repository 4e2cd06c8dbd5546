"""Device library: shipped devices carry the data sheets' figures; errors name the device."""

import pytest

from fpgacnn.errors import UserError
from fpgacnn.plan.devices import known_devices, load_device

# DS190 Table 1, DS891 Table 1, DS180 Table 8: (DSP slices, 36 Kb block RAMs, LUTs, type)
PUBLISHED = {
    "xc7z020": (220, 140, 53_200, "DSP48E1"),
    "xc7z035": (900, 500, 171_900, "DSP48E1"),
    "xc7z045": (900, 545, 218_600, "DSP48E1"),
    "xczu3eg": (360, 216, 70_560, "DSP48E2"),
    "xczu9eg": (2520, 912, 274_080, "DSP48E2"),
    "xc7vx485t": (2800, 1030, 303_600, "DSP48E1"),
}


def test_shipped_devices():
    assert set(PUBLISHED) <= set(known_devices())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_device_figures(name):
    dev = load_device(name)
    dsp, bram36, lut, dsp_type = PUBLISHED[name]
    assert (dev.dsp, dev.bram36, dev.lut, dev.dsp_type) == (dsp, bram36, lut, dsp_type)
    assert dev.bram18 == 2 * bram36
    assert dev.ff == 2 * dev.lut            # every family here has two FFs per LUT


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_figure_cites_a_data_sheet(name):
    from importlib import resources
    text = (resources.files("fpgacnn.plan") / "devices" / f"{name}.toml").read_text()
    for key in ("dsp", "bram36", "lut", "ff"):
        line = next(l for l in text.splitlines() if l.startswith(f"{key} "))
        assert "DS190" in line or "DS891" in line or "DS180" in line, line


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(UserError) as e:
        load_device("xc9z999")
    assert "xc9z999" in str(e.value) and "xc7z020" in str(e.value)


def test_user_device_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nfamily = "artix-7"\ndsp = 90\ndsp_type = "DSP48E1"\n'
                    'bram36 = 50\nlut = 20800\nff = 41600\nddr_gbps = 1.6\nclock_mhz = 100.0\n')
    dev = load_device(str(path))
    assert (dev.name, dev.dsp, dev.bram18) == ("mine", 90, 100)
    assert dev.ddr_bytes_per_cycle(100.0) == pytest.approx(16.0)


def test_user_device_errors(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nfamily = "x"\ndsp = -1\ndsp_type = "DSP48E1"\n'
                    'bram36 = 50\nlut = 1\nff = 1\nddr_gbps = 1.6\nclock_mhz = 100.0\n')
    with pytest.raises(UserError, match="dsp"):
        load_device(str(path))
    path.write_text('name = "bad"\n')
    with pytest.raises(UserError, match="missing"):
        load_device(str(path))
    with pytest.raises(UserError, match="no such file"):
        load_device(str(tmp_path / "none.toml"))
