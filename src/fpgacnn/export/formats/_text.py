"""Shared pieces of the text formats: word lines out, word tokens in."""

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.export.words import (WordGeometry, digits_to_text, from_bits, text_to_bits,
                                  to_digits)


def word_lines(rows: np.ndarray, g: WordGeometry, radix: int, before: bytes = b"",
               after: bytes = b"\n") -> np.ndarray:
    """A uint8 matrix, one text line per row: `before`, the word's digits, `after`."""
    digits = to_digits(rows, g, radix)
    width = digits.shape[1]
    out = np.empty((len(rows), len(before) + width + len(after)), dtype=np.uint8)
    out[:, :len(before)] = np.frombuffer(before, dtype=np.uint8)
    digits_to_text(digits, radix, out=out[:, len(before):len(before) + width])
    out[:, len(before) + width:] = np.frombuffer(after, dtype=np.uint8)
    return out


def right_aligned_decimal(numbers: np.ndarray, width: int) -> np.ndarray:
    """ASCII matrix (len(numbers), width): each number in decimal, padded with leading spaces."""
    powers = np.int64(10) ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = (numbers[:, None] // powers) % 10
    chars = (digits + ord("0")).astype(np.uint8)
    leading = (numbers[:, None] < powers) & (powers > 1)
    chars[leading] = ord(" ")
    return chars


def rows_from_tokens(tokens: list[bytes], g: WordGeometry, radix: int,
                     where: str) -> np.ndarray:
    """Rows (rows, lanes) int64 from word tokens in `radix` (shorter tokens are zero-extended)."""
    if not tokens:
        return np.zeros((0, g.lanes), dtype=np.int64)
    width = max(g.digits(radix), max(len(t) for t in tokens))
    if any(len(t) != width for t in tokens):
        tokens = [t.rjust(width, b"0") for t in tokens]
    if any(not t for t in tokens):
        raise UserError(f"{where}: empty word")
    chars = np.frombuffer(b"".join(tokens), dtype=np.uint8).reshape(len(tokens), width)
    return from_bits(text_to_bits(chars, radix, where), g, where)
