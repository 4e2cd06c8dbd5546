"""Layout spec: how a tensor becomes rows of memory words.

A layout is an einops pattern whose right side has two groups, rows (addresses) and lanes (the
values packed in one word), plus the sizes of split axes, the value width and the order of the
lanes in a word. Seed 000's conv5 weight order `w[2k+j, 16p+i, x, y]`, looping p, k, x, y per
row and i, j inside a row, is

    Layout("(k j) (p i) x y -> (p k x y) (i j)", {"j": 2, "i": 16}, bits=16, msb_first=True)

Row r of the result is memory address r; lane 0 is the first value of a row, at the least
significant end of the word unless `msb_first` (the seed writes strings left to right, so its
first value is the most significant one). The pattern algebra is einops'.
"""

import functools
import sys
from dataclasses import dataclass, field
from math import prod
from types import MappingProxyType
from typing import Mapping

import einops
import numpy as np
from einops.parsing import ParsedExpression

from fpgacnn.errors import UserError
from fpgacnn.golden.arith import int_range, saturate

MAX_VALUE_BITS = 32


@dataclass(frozen=True)
class Layout:
    """A tensor-to-memory layout; see the module docstring.

    - `sizes`: sizes of split axes, e.g. {"j": 2, "i": 16}
    - `bits`: width of one value; `signed`: two's complement, else unsigned
    - `msb_first`: lane 0 at the most significant end of the word
    - `word_bits`: word width, at least lanes * bits (the rest is zero at the top); None means
      lanes * bits
    - `pad`: zero-pad a split axis up to a multiple of its known sizes (channels to a multiple
      of L); without it such a tensor is an error
    - `bank_depth`: split the rows over several memories of this many rows each

    >>> Layout("a b -> a b", bits=8).rows(np.array([[1, -2]]), "t").tolist()
    [[1, -2]]
    """

    pattern: str
    sizes: Mapping[str, int] = field(default_factory=dict)
    bits: int = 8
    signed: bool = True
    msb_first: bool = False
    word_bits: int | None = None
    pad: bool = False
    bank_depth: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "sizes", MappingProxyType(dict(self.sizes)))
        if not isinstance(self.bits, int) or not 1 <= self.bits <= MAX_VALUE_BITS:
            raise UserError(f"layout {self.pattern!r}: bits must be 1..{MAX_VALUE_BITS}, "
                            f"not {self.bits!r}")
        for key in ("word_bits", "bank_depth"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UserError(f"layout {self.pattern!r}: {key} must be a positive integer, "
                                f"not {value!r}")
        for name, size in self.sizes.items():
            if not isinstance(size, int) or size < 1:
                raise UserError(f"layout {self.pattern!r}: size {name}={size!r} must be a "
                                f"positive integer")
        self._sides()

    def _sides(self) -> tuple[ParsedExpression, ParsedExpression]:
        parsed = parse_pattern(self.pattern)
        if parsed[0].has_ellipsis or parsed[1].has_ellipsis:
            raise UserError(f"layout {self.pattern!r}: '...' is not supported; name every axis")
        if len(parsed[1].composition) not in (1, 2):
            raise UserError(f"layout {self.pattern!r}: the right side must be 'ROWS LANES' "
                            f"(two groups) or 'ROWS' (one value per word)")
        unknown = set(self.sizes) - parsed[0].identifiers
        if unknown:
            raise UserError(f"layout {self.pattern!r}: size given for axis "
                            f"{sorted(unknown)[0]!r} which is not in the pattern")
        return parsed

    # ---- geometry -----------------------------------------------------------------------------

    def axis_sizes(self, shape, name: str = "tensor") -> tuple[tuple[int, ...], dict[str, int]]:
        """(padded shape, size of every named axis) for a tensor of `shape`.

        Raises UserError naming the axis and both sizes when `shape` does not fit the pattern.
        """
        left, _ = self._sides()
        shape = tuple(int(d) for d in shape)
        if len(shape) != len(left.composition):
            raise UserError(f"tensor {name}: layout {self.pattern!r} has "
                            f"{len(left.composition)} axes, the tensor has shape {shape}")
        sizes, padded = dict(self.sizes), []
        for axis, (group, dim) in enumerate(zip(left.composition, shape)):
            known = prod(self.sizes[a] for a in group if a in self.sizes)
            free = [a for a in group if a not in self.sizes]
            label = group[0] if len(group) == 1 else f"({' '.join(group)})"
            if len(free) > 1:
                raise UserError(f"tensor {name}: axis {axis} {label!r} needs the sizes of all "
                                f"but one of {', '.join(group)}")
            target = -(-dim // known) * known if free else known
            if target != dim and not (self.pad and target > dim):
                what = f"a multiple of {known}" if free else f"{known}"
                raise UserError(f"tensor {name}: axis {axis} {label!r} has size {dim}, the "
                                f"layout needs {what}")
            if free:
                sizes[free[0]] = target // known
            padded.append(target)
        return tuple(padded), sizes

    def rows_shape(self, shape) -> tuple[int, int]:
        """(number of rows, lanes per row) for a tensor of `shape`."""
        padded, sizes = self.axis_sizes(shape)
        _, right = self._sides()
        groups = [prod(sizes[a] for a in g) for g in right.composition]
        return (groups[0], groups[1] if len(groups) == 2 else 1)

    def word_width(self, lanes: int) -> int:
        """Bits in one word holding `lanes` values."""
        width = self.word_bits or lanes * self.bits
        if width < lanes * self.bits:
            raise UserError(f"layout {self.pattern!r}: word_bits={width} cannot hold {lanes} "
                            f"values of {self.bits} bits")
        return width

    # ---- tensor <-> rows ----------------------------------------------------------------------

    def rows(self, tensor, name: str = "tensor", saturating: bool = False) -> np.ndarray:
        """The tensor as a 2-D array (rows, lanes) in the smallest dtype that holds `bits`.

        A value that does not fit `bits` is an error naming the tensor, index and value, unless
        `saturating` (then it is clamped to the range).
        """
        tensor = np.asarray(tensor)
        padded, sizes = self.axis_sizes(tensor.shape, name)
        tensor = check_fits(tensor, self.bits, self.signed, name, saturating)
        tensor = narrowed(tensor, storage_dtype(self.bits, self.signed))
        if padded != tensor.shape:
            tensor = np.pad(tensor, [(0, p - d) for p, d in zip(padded, tensor.shape)])
        _, right = self._sides()
        lhs = self.pattern.split("->")[0].strip()
        elementary = " ".join(a for group in right.composition for a in group)
        # every output axis on its own: einops gives a transposed view, copied once below
        view = einops.rearrange(tensor, f"{lhs} -> {elementary}", **sizes)
        groups = [prod(sizes[a] for a in g) for g in right.composition]
        return contiguous_copy(view, tensor).reshape(groups[0], -1)

    def unrows(self, rows, shape) -> np.ndarray:
        """The inverse of `rows`: the tensor of `shape` from a (rows, lanes) array."""
        left, right = self._sides()
        padded, sizes = self.axis_sizes(shape)
        expected = self.rows_shape(shape)
        rows = np.asarray(rows)
        if rows.shape != expected:
            raise UserError(f"layout {self.pattern!r}: a tensor of shape {tuple(shape)} needs "
                            f"{expected[0]} rows of {expected[1]} values, the data has "
                            f"{rows.shape[0]} rows of {rows.shape[1] if rows.ndim > 1 else 1}")
        if len(right.composition) == 1:
            rows = rows[:, 0]
        lhs, rhs = (s.strip() for s in self.pattern.split("->"))
        tensor = einops.rearrange(rows, f"{rhs} -> {lhs}", **sizes)
        return tensor[tuple(slice(0, d) for d in shape)]

    def describe(self) -> dict:
        """A JSON-able description (for ddr_map.json and manifests)."""
        return {"pattern": self.pattern, "sizes": dict(self.sizes), "bits": self.bits,
                "signed": self.signed, "msb_first": self.msb_first,
                "word_bits": self.word_bits, "pad": self.pad, "bank_depth": self.bank_depth}


@functools.lru_cache(maxsize=256)
def parse_pattern(pattern: str) -> tuple[ParsedExpression, ParsedExpression]:
    """The two sides of `pattern` as parsed by einops (cached: a layout is used many times)."""
    if pattern.count("->") != 1:
        raise UserError(f"layout {pattern!r}: a pattern needs exactly one '->'")
    left, right = (s.strip() for s in pattern.split("->"))
    try:
        return ParsedExpression(left), ParsedExpression(right)
    except einops.EinopsError as e:
        raise UserError(f"layout {pattern!r}: {str(e).strip().splitlines()[0]}") from None


def contiguous_copy(view: np.ndarray, source: np.ndarray) -> np.ndarray:
    """`np.ascontiguousarray(view)` for a view of `source`, copying each run of bytes that is
    contiguous in both as wider integers where the run allows it.

    An FC weight in the engine's layout moves runs of L int8 values: copied as uint64 words,
    the transposition is about three times faster than value by value.
    """
    if view.flags.c_contiguous or not source.flags.c_contiguous or view.size == 0:
        return np.ascontiguousarray(view)
    shape = [n for n in view.shape if n != 1]
    strides = [s for n, s in zip(view.shape, view.strides) if n != 1]
    run = view.itemsize
    while shape and strides[-1] == run:
        run *= shape.pop()
        strides.pop()
    width = next((w for w in (8, 4, 2) if run % w == 0), 1)
    offset = view.ctypes.data - source.ctypes.data
    if width <= view.itemsize or offset % width or any(s % width for s in strides):
        return np.ascontiguousarray(view)
    flat = source.reshape(-1).view(np.uint8)
    words = flat[offset:offset + (flat.size - offset) // width * width].view(f"u{width}")
    wide = np.lib.stride_tricks.as_strided(words, shape + [run // width],
                                           strides + [width], writeable=False)
    return np.ascontiguousarray(wide).view(view.dtype).reshape(view.shape)


def storage_dtype(bits: int, signed: bool) -> np.dtype:
    """The smallest numpy integer dtype that holds `bits`-wide values."""
    size = next(s for s in (8, 16, 32, 64) if bits <= s)
    return np.dtype(f"{'int' if signed else 'uint'}{size}")


def narrowed(tensor: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`tensor` (whose values fit `dtype`) as `dtype`, without a copy where possible.

    The low bytes of a fitting two's complement integer are its narrow value, so a contiguous
    wide tensor is viewed rather than converted: the layout's transposing copy is then the one
    pass over the data.
    """
    wide = tensor.dtype.itemsize
    if tensor.dtype.kind not in "iu" or wide <= dtype.itemsize or \
            not tensor.flags.c_contiguous or tensor.dtype.byteorder not in "=|":
        return tensor.astype(dtype, copy=False)
    parts = tensor.view(dtype).reshape(tensor.shape + (wide // dtype.itemsize,))
    return parts[..., 0] if sys.byteorder == "little" else parts[..., -1]


def check_fits(tensor: np.ndarray, bits: int, signed: bool, name: str,
               saturating: bool = False) -> np.ndarray:
    """The tensor itself if every value fits `bits`, clamped if `saturating`, else UserError.

    >>> check_fits(np.array([3, 200]), 8, True, "w")
    Traceback (most recent call last):
    fpgacnn.errors.UserError: tensor w: value 200 at index (1,) does not fit 8-bit signed ...
    """
    if tensor.dtype.kind not in "iub":
        raise UserError(f"tensor {name}: values must be integers, not {tensor.dtype}")
    if tensor.size == 0:
        return tensor
    lo, hi = int_range(bits, signed)
    if tensor.dtype.kind in "iu":
        dtype_range = np.iinfo(tensor.dtype)
        if dtype_range.min >= lo and dtype_range.max <= hi:
            return tensor  # every value of the dtype fits
    if int(tensor.min()) >= lo and int(tensor.max()) <= hi:
        return tensor
    if saturating:
        return saturate(tensor, bits, signed).astype(np.int64)
    flat = int(np.flatnonzero((tensor < lo) | (tensor > hi))[0])
    index = tuple(int(i) for i in np.unravel_index(flat, tensor.shape))
    kind = "signed" if signed else "unsigned"
    raise UserError(f"tensor {name}: value {int(tensor.flat[flat])} at index {index} does not "
                    f"fit {bits}-bit {kind} [{lo}, {hi}] (use --saturate to clamp)")
