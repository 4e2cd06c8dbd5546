"""DSPs per MAC against published figures (Zhang et al., Xilinx WP486, UG479/UG579 ports)."""

import pytest

from fpgacnn.errors import UserError
from fpgacnn.plan.dsp import dsp_per_mac, dsps_for_array, dsps_per_multiplier, packs_two_macs


def test_float32_costs_five_dsps_as_in_zhang_et_al():
    # Zhang et al., FPGA'15: 2240 DSPs for <Tm, Tn> = <64, 7> = 448 fp32 MACs.
    assert dsp_per_mac(32, 32, "DSP48E1", float32=True) == 5
    assert dsps_for_array(64 * 7, 5) == 2240


def test_int8_packs_two_macs_per_dsp48e2_wp486():
    # WP486: two INT8 multiply-accumulates sharing one input per DSP48E2 (27-bit pre-adder).
    assert dsp_per_mac(8, 8, "DSP48E2") == 0.5
    assert dsps_for_array(16 * 16, 0.5) == 128


def test_int8_does_not_pack_on_dsp48e1():
    # Two int8 weights 18 bits apart need 26 bits: more than the 25-bit DSP48E1 port.
    assert not packs_two_macs(8, 8, "DSP48E1")
    assert dsp_per_mac(8, 8, "DSP48E1") == 1
    # Narrower operands do fit: 7 + 2*7 + 2 = 23 <= 25.
    assert packs_two_macs(7, 7, "DSP48E1")


@pytest.mark.parametrize("a, w, dsp_type, expected", [
    (16, 16, "DSP48E1", 1),     # fits 25 x 18
    (18, 25, "DSP48E1", 1),     # the full multiplier, either orientation
    (25, 18, "DSP48E1", 1),
    (26, 18, "DSP48E1", 2),     # one bit too wide for the A port
    (27, 18, "DSP48E2", 1),
    (32, 32, "DSP48E1", 4),     # 2 x 2 partial products (24+ and 17+ bit chunks)
    (24, 24, "DSP48E2", 2),
])
def test_multiplier_splitting(a, w, dsp_type, expected):
    assert dsps_per_multiplier(a, w, dsp_type) == expected


def test_more_bits_never_cost_fewer_dsps():
    for dsp_type in ("DSP48E1", "DSP48E2"):
        for a in range(1, 40):
            for w in range(1, 40):
                cost = dsp_per_mac(a, w, dsp_type)
                assert dsp_per_mac(a + 1, w, dsp_type) >= cost
                assert dsp_per_mac(a, w + 1, dsp_type) >= cost


def test_bad_widths_and_types():
    with pytest.raises(UserError, match="act_bits"):
        dsp_per_mac(0, 8, "DSP48E1")
    with pytest.raises(UserError, match="DSP type"):
        dsp_per_mac(8, 8, "DSP58")
