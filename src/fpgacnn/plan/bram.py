"""Block RAM model: a buffer (word width, depth, copies after partitioning) on RAMB18/RAMB36.

A memory of `depth` words of `width` bits built from one primitive in aspect ratio
`d x w` (d words of w bits) needs `ceil(width / w) * ceil(depth / d)` primitives; the model
takes the cheapest aspect ratio. Aspect ratios are those of UG473 (7-series) and UG573
(UltraScale), the widest one only in simple dual-port mode:

- RAMB18: 16Kx1, 8Kx2, 4Kx4, 2Kx9, 1Kx18, 512x36 (SDP)
- RAMB36: 32Kx1, 16Kx2, 8Kx4, 4Kx9, 2Kx18, 1Kx36, 512x72 (SDP)

Partitioning an array on some dimensions makes `copies` separate memories, each built on its
own primitives, so the count is `copies` times the count of one.

>>> map_buffer(32, 1024, copies=432, primitive="ramb36").count   # ZynqNet's WBRAM
432
>>> map_buffer(32, 9216, copies=8, primitive="ramb18").count     # seed 003's WBRAM
144
"""

from dataclasses import dataclass
from math import ceil

from fpgacnn.errors import UserError

ASPECTS = {
    "ramb18": ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
    "ramb36": ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72)),
}
CAPACITY_BITS = {"ramb18": 18 * 1024, "ramb36": 36 * 1024}
RAMB18_PER = {"ramb18": 1, "ramb36": 2}
STAGED_BITS = 18        # one finished output in the engine's staging buffer (hw/writer.py)


@dataclass(frozen=True)
class BramMapping:
    """How one buffer maps onto block RAM primitives."""

    width: int
    depth: int
    copies: int
    primitive: str
    aspect: tuple[int, int]     # (words, bits) of one primitive as configured
    count: int                  # primitives in all
    true_dual_port: bool = False

    @property
    def words(self) -> int:
        return self.depth * self.copies

    @property
    def bits(self) -> int:
        return self.width * self.words

    @property
    def bram18(self) -> int:
        """The count in RAMB18 units (a RAMB36 is two)."""
        return self.count * RAMB18_PER[self.primitive]

    @property
    def efficiency(self) -> float:
        """Bits stored over bits of the primitives used (parity bits included)."""
        return self.bits / (self.count * CAPACITY_BITS[self.primitive]) if self.count else 1.0

    def words_held_by(self, primitives: int) -> int:
        """Words of `width` bits that `primitives` primitives of this kind can hold."""
        return words_held_by(self.width, primitives, self.primitive, self.true_dual_port)


def _aspects(primitive: str, true_dual_port: bool):
    if primitive not in ASPECTS:
        raise UserError(f"bram: primitive must be one of {sorted(ASPECTS)}, got {primitive!r}")
    return ASPECTS[primitive][:-1] if true_dual_port else ASPECTS[primitive]


def _check(name, value, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UserError(f"bram: {name} must be an integer >= {minimum}, got {value!r}")


def map_buffer(width: int, depth: int, copies: int = 1, primitive: str = "ramb18",
               true_dual_port: bool = False) -> BramMapping:
    """The cheapest mapping of `copies` memories of `depth` x `width` bits onto `primitive`.

    >>> m = map_buffer(16, 1000)
    >>> (m.count, m.aspect)
    (1, (1024, 18))
    """
    _check("width", width)
    _check("depth", depth)
    _check("copies", copies)
    best = min(((ceil(width / w) * ceil(depth / d), (d, w))
                for d, w in _aspects(primitive, true_dual_port)), key=lambda t: t[0])
    return BramMapping(width, depth, copies, primitive, best[1], best[0] * copies, true_dual_port)


def map_buffer_best(width: int, depth: int, copies: int = 1,
                    true_dual_port: bool = False) -> BramMapping:
    """RAMB18 or RAMB36, whichever takes fewer RAMB18 units (RAMB18 on a tie)."""
    m18 = map_buffer(width, depth, copies, "ramb18", true_dual_port)
    m36 = map_buffer(width, depth, copies, "ramb36", true_dual_port)
    return m18 if m18.bram18 <= m36.bram18 else m36


def words_held_by(width: int, primitives: int, primitive: str = "ramb18",
                  true_dual_port: bool = False) -> int:
    """Most words of `width` bits that `primitives` primitives can hold as one memory."""
    _check("width", width)
    _check("available", primitives, 0)
    return max((primitives // ceil(width / w)) * d
               for d, w in _aspects(primitive, true_dual_port))


def check_fits(mapping: BramMapping, available: int) -> None:
    """Raise a UserError giving words needed, words available and the shortfall."""
    if mapping.count <= available:
        return
    held = mapping.words_held_by(available)
    short = mapping.words - held
    prim = mapping.primitive.upper()
    if short <= 0:
        raise UserError(f"bram: {mapping.copies} separate memories of {mapping.depth} words of "
                        f"{mapping.width} bits need {mapping.count} {prim}, {available} "
                        f"available: partitioning costs {mapping.count - available} more")
    raise UserError(f"bram: {mapping.copies} x {mapping.depth} words of {mapping.width} bits "
                    f"need {mapping.count} {mapping.primitive.upper()} for {mapping.words:,} "
                    f"words; {available} {mapping.primitive.upper()} hold {held:,} words: "
                    f"overflow of {short:,} words")


def bram18_count_array(width, depth, copies):
    """RAMB18 units (RAMB18 or RAMB36, the cheaper) for arrays of buffers; numpy, for search.

    Gives the same count as `map_buffer_best(...).bram18` element by element.
    """
    import numpy as np

    width, depth, copies = (np.asarray(v, dtype=np.int64) for v in (width, depth, copies))
    best = None
    for primitive in ("ramb18", "ramb36"):
        for d, w in ASPECTS[primitive]:
            units = -(-width // w) * -(-depth // d) * RAMB18_PER[primitive]
            best = units if best is None else np.minimum(best, units)
    return best * copies


def engine_buffers(tm, tn, tr, tc, act_bits, weight_bits, acc_bits, max_kernel, max_stride):
    """{name: (width, depth)} of the engine's block RAMs as generated (hw/buffers.py).

    Each buffer is one memory of full-width words; a ping-pong buffer holds both banks, one
    after the other. Works element by element on numpy arrays of tile sizes.

    >>> engine_buffers(4, 4, 4, 4, 8, 8, 32, 3, 1)["input"]
    (32, 72)
    """
    in_words = ((tr - 1) * max_stride + max_kernel) * ((tc - 1) * max_stride + max_kernel)
    return {"input": (tn * act_bits, 2 * in_words),
            "weight": (tm * tn * weight_bits, 2 * max_kernel * max_kernel),
            "accumulator": (tm * acc_bits, tr * tc),
            "staging": (tm * STAGED_BITS, 2 * tr * tc)}


def engine_bram18(tm, tn, tr, tc, act_bits, weight_bits, acc_bits, max_kernel, max_stride):
    """RAMB18 units of the engine's buffers (`engine_buffers`), each mapped at its cheapest."""
    buffers = engine_buffers(tm, tn, tr, tc, act_bits, weight_bits, acc_bits, max_kernel,
                             max_stride)
    return sum(bram18_count_array(width, depth, 1) for width, depth in buffers.values())
