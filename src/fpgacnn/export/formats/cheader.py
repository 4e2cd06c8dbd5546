"""C header for the processor side: `static const uintN_t NAME[ROWS]` with one word per
element (words of up to 64 bits), or `static const uint32_t NAME[ROWS][LIMBS]` with the 32-bit
limbs of a wider word, least significant limb first; plus `#define`s of the geometry.

    #include <stdint.h>
    #define CONV5_WEIGHT_ROWS 4608
    #define CONV5_WEIGHT_WORD_BITS 512
    static const uint32_t CONV5_WEIGHT[4608][16] = {
        {0x00010002u, ...},
    };
"""

import re

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.export.formats._text import rows_from_tokens
from fpgacnn.export.words import chunks, digits_to_text, to_digits

SUFFIX = ".h"


def c_identifier(title: str) -> str:
    """An upper-case C identifier from a tensor name: 'conv5.weight' -> 'CONV5_WEIGHT'."""
    name = re.sub(r"\W", "_", title).upper()
    return f"T_{name}" if not name or name[0].isdigit() else name


def element_bits(g) -> tuple[int, int]:
    """(bits of one C element, elements per word)."""
    for size in (8, 16, 32, 64):
        if g.word_bits <= size:
            return size, 1
    return 32, -(-g.word_bits // 32)


def write(f, rows, g, options, title: str) -> None:
    name = c_identifier(title)
    size, limbs = element_bits(g)
    shape = f"[{len(rows)}]" + (f"[{limbs}]" if limbs > 1 else "")
    f.write(f"/* fpgacnn {title}: {len(rows)} words of {g.word_bits} bits "
            f"({g.lanes} x {g.bits}-bit {'signed' if g.signed else 'unsigned'}) */\n"
            f"#ifndef FPGACNN_{name}_H\n#define FPGACNN_{name}_H\n\n#include <stdint.h>\n\n"
            f"#define {name}_ROWS {len(rows)}\n#define {name}_WORD_BITS {g.word_bits}\n"
            f"#define {name}_LANES {g.lanes}\n#define {name}_LANE_BITS {g.bits}\n\n"
            f"static const uint{size}_t {name}{shape} = {{\n".encode())
    digits = size // 4
    for part in chunks(len(rows), g):
        text = digits_to_text(to_digits(rows[part], g, 16), 16)
        pad = limbs * digits - text.shape[1]
        if pad:
            text = np.concatenate([np.full((len(text), pad), ord("0"), np.uint8), text], 1)
        limb_text = text.reshape(len(text), limbs, digits)[:, ::-1, :]
        suffix = b"ull, " if size == 64 else b"u, "
        cells = np.empty((len(text), limbs, 2 + digits + len(suffix)), np.uint8)
        cells[:, :, :2] = np.frombuffer(b"0x", np.uint8)
        cells[:, :, 2:2 + digits] = limb_text
        cells[:, :, 2 + digits:] = np.frombuffer(suffix, np.uint8)
        body = cells.reshape(len(text), -1)[:, :-2]  # no ", " after the last limb
        open_, close = (b"    {", b"},\n") if limbs > 1 else (b"    ", b",\n")
        lines = np.empty((len(text), len(open_) + body.shape[1] + len(close)), np.uint8)
        lines[:, :len(open_)] = np.frombuffer(open_, np.uint8)
        lines[:, len(open_):len(open_) + body.shape[1]] = body
        lines[:, len(open_) + body.shape[1]:] = np.frombuffer(close, np.uint8)
        f.write(lines.tobytes())
    f.write("};\n\n#endif\n".encode())


_ARRAY = re.compile(rb"uint(\d+)_t\s+(\w+)\s*\[(\d+)\]\s*(?:\[(\d+)\])?\s*=\s*\{(.*?)\}\s*;",
                    re.S)


def read(data: bytes, g, options, where: str) -> np.ndarray:
    match = _ARRAY.search(re.sub(rb"/\*.*?\*/|//[^\n]*", b"", data, flags=re.S))
    if not match:
        raise UserError(f"{where}: no 'static const uintN_t NAME[ROWS] = {{...}};' array")
    size, rows, limbs = int(match[1]), int(match[3]), int(match[4] or 1)
    tokens = re.findall(rb"0x([0-9a-fA-F]+)", match[5])
    if len(tokens) != rows * limbs:
        raise UserError(f"{where}: array declares {rows} x {limbs} elements, holds "
                        f"{len(tokens)}")
    digits = size // 4
    tokens = [t.rjust(digits, b"0") for t in tokens]
    words = [b"".join(reversed(tokens[r * limbs:(r + 1) * limbs])) for r in range(rows)]
    return rows_from_tokens(words, g, 16, where)
