"""How many DSP slices one multiply-accumulate costs, by operand widths and DSP type.

- DSP48E1 (7-series, Zynq-7000): signed 25 x 18 multiplier, 25-bit pre-adder (UG479).
- DSP48E2 (UltraScale, UltraScale+): signed 27 x 18 multiplier, 27-bit pre-adder (UG579).
- Float32: 5 DSP48 per multiply-add (Zhang et al., FPGA'15: 3 for the multiplier, 2 for the
  adder).

Operands wider than the multiplier are cut as a DSP cascade adds partial products (UG479: the
cascade input PCIN is shifted right by 17 bits): lower pieces are unsigned 17-bit chunks, the
top piece is signed and may use the whole port (yosys's mul2dsp cuts them the same way). Two MACs that share one operand
(one activation times two weights) fit into one DSP when the two weights, the lower one
sign-extended and the upper one shifted by `a + w + 2` bits (two guard bits: WP486 puts the
upper INT8 weight at bit 18), fit the pre-adder: `a + 2w + 2 <= port`. That holds for INT8 on
a DSP48E2 (26 <= 27, Xilinx WP486) but not on a DSP48E1 (26 > 25); a DSP48E1 packs two MACs
only for narrower operands (for example 7 x 7: 23 <= 25).

>>> dsp_per_mac(8, 8, "DSP48E2")
0.5
>>> dsp_per_mac(8, 8, "DSP48E1")
1
>>> dsp_per_mac(32, 32, "DSP48E1", float32=True)
5
"""

from math import ceil

from fpgacnn.errors import UserError

PORTS = {"DSP48E1": (25, 18), "DSP48E2": (27, 18)}
FLOAT32_DSP_PER_MAC = 5
PACKING_GUARD_BITS = 2
CASCADE_SHIFT = 17
POST_PARAM_BITS = 32     # hw/postproc.py: bias, multiplier and shift words
POST_SLOPE_BITS = 18     # hw/postproc.py: the activation slope register
POST_CLAMP_BITS = 42     # hw/postproc.py CLAMP_BITS: y before the slope product


def dsps_per_multiplier(a_bits: int, w_bits: int, dsp_type: str) -> int:
    """DSP slices for one signed a_bits x w_bits multiplier, the wider operand on the wide port.

    >>> dsps_per_multiplier(34, 32, "DSP48E1"), dsps_per_multiplier(66, 18, "DSP48E1")
    (4, 4)
    """
    wide, narrow = _ports(dsp_type)
    return _cascade(max(a_bits, w_bits), min(a_bits, w_bits), wide, narrow)


def _cascade(a: int, b: int, wide: int, narrow: int) -> int:
    """Slices for `a` bits on the wide port times `b` on the narrow one: a wide `a` is cut
    first, then `b`; each piece keeps its port."""
    piece = CASCADE_SHIFT + 1          # an unsigned 17-bit chunk as a signed operand
    if a > wide:
        pieces = ceil((a - wide) / CASCADE_SHIFT)
        return (pieces * _cascade(piece, b, wide, narrow)
                + _cascade(a - pieces * CASCADE_SHIFT, b, wide, narrow))
    if b > narrow:
        pieces = ceil((b - narrow) / CASCADE_SHIFT)
        return (pieces * _cascade(a, piece, wide, narrow)
                + _cascade(a, b - pieces * CASCADE_SHIFT, wide, narrow))
    return 1


def packs_two_macs(a_bits: int, w_bits: int, dsp_type: str) -> bool:
    """True when two MACs sharing the `a_bits` operand fit one DSP (WP486's packing)."""
    wide, narrow = _ports(dsp_type)
    return a_bits <= narrow and a_bits + 2 * w_bits + PACKING_GUARD_BITS <= wide


def dsp_per_mac(a_bits: int, w_bits: int, dsp_type: str, float32: bool = False):
    """DSP slices per MAC: 0.5 when two MACs pack into one DSP, else a whole number."""
    if float32:
        return FLOAT32_DSP_PER_MAC
    for name, bits in (("act_bits", a_bits), ("weight_bits", w_bits)):
        if not isinstance(bits, int) or isinstance(bits, bool) or bits < 1:
            raise UserError(f"dsp model: {name} must be a positive integer, got {bits!r}")
    if packs_two_macs(a_bits, w_bits, dsp_type):
        return 0.5
    return dsps_per_multiplier(a_bits, w_bits, dsp_type)


def engine_dsps(tm: int, tn: int, act_bits: int, weight_bits: int, acc_bits: int,
                dsp_type: str) -> int:
    """DSP slices of the engine as generated: the MAC array and Q post-processing lanes.

    A MAC multiplies an input minus its zero point (act_bits + 1 bits) by a weight; it never
    packs two MACs per slice. Each post-processing lane (hw/postproc.py) has two multipliers:
    the requantization product of magnitudes (|acc + bias|, max(acc_bits, 32) bits unsigned,
    times |M|, 32 bits unsigned: one bit more each as signed operands) and the activation
    slope product (y clamped to 42 bits times an 18-bit slope).

    >>> engine_dsps(4, 4, 8, 8, 32, "DSP48E1")     # 16 MACs + 4 lanes of 4 + 2
    40
    """
    operand = max(acc_bits, POST_PARAM_BITS) + 1
    lane = (dsps_per_multiplier(operand, POST_PARAM_BITS + 1, dsp_type)
            + dsps_per_multiplier(POST_CLAMP_BITS, POST_SLOPE_BITS, dsp_type))
    return tm * tn * dsps_per_multiplier(act_bits + 1, weight_bits, dsp_type) + tm * lane


def dsps_for_array(macs: int, per_mac) -> int:
    """DSP slices of an array of `macs` parallel MACs (a packed pair shares one slice)."""
    return ceil(macs * per_mac)


def _ports(dsp_type: str) -> tuple[int, int]:
    if dsp_type not in PORTS:
        raise UserError(f"dsp model: unknown DSP type {dsp_type!r}; known: {sorted(PORTS)}")
    return PORTS[dsp_type]
