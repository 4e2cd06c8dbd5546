"""NumPy .npy: the rows as a (rows, lanes) array of the smallest integer dtype that holds them."""

import io

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.export.layout import storage_dtype

SUFFIX = ".npy"


def write(f, rows, g, options, title: str) -> None:
    np.save(f, rows.astype(storage_dtype(g.bits, g.signed), copy=False), allow_pickle=False)


def read(data: bytes, g, options, where: str) -> np.ndarray:
    try:
        rows = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        raise UserError(f"{where}: not a .npy file ({e})") from None
    if rows.ndim != 2 or rows.shape[1] != g.lanes or rows.dtype.kind not in "iu":
        raise UserError(f"{where}: expected an integer array of shape (rows, {g.lanes}), got "
                        f"{rows.dtype} {rows.shape}")
    return rows.astype(np.int64)
