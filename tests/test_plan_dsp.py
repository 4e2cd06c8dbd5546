"""DSPs per MAC against published figures (Zhang et al., Xilinx WP486, UG479/UG579 ports)."""

import numpy as np
import pytest

from fpgacnn.errors import UserError
from fpgacnn.plan.dsp import (dsp_per_mac, dsps_for_array, dsps_per_multiplier, engine_dsps,
                              packs_two_macs)


def test_float32_costs_five_dsps_as_in_zhang_et_al():
    # Zhang et al., FPGA'15: 2240 DSPs for <Tm, Tn> = <64, 7> = 448 fp32 MACs.
    assert dsp_per_mac(32, 32, "DSP48E1", float32=True) == 5
    assert dsps_for_array(64 * 7, 5) == 2240


def test_int8_packs_two_macs_per_dsp48e2_wp486():
    # WP486: two INT8 multiply-accumulates sharing one input per DSP48E2 (27-bit pre-adder).
    assert dsp_per_mac(8, 8, "DSP48E2") == 0.5
    assert dsps_for_array(16 * 16, 0.5) == 128


def test_int8_packs_on_dsp48e1_when_each_product_is_unpacked():
    # Packed weights w_hi * 2**16 + w_lo (products of 8 bits and input minus zero point fit
    # 16 bits) take 8 + 16 + 1 = 25 bits: the whole A port; the 9-bit input fits B (18).
    assert packs_two_macs(8, 8, "DSP48E1") and dsp_per_mac(8, 8, "DSP48E1") == 0.5
    # one bit more anywhere overflows A: 9 + 16 + 1 = 26, 8 + 18 + 1 = 27
    assert not packs_two_macs(9, 8, "DSP48E1") and dsp_per_mac(9, 8, "DSP48E1") == 1
    assert not packs_two_macs(8, 9, "DSP48E1")
    # a DSP48E2's 27 bits take both
    assert packs_two_macs(9, 8, "DSP48E2") and packs_two_macs(8, 9, "DSP48E2")
    assert not packs_two_macs(10, 9, "DSP48E2")
    # the input less its zero point must fit the 18-bit B port: act_bits 17 does, 18 does not
    assert packs_two_macs(17, 1, "DSP48E2") and not packs_two_macs(18, 1, "DSP48E2")


@pytest.mark.parametrize("a, w, dsp_type, expected", [
    (16, 16, "DSP48E1", 1),     # fits 25 x 18
    (18, 25, "DSP48E1", 1),     # the full multiplier, either orientation
    (25, 18, "DSP48E1", 1),
    (26, 18, "DSP48E1", 2),     # one bit too wide for the A port
    (27, 18, "DSP48E2", 1),
    (32, 32, "DSP48E1", 4),     # 2 x 2 partial products (24+ and 17+ bit chunks)
    (24, 24, "DSP48E2", 2),
    # beyond one slice, 17-bit pieces (UG479's 17-bit cascade shift) times the other operand
    (34, 32, "DSP48E1", 4),     # (17 + 17) x (17 + 15)
    (66, 18, "DSP48E1", 4),     # 17 + 17 + 17 + 15
    (49, 18, "DSP48E1", 3),     # 17 + 17 + 15: not 2 chunks of 25 and 24
    (40, 40, "DSP48E1", 6),     # (17 + 23) x (17 + 17 + 6)
    (33, 33, "DSP48E1", 4),     # (17 + 16) x (17 + 16): the engine's requantization product
    (42, 18, "DSP48E1", 2),     # 17 + 25: its clamped activation product
    (43, 18, "DSP48E1", 3),     # one bit more: 17 + 17 + 9
    (44, 18, "DSP48E2", 2),     # 17 + 27
])
def test_multiplier_splitting(a, w, dsp_type, expected):
    assert dsps_per_multiplier(a, w, dsp_type) == expected


def test_engine_counts_its_post_processing_and_packed_pairs():
    # ZC706-sized engine: 512 MACs of 9 x 8 bits, rows paired (32 pairs x 8 lanes, one
    # DSP48E1 each), + 64 post-processing lanes of an unsigned 32 x 32 product (33 x 33
    # signed: (17 + 16) x (17 + 16), 4 slices) and a 42 x 18 one (17 + 25: 2)
    assert engine_dsps(64, 8, 8, 8, 32, "DSP48E1") == 32 * 8 + 64 * 6
    assert engine_dsps(16, 16, 8, 8, 32, "DSP48E2") == 8 * 16 + 16 * 6
    # an odd row count: the last row keeps one slice per MAC (2 pairs + 1 row, of 4 lanes)
    assert engine_dsps(5, 4, 8, 8, 32, "DSP48E1") == (2 + 1) * 4 + 5 * 6
    # 9-bit data does not pack on a DSP48E1 (26 bits of packed weights), does on a DSP48E2
    assert engine_dsps(4, 4, 9, 8, 32, "DSP48E1") == 16 + 4 * 6
    assert engine_dsps(4, 4, 9, 8, 32, "DSP48E2") == 8 + 4 * (4 + 2)
    # 16-bit data: 17 x 16 fits one slice, unpacked; 48-bit accumulators widen the
    # requantization product (49 x 33: (17 + 17 + 15) x (17 + 16)), not the slope product
    assert engine_dsps(4, 4, 16, 16, 48, "DSP48E1") == 16 + 4 * (6 + 2)


def test_shift_only_lanes_cost_no_dsp():
    # post_multipliers=False: the lanes shift (hw/postproc.py), only the MAC array remains:
    # the 48 x 32 target engine is 24 pairs x 32 inputs = 768 DSP48E1 (Angel-Eye: 780)
    assert engine_dsps(48, 32, 8, 8, 32, "DSP48E1", post_multipliers=False) == 24 * 32
    assert engine_dsps(48, 32, 8, 8, 32, "DSP48E1") == 24 * 32 + 48 * 6
    assert engine_dsps(5, 4, 8, 8, 32, "DSP48E1", post_multipliers=False) == (2 + 1) * 4
    assert engine_dsps(4, 4, 9, 8, 32, "DSP48E1", post_multipliers=False) == 16
    tm, tn = np.array([1, 2, 3, 8]), np.array([4, 4, 2, 8])
    assert list(engine_dsps(tm, tn, 8, 8, 32, "DSP48E1", post_multipliers=False)) == \
        [4, 4, 4, 32]


def test_engine_counts_arrays_of_tilings():
    # the explorer passes numpy arrays of Tm and Tn
    tm, tn = np.array([1, 2, 3, 8]), np.array([4, 4, 2, 8])
    assert list(engine_dsps(tm, tn, 8, 8, 32, "DSP48E1")) == [4 + 6, 4 + 12, 4 + 18, 32 + 48]


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
