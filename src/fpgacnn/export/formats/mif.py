"""Intel (Quartus) .mif: WIDTH, DEPTH, ADDRESS_RADIX, DATA_RADIX, then `CONTENT BEGIN`,
one `address : word;` per line, `END;`. `--` starts a comment.

    -- fpgacnn conv5.weight: 4608 words of 512 bits
    WIDTH=512;
    DEPTH=4608;
    ADDRESS_RADIX=UNS;
    DATA_RADIX=BIN;
    CONTENT BEGIN
       0 : 0000...;
    ...
    END;
"""

import re

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.export.formats._text import right_aligned_decimal, rows_from_tokens, word_lines
from fpgacnn.export.words import check_radix, chunks

SUFFIX = ".mif"
RADIX_NAMES = {2: "BIN", 16: "HEX"}


def write(f, rows, g, options, title: str) -> None:
    radix = check_radix(options.radix)
    f.write(f"-- fpgacnn {title}: {len(rows)} words of {g.word_bits} bits\n"
            f"WIDTH={g.word_bits};\nDEPTH={len(rows)};\n\n"
            f"ADDRESS_RADIX=UNS;\nDATA_RADIX={RADIX_NAMES[radix]};\n\n"
            f"CONTENT BEGIN\n".encode())
    width = len(str(max(len(rows) - 1, 0)))
    for part in chunks(len(rows), g):
        lines = word_lines(rows[part], g, radix, before=b" " * (width + 4) + b" : ",
                           after=b";\n")
        addresses = np.arange(part.start, part.stop, dtype=np.int64)
        lines[:, 4:4 + width] = right_aligned_decimal(addresses, width)
        f.write(lines.tobytes())
    f.write(b"END;\n")


_HEADER = re.compile(rb"^\s*(WIDTH|DEPTH|ADDRESS_RADIX|DATA_RADIX)\s*=\s*(\w+)\s*;", re.I | re.M)
_ENTRY = re.compile(rb"^\s*(?:\[\s*(\w+)\s*\.\.\s*(\w+)\s*\]|(\w+))\s*:\s*([^;]*);\s*$")
_RADIX = {b"BIN": 2, b"HEX": 16, b"UNS": 10, b"DEC": 10, b"OCT": 8}


def read(data: bytes, g, options, where: str) -> np.ndarray:
    text = re.sub(rb"--[^\n]*|%[^%]*%", b"", data)
    head, sep, body = text.partition(b"CONTENT BEGIN")
    if not sep or not body.rstrip().endswith(b"END;"):
        raise UserError(f"{where}: needs 'CONTENT BEGIN' ... 'END;'")
    header = {k.upper(): v.upper() for k, v in _HEADER.findall(head)}
    missing = [k for k in ("WIDTH", "DEPTH", "ADDRESS_RADIX", "DATA_RADIX")
               if k.encode() not in header]
    if missing:
        raise UserError(f"{where}: header field {missing[0]} is missing")
    data_radix = _RADIX.get(header[b"DATA_RADIX"])
    if data_radix not in (2, 16):
        raise UserError(f"{where}: unknown DATA_RADIX {header[b'DATA_RADIX'].decode()!r}; "
                        f"use BIN or HEX")
    address_radix = _RADIX.get(header[b"ADDRESS_RADIX"])
    if address_radix is None:
        raise UserError(f"{where}: unknown ADDRESS_RADIX "
                        f"{header[b'ADDRESS_RADIX'].decode()!r}")
    depth = int(header[b"DEPTH"])
    words = [b"0"] * depth
    for line in body.rstrip()[:-len(b"END;")].splitlines():
        if not line.strip():
            continue
        match = _ENTRY.match(line)
        if not match:
            raise UserError(f"{where}: bad content line {line.strip()[:40].decode()!r}")
        first, last = (match[1], match[2]) if match[1] else (match[3], match[3])
        values = match[4].split()
        lo, hi = int(first, address_radix), int(last, address_radix)
        if hi >= depth:
            raise UserError(f"{where}: address {hi} is beyond DEPTH={depth}")
        for i, address in enumerate(range(lo, hi + 1)):
            words[address] = values[i % len(values)] if match[1] else values[0]
        if not match[1]:
            for i, value in enumerate(values[1:], start=1):
                words[lo + i] = value
    return rows_from_tokens(words, g, data_radix, where)
