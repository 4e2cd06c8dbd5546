"""How many DSP slices one multiply-accumulate costs, by operand widths and DSP type.

- DSP48E1 (7-series, Zynq-7000): signed 25 x 18 multiplier, 25-bit pre-adder (UG479).
- DSP48E2 (UltraScale, UltraScale+): signed 27 x 18 multiplier, 27-bit pre-adder (UG579).
- Float32: 5 DSP48 per multiply-add (Zhang et al., FPGA'15: 3 for the multiplier, 2 for the
  adder).

Operands wider than the multiplier are cut as a DSP cascade adds partial products (UG479: the
cascade input PCIN is shifted right by 17 bits): lower pieces are unsigned 17-bit chunks, the
top piece is signed and may use the whole port (yosys's mul2dsp cuts them the same way).

Two MACs that share the activation fit one DSP when each product is unpacked on its own
(hw/pe_array.py): the two weights go into the wide port as `w_hi * 2**p + w_lo`, where p =
act_bits + weight_bits holds any product (an input minus its zero point is at most
2**act_bits - 1 in magnitude), so the packed operand takes weight_bits + p + 1 bits, and the
activation, act_bits + 1 bits with its zero point taken off, goes to the narrow port. INT8
fits a DSP48E1 exactly (8 + 16 + 1 = 25). Xilinx WP486 packs differently: it accumulates
several packed products inside the DSP, so it needs guard bits between the fields and fits
INT8 only on a DSP48E2's 27 bits; the engine adds its products outside the DSP.

>>> dsp_per_mac(8, 8, "DSP48E1"), dsp_per_mac(8, 8, "DSP48E2"), dsp_per_mac(9, 8, "DSP48E1")
(0.5, 0.5, 1)
>>> dsp_per_mac(32, 32, "DSP48E1", float32=True)
5
"""

from math import ceil

from fpgacnn.errors import UserError

PORTS = {"DSP48E1": (25, 18), "DSP48E2": (27, 18)}
FLOAT32_DSP_PER_MAC = 5
CASCADE_SHIFT = 17
POST_PARAM_BITS = 32     # hw/postproc.py: bias, multiplier and shift words
POST_SLOPE_BITS = 18     # hw/postproc.py: the activation slope register
POST_CLAMP_BITS = 42     # hw/postproc.py CLAMP_BITS: y before the slope product
RESCALE_BITS = 32        # hw/vec_rescale.py: operand and multiplier of the input rescaler
WALKER_ROW_ADDRESS_BITS = (12, 24)   # hw/vec_walker.py: input row times row bytes


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


def packs_two_macs(act_bits: int, weight_bits: int, dsp_type: str) -> bool:
    """True when two MACs sharing one activation fit one DSP, each product unpacked on its
    own: `weight_bits + (act_bits + weight_bits) + 1` bits of packed weights on the wide port
    and the activation less its zero point (act_bits + 1 bits) on the narrow one."""
    wide, narrow = _ports(dsp_type)
    return act_bits + 1 <= narrow and act_bits + 2 * weight_bits + 1 <= wide


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
                dsp_type: str, post_multipliers: bool = True) -> int:
    """DSP slices of the engine as generated: the MAC array and Q post-processing lanes.

    A MAC multiplies an input minus its zero point (act_bits + 1 bits) by a weight; where
    `packs_two_macs` holds, rows 2k and 2k + 1 share one slice per input (an odd last row has
    its own), so the array takes ceil(Q / 2) x L slices. Each post-processing lane
    (hw/postproc.py) has two multipliers: the requantization product of magnitudes
    (|acc + bias|, max(acc_bits, 32) bits unsigned, times |M|, 32 bits unsigned: one bit more
    each as signed operands) and the activation slope product (y clamped to 42 bits times an
    18-bit slope); shift-only lanes (`post_multipliers` False) have none. `tm` and `tn` may
    be numpy arrays.

    >>> engine_dsps(4, 4, 8, 8, 32, "DSP48E1")     # 2 x 4 packed pairs + 4 lanes of 4 + 2
    32
    >>> engine_dsps(4, 4, 8, 8, 32, "DSP48E1", post_multipliers=False)
    8
    """
    if packs_two_macs(act_bits, weight_bits, dsp_type):
        macs = (tm + 1) // 2 * tn
    else:
        macs = tm * tn * dsps_per_multiplier(act_bits + 1, weight_bits, dsp_type)
    return macs + tm * post_lane_dsps(acc_bits, dsp_type, post_multipliers)


def post_lane_dsps(acc_bits: int, dsp_type: str, post_multipliers: bool = True) -> int:
    """DSP slices of one post-processing lane (hw/postproc.py; see `engine_dsps`)."""
    if not post_multipliers:
        return 0
    operand = max(acc_bits, POST_PARAM_BITS) + 1
    return (dsps_per_multiplier(operand, POST_PARAM_BITS + 1, dsp_type)
            + dsps_per_multiplier(POST_CLAMP_BITS, POST_SLOPE_BITS, dsp_type))


def vector_dsps(tn: int, acc_bits: int, dsp_type: str, post_multipliers: bool = True) -> int:
    """DSP slices of the vector unit (hw/vector.py): per lane (L = tn) the input rescaler's
    int32 x int32 product (hw/vec_rescale.py) and a post-processing lane, and once the
    walker's row address, a 12-bit input row times its 24-bit row length in bytes.

    >>> vector_dsps(8, 32, "DSP48E1"), vector_dsps(8, 32, "DSP48E1", post_multipliers=False)
    (81, 33)
    """
    rescale = dsps_per_multiplier(RESCALE_BITS, RESCALE_BITS, dsp_type)
    walker = dsps_per_multiplier(*WALKER_ROW_ADDRESS_BITS, dsp_type)
    return tn * (rescale + post_lane_dsps(acc_bits, dsp_type, post_multipliers)) + walker


def dsps_for_array(macs: int, per_mac) -> int:
    """DSP slices of an array of `macs` parallel MACs (a packed pair shares one slice)."""
    return ceil(macs * per_mac)


def _ports(dsp_type: str) -> tuple[int, int]:
    if dsp_type not in PORTS:
        raise UserError(f"dsp model: unknown DSP type {dsp_type!r}; known: {sorted(PORTS)}")
    return PORTS[dsp_type]
