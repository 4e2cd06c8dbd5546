"""Xilinx .coe: `memory_initialization_radix=R;`, then `memory_initialization_vector=` and the
words separated by commas, the last one ended by `;`. Lines starting with `;` are comments.

    ; fpgacnn conv5.weight: 4608 words of 512 bits
    memory_initialization_radix=2;
    memory_initialization_vector=
    0000000000000001...,
    ...;
"""

import re

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.export.formats._text import rows_from_tokens, word_lines
from fpgacnn.export.words import check_radix, chunks

SUFFIX = ".coe"


def write(f, rows, g, options, title: str) -> None:
    radix = check_radix(options.radix)
    f.write(f"; fpgacnn {title}: {len(rows)} words of {g.word_bits} bits\n"
            f"memory_initialization_radix={radix};\n"
            f"memory_initialization_vector=\n".encode())
    for part in chunks(len(rows), g):
        lines = word_lines(rows[part], g, radix, after=b",\n")
        if part.stop == len(rows):
            lines[-1, -2] = ord(";")
        f.write(lines.tobytes())


_STATEMENT = re.compile(rb"^\s*(\w+)\s*=(.*)$", re.S)


def read(data: bytes, g, options, where: str) -> np.ndarray:
    text = b"\n".join(line for line in data.splitlines() if not line.lstrip().startswith(b";"))
    values = {}
    for statement in text.split(b";"):
        if not statement.strip():
            continue
        match = _STATEMENT.match(statement)
        if not match:
            raise UserError(f"{where}: not a 'key=value;' statement: "
                            f"{statement.strip()[:40].decode(errors='replace')!r}")
        values[match[1].decode().lower()] = match[2]
    if "memory_initialization_radix" not in values or "memory_initialization_vector" not in values:
        raise UserError(f"{where}: needs memory_initialization_radix and "
                        f"memory_initialization_vector")
    radix_text = values["memory_initialization_radix"].strip().decode(errors="replace")
    if radix_text not in ("2", "16"):
        raise UserError(f"{where}: unknown radix {radix_text!r}; use 2 or 16")
    tokens = re.split(rb"[\s,]+", values["memory_initialization_vector"].strip())
    return rows_from_tokens([t for t in tokens if t], g, int(radix_text), where)
