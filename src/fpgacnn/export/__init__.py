"""Memory images: layouts, .coe/.mem/.mif/.bin/.h/.npy writers and readers, the DDR image.

>>> from fpgacnn.export import Layout, FileOptions, write_tensor, read_tensor
"""

from fpgacnn.export.formats import FORMATS, FileOptions
from fpgacnn.export.layout import Layout
from fpgacnn.export.tensorio import read_rows, read_tensor, write_rows, write_tensor

__all__ = ["FORMATS", "FileOptions", "Layout", "read_rows", "read_tensor", "write_rows",
           "write_tensor"]
