"""Max pool of stored int8 tensors in C++ (`maxpool.cpp`, in the library of
`fpgacnn.golden.native`), its output rows split over the workers.

Each output is the max over its window clamped to the input, which equals the definition's
max over the padded window wherever every window holds an input element (the caller checks).
Where the library is not built, callers use their torch path.
"""

import ctypes

import torch

from fpgacnn.golden import native, workers
from fpgacnn.ir import ops

_i64 = ctypes.c_int64


class _Arguments(ctypes.Structure):
    """`MaxPoolArgs` of maxpool.cpp; strides count elements."""
    _fields_ = [("x", ctypes.c_void_p), ("y", ctypes.c_void_p),
                *((name, _i64) for name in (
                    "h", "w", "channels", "out_h", "out_w",
                    "kernel_h", "kernel_w", "stride_h", "stride_w", "top", "left",
                    "x_image", "x_row", "x_column", "y_image", "y_row", "y_column"))]


def available() -> bool:
    return native.built() is not None


def max_pool(x: torch.Tensor, op: ops.MaxPool, parts: int,
             kernel: str = "max_pool_rows") -> torch.Tensor:
    """The max pool of the stored (N, C, H, W) int8 tensor x (unit channel stride), as a new
    channels-last tensor; its N * OH output rows in `parts` calls shared by the workers
    (`workers.run_parts`), or in one on this thread. `kernel` "max_pool_rows_portable" runs
    the code of CPUs without AVX-512."""
    n, c, h, w = x.shape
    assert x.dtype == torch.int8 and (x.stride(1) == 1 or c == 1)
    _, _, oh, ow = op.output_shape([(n, c, h, w)])
    y = torch.empty((n, c, oh, ow), dtype=torch.int8, memory_format=torch.channels_last)
    (xn, _, xh, xw), (yn, _, yh, yw) = x.stride(), y.stride()
    args = _Arguments(x.data_ptr(), y.data_ptr(), h, w, c, oh, ow, *op.kernel, *op.stride,
                      *op.padding[:2], xn, xh, xw, yn, yh, yw)
    rows = n * oh
    if parts <= 1:
        native.part_function(kernel)(ctypes.byref(args), 0, rows)
    else:
        step = max(1, -(-rows // parts))
        workers.run_parts(native.part_function(kernel), ctypes.byref(args),
                          list(range(0, rows, step)) + [rows])
    return y
