"""Words: rows of lane values <-> bits, text digits and bytes, vectorised with numpy.

A word of `lanes` values of `bits` bits is, from its most significant bit down: `word_bits -
lanes * bits` zero bits, then the lanes, the last lane first unless `msb_first` (then lane 0
first). A "bit matrix" is a uint8 array (rows, word_bits) of 0/1, most significant bit first,
which is also the order a radix-2 text word is written in.

>>> g = WordGeometry(lanes=2, bits=4, signed=True, msb_first=False, word_bits=8)
>>> digits_to_text(to_digits(np.array([[1, -1]]), g, 16), 16).tobytes()
b'f1'
"""

from dataclasses import dataclass

import numpy as np

from fpgacnn.errors import UserError

RADIX_BITS = {2: 1, 16: 4}
_ASCII_VALUE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _ASCII_VALUE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _ASCII_VALUE[_c] = 10 + _i
CHUNK_BITS = 1 << 23  # bits per chunk of work, to bound the memory of the temporaries


@dataclass(frozen=True)
class WordGeometry:
    lanes: int
    bits: int
    signed: bool
    msb_first: bool
    word_bits: int

    @classmethod
    def of(cls, layout, lanes: int) -> "WordGeometry":
        return cls(lanes, layout.bits, layout.signed, layout.msb_first, layout.word_width(lanes))

    @property
    def word_bytes(self) -> int:
        return -(-self.word_bits // 8)

    def digits(self, radix: int) -> int:
        return -(-self.word_bits // RADIX_BITS[check_radix(radix)])

    def chunk_rows(self) -> int:
        """Rows per chunk so that a chunk's bit matrix stays about CHUNK_BITS bits."""
        return max(1, CHUNK_BITS // max(self.word_bits, 1))


def check_radix(radix) -> int:
    if radix not in RADIX_BITS:
        raise UserError(f"unknown radix {radix!r}; use 2 or 16")
    return radix


def to_bits(rows: np.ndarray, g: WordGeometry) -> np.ndarray:
    """Bit matrix (rows, word_bits), most significant bit first."""
    nbytes = next(n for n in (1, 2, 4, 8) if g.bits <= 8 * n)
    # two's complement wraps into the unsigned type; big-endian bytes are MSB first
    values = rows.astype(f">u{nbytes}", copy=False)
    values = np.ascontiguousarray(values if g.msb_first else values[:, ::-1])
    lane_bits = np.unpackbits(values.view(np.uint8).reshape(len(rows), g.lanes, nbytes),
                              axis=2)[:, :, 8 * nbytes - g.bits:]
    top = g.word_bits - g.lanes * g.bits
    bitmat = np.empty((len(rows), g.word_bits), np.uint8)
    bitmat[:, :top] = 0
    bitmat[:, top:] = lane_bits.reshape(len(rows), g.lanes * g.bits)
    return bitmat


def from_bits(bitmat: np.ndarray, g: WordGeometry, where: str) -> np.ndarray:
    """Rows (rows, lanes) int64 from a bit matrix with at least word_bits columns."""
    extra = bitmat.shape[1] - g.lanes * g.bits
    if extra < 0:
        raise UserError(f"{where}: words have {bitmat.shape[1]} bits, the layout needs "
                        f"{g.lanes} x {g.bits}")
    if extra and bitmat[:, :extra].any():
        row = int(np.flatnonzero(bitmat[:, :extra].any(axis=1))[0])
        raise UserError(f"{where}: word {row} has bits set above the {g.lanes} x {g.bits} "
                        f"lanes")
    lane_bits = bitmat[:, extra:].reshape(len(bitmat), g.lanes, g.bits).astype(np.int64)
    weights = np.int64(1) << np.arange(g.bits - 1, -1, -1, dtype=np.int64)
    values = lane_bits @ weights
    if g.signed:
        values = values - (lane_bits[:, :, 0] << g.bits)
    return values if g.msb_first else values[:, ::-1]


def to_digits(rows: np.ndarray, g: WordGeometry, radix: int) -> np.ndarray:
    """Digit values (rows, digits) of each word, most significant first."""
    step = RADIX_BITS[check_radix(radix)]
    bitmat = to_bits(rows, g)
    if step == 1:
        return bitmat
    ndigits = g.digits(radix)
    top = ndigits * step - g.word_bits
    if top:
        bitmat = np.concatenate([np.zeros((len(rows), top), np.uint8), bitmat], axis=1)
    nibbles = bitmat.reshape(len(rows), ndigits, 4)
    return (nibbles[:, :, 0] << 3) | (nibbles[:, :, 1] << 2) | (nibbles[:, :, 2] << 1) \
        | nibbles[:, :, 3]


def digits_to_text(digits: np.ndarray, radix: int, out: np.ndarray | None = None) -> np.ndarray:
    """ASCII codes (uint8) of the digits, lower-case hex; into `out` if given."""
    text = np.add(digits, ord("0"), out=out, dtype=np.uint8)
    if radix != 2:
        text += (digits > 9).astype(np.uint8) * (ord("a") - ord("9") - 1)
    return text


def text_to_bits(chars: np.ndarray, radix: int, where: str) -> np.ndarray:
    """Bit matrix from ASCII digit codes (rows, digits)."""
    step = RADIX_BITS[check_radix(radix)]
    values = _ASCII_VALUE[chars]
    if (values >= (1 << step)).any():
        row, col = (int(i[0]) for i in np.nonzero(values >= (1 << step)))
        raise UserError(f"{where}: word {row} has {chr(chars[row, col])!r}, not a "
                        f"radix-{radix} digit")
    if step == 1:
        return values
    shifts = np.arange(3, -1, -1, dtype=np.uint8)
    return ((values[:, :, None] >> shifts) & 1).reshape(len(values), -1)


def to_bytes(rows: np.ndarray, g: WordGeometry, byteorder: str) -> np.ndarray:
    """The words' bytes (a flat uint8 array), each word `word_bytes` long in `byteorder`
    ("little" or "big"); it can be written to a file or assigned into a bytearray."""
    if byteorder not in ("little", "big"):
        raise UserError(f"unknown byte order {byteorder!r}; use little or big")
    if g.bits in (8, 16, 32) and g.word_bits == g.lanes * g.bits:
        # whole-byte lanes: the word's bytes are the lanes' bytes, no bit shuffling
        lanes_reversed = g.msb_first == (byteorder == "little")
        kind = "i" if g.signed else "u"
        dtype = np.dtype(f"{'<' if byteorder == 'little' else '>'}{kind}{g.bits // 8}")
        values = rows[:, ::-1] if lanes_reversed else rows
        return np.ascontiguousarray(values.astype(dtype, copy=False)).view(np.uint8).ravel()
    bitmat = to_bits(rows, g)
    top = g.word_bytes * 8 - g.word_bits
    if top:
        bitmat = np.concatenate([np.zeros((len(rows), top), np.uint8), bitmat], axis=1)
    data = np.packbits(bitmat, axis=1)
    return np.ascontiguousarray(data[:, ::-1] if byteorder == "little" else data).ravel()


def from_bytes(data: bytes, g: WordGeometry, byteorder: str, where: str) -> np.ndarray:
    """Rows (rows, lanes) int64 from the bytes written by `to_bytes`."""
    if byteorder not in ("little", "big"):
        raise UserError(f"unknown byte order {byteorder!r}; use little or big")
    if len(data) % g.word_bytes:
        raise UserError(f"{where}: {len(data)} bytes is not a whole number of "
                        f"{g.word_bytes}-byte words")
    if g.bits in (8, 16, 32) and g.word_bits == g.lanes * g.bits:
        kind = "i" if g.signed else "u"
        dtype = np.dtype(f"{'<' if byteorder == 'little' else '>'}{kind}{g.bits // 8}")
        values = np.frombuffer(data, dtype=dtype).reshape(-1, g.lanes).astype(np.int64)
        return values[:, ::-1] if g.msb_first == (byteorder == "little") else values
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, g.word_bytes)
    if byteorder == "little":
        raw = raw[:, ::-1]
    return from_bits(np.unpackbits(raw, axis=1), g, where)


def chunks(n_rows: int, g: WordGeometry):
    """Row slices of at most g.chunk_rows() rows covering 0..n_rows."""
    step = g.chunk_rows()
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))
