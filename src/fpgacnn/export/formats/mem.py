"""Verilog .mem for $readmemh (radix 16) / $readmemb (radix 2): one word per line, optional
`@address` lines (hexadecimal word address), `//` comments.

    // fpgacnn conv5.weight: 4608 words of 512 bits
    @0
    0001fffe...
"""

import re

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.export.formats._text import rows_from_tokens, word_lines
from fpgacnn.export.words import check_radix, chunks

SUFFIX = ".mem"


def write(f, rows, g, options, title: str) -> None:
    radix = check_radix(options.radix)
    f.write(f"// fpgacnn {title}: {len(rows)} words of {g.word_bits} bits\n".encode())
    every = options.address_every or len(rows)
    for start in range(0, len(rows), max(every, 1)):
        block = rows[start:start + every]
        if options.address_every:
            f.write(f"@{start:x}\n".encode())
        for part in chunks(len(block), g):
            f.write(word_lines(block[part], g, radix).tobytes())


_COMMENTS = re.compile(rb"//[^\n]*|/\*.*?\*/", re.S)


def read(data: bytes, g, options, where: str) -> np.ndarray:
    radix = check_radix(options.radix)
    tokens = _COMMENTS.sub(b" ", data).split()
    if not any(t.startswith(b"@") for t in tokens):
        return rows_from_tokens([t.replace(b"_", b"") for t in tokens], g, radix, where)
    placed, address = {}, 0
    for token in tokens:
        if token.startswith(b"@"):
            try:
                address = int(token[1:], 16)
            except ValueError:
                raise UserError(f"{where}: bad address {token.decode(errors='replace')!r}") \
                    from None
            continue
        placed[address] = token.replace(b"_", b"")
        address += 1
    depth = max(placed) + 1
    words = [placed.get(a, b"0") for a in range(depth)]
    return rows_from_tokens(words, g, radix, where)
