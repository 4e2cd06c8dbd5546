"""Write one tensor to a memory file in a layout, and read it back.

>>> layout = Layout("(k j) (p i) x y -> (p k x y) (i j)", {"j": 2, "i": 16}, bits=16,
...                 msb_first=True)
>>> paths = write_tensor("weight_conv5.coe", w, layout, "coe", FileOptions(radix=2))
>>> np.array_equal(read_tensor("weight_conv5.coe", layout, w.shape, "coe",
...                            FileOptions(radix=2)), w)
True
"""

from pathlib import Path

import numpy as np

from fpgacnn.atomic import atomic_open
from fpgacnn.errors import UserError
from fpgacnn.export.formats import FileOptions, format_module
from fpgacnn.export.layout import Layout
from fpgacnn.export.words import WordGeometry


def bank_paths(path, n_rows: int, layout: Layout) -> list[Path]:
    """The file of each bank: `path` itself, or `stem_bank0.ext`, `stem_bank1.ext`, ... when
    the rows exceed `layout.bank_depth`."""
    path = Path(path)
    if not layout.bank_depth or n_rows <= layout.bank_depth:
        return [path]
    count = -(-n_rows // layout.bank_depth)
    return [path.with_name(f"{path.stem}_bank{k}{path.suffix}") for k in range(count)]


def write_rows(path, rows: np.ndarray, layout: Layout, fmt: str,
               options: FileOptions = FileOptions(), title: str = "tensor",
               digests=None) -> list[Path]:
    """Write (rows, lanes) values to `path` (or its banks) atomically; returns the paths.

    `digests` (an `export.digest.Digests`): hash each file from the bytes as they are written.
    """
    module = format_module(fmt)
    g = WordGeometry.of(layout, rows.shape[1])
    if len(rows) == 0:
        raise UserError(f"tensor {title}: nothing to write (0 rows)")
    paths = bank_paths(path, len(rows), layout)
    depth = layout.bank_depth or len(rows)
    for k, bank in enumerate(paths):
        part = rows[k * depth:(k + 1) * depth]
        bank_title = title if len(paths) == 1 else f"{title} bank {k}"
        with atomic_open(bank, "wb") as f:
            module.write(f if digests is None else digests.writer(f, bank), part, g, options,
                         bank_title)
    return paths


def write_tensor(path, tensor, layout: Layout, fmt: str, options: FileOptions = FileOptions(),
                 name: str = "tensor", saturating: bool = False) -> list[Path]:
    """Write `tensor` in `layout` to a file of format `fmt`; returns the paths written.

    A value that does not fit is a UserError naming `name`, the index and the value, unless
    `saturating`.
    """
    format_module(fmt)
    rows = layout.rows(tensor, name, saturating)
    return write_rows(path, rows, layout, fmt, options, name)


def read_rows(path, layout: Layout, lanes: int, fmt: str, options: FileOptions = FileOptions(),
              n_rows: int | None = None) -> np.ndarray:
    """The (rows, lanes) int64 values of a memory file, or of its banks when `path` itself
    does not exist and `stem_bank0.ext`... do."""
    module = format_module(fmt)
    g = WordGeometry.of(layout, lanes)
    path = Path(path)
    paths = [path]
    if not path.exists():
        paths = sorted(path.parent.glob(f"{path.stem}_bank*{path.suffix}"),
                       key=lambda p: int(p.stem.rsplit("_bank", 1)[1] or -1))
        if not paths:
            raise UserError(f"{path}: no such file")
    parts = [module.read(p.read_bytes(), g, options, str(p)) for p in paths]
    rows = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if n_rows is not None and len(rows) != n_rows:
        raise UserError(f"{path}: holds {len(rows)} words, the layout needs {n_rows}")
    return rows


def read_tensor(path, layout: Layout, shape, fmt: str,
                options: FileOptions = FileOptions()) -> np.ndarray:
    """The tensor of `shape` stored at `path` in `layout` (int64)."""
    n_rows, lanes = layout.rows_shape(shape)
    return layout.unrows(read_rows(path, layout, lanes, fmt, options, n_rows), shape)
