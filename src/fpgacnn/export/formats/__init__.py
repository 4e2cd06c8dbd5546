"""The memory file formats: one module each, all with `write(f, rows, g, options, title)` and
`read(data, g, options, where) -> rows`, so that reading what was written gives it back."""

from dataclasses import dataclass

from fpgacnn.errors import UserError
from fpgacnn.export.formats import binfile, cheader, coe, mem, mif, npyfile
from fpgacnn.export.words import check_radix

FORMATS = {"coe": coe, "mem": mem, "mif": mif, "bin": binfile, "h": cheader, "npy": npyfile}


@dataclass(frozen=True)
class FileOptions:
    """Options of the formats: `radix` (2 or 16) of .coe/.mem/.mif, `byteorder` of .bin,
    `address_every` N writes an `@address` line before every N words of a .mem (0: none)."""

    radix: int = 16
    byteorder: str = "little"
    address_every: int = 0

    def __post_init__(self):
        check_radix(self.radix)
        if self.byteorder not in ("little", "big"):
            raise UserError(f"unknown byte order {self.byteorder!r}; use little or big")
        if not isinstance(self.address_every, int) or self.address_every < 0:
            raise UserError(f"address_every must be a non-negative integer, "
                            f"not {self.address_every!r}")


def format_module(name: str):
    """The module of format `name` (coe, mem, mif, bin, h, npy)."""
    if name not in FORMATS:
        raise UserError(f"unknown format {name!r}; use one of {', '.join(FORMATS)}")
    return FORMATS[name]
