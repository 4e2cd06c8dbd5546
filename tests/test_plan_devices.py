"""Device library: shipped devices carry the data sheets' figures; errors name the device."""

import pytest

from fpgacnn.errors import UserError
from fpgacnn.plan.devices import known_devices, load_device

# Expected figures, (DSP slices, 36 Kb block RAMs, LUTs, flip-flops, DSP type), each with the
# source it was checked against. The data sheets (DS190 Table 1, DS891 Table 1, DS180 Table 8)
# were not reachable when checked; where an independent source was found it is named:
#   VIV = the "Available" column of a Vivado report_utilization for that part (device database),
#   DIG = Digilent PYNQ-Z1 Reference Manual (XC7Z020: 13,300 slices x 4 LUTs / 8 FFs, 630 KB
#         BRAM, 220 DSPs),
#   SPL = stanford-ppl/spatial ZCU.scala (ZCU102: Regs 548160, BRAM 912, DSPs 2520).
# UNCONFIRMED figures restate the author's reading of the data sheet: this test only guards
# them against accidental edits, it cannot show them right.
PUBLISHED = {
    "xc7z020": (220, 140, 53_200, 106_400, "DSP48E1"),       # VIV, DIG
    "xc7z045": (900, 545, 218_600, 437_200, "DSP48E1"),      # VIV (7z045ffg900-2)
    "xczu3eg": (360, 216, 70_560, 141_120, "DSP48E2"),       # VIV (xczu3eg-sbva484-1-e)
    "xczu9eg": (2520, 912, 274_080, 548_160, "DSP48E2"),     # SPL; LUT = FF / 2, unconfirmed
    "xc7z035": (900, 500, 171_900, 343_800, "DSP48E1"),      # UNCONFIRMED (DS190 Table 1)
    "xc7vx485t": (2800, 1030, 303_600, 607_200, "DSP48E1"),  # UNCONFIRMED (DS180 Table 8)
}


def test_shipped_devices():
    assert set(PUBLISHED) <= set(known_devices())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_device_figures(name):
    dev = load_device(name)
    assert (dev.dsp, dev.bram36, dev.lut, dev.ff, dev.dsp_type) == PUBLISHED[name]
    assert dev.bram18 == 2 * dev.bram36     # VIV: RAMB18 = 2 x RAMB36 on every part checked


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_figure_cites_a_data_sheet(name):
    from importlib import resources
    text = (resources.files("fpgacnn.plan") / "devices" / f"{name}.toml").read_text()
    for key in ("dsp", "bram36", "lut", "ff"):
        line = next(l for l in text.splitlines() if l.startswith(f"{key} "))
        assert "DS190" in line or "DS891" in line or "DS180" in line, line
        # each figure says how it was checked: against a named source, or that it was not
        assert "confirmed" in line, line


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
