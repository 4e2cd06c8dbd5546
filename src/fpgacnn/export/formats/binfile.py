"""Raw binary: the words back to back, each `ceil(word_bits / 8)` bytes, little or big endian."""

import numpy as np

from fpgacnn.export.words import chunks, from_bytes, to_bytes

SUFFIX = ".bin"


def write(f, rows, g, options, title: str) -> None:
    for part in chunks(len(rows), g):
        f.write(to_bytes(rows[part], g, options.byteorder))


def read(data: bytes, g, options, where: str) -> np.ndarray:
    return from_bytes(data, g, options.byteorder, where)
