"""The address map of a DDR image (`ddr_map.json`) and access to its regions.

>>> ddr_map = DdrMap.load("out/ddr_map.json")
>>> image = Path("out/ddr.bin").read_bytes()
>>> ddr_map.read_tensor(image, "fmap.conv1").shape
(1, 16, 28, 28)
"""

import json
from dataclasses import dataclass, field, replace

import numpy as np

from fpgacnn.atomic import atomic_open
from fpgacnn.errors import UserError
from fpgacnn.export.layout import Layout
from fpgacnn.export.words import WordGeometry, from_bytes, to_bytes

MAP_FORMAT = "fpgacnn-ddr-1"


@dataclass(frozen=True)
class Region:
    """One named byte range of the image holding a tensor in `layout` (little-endian words).

    `groups` > 1: a grouped conv's weight, laid out group after group. `parent`: the region
    this one lies inside (a concat input inside the concat's region), at `channel_offset`.
    """

    name: str
    kind: str
    tensor: str
    offset: int
    size: int
    rows: int
    shape: tuple[int, ...]
    layout: Layout
    groups: int = 1
    parent: str | None = None
    channel_offset: int = 0
    requantize: bool = False

    @property
    def geometry(self) -> WordGeometry:
        return WordGeometry.of(self.layout, self.layout.rows_shape(self.group_shape)[1])

    @property
    def group_shape(self) -> tuple[int, ...]:
        """The shape one group of the tensor has in the layout (4-D for weights and fmaps)."""
        shape = self.shape + (1, 1) if len(self.shape) == 2 and self.kind == "fmap" \
            else self.shape
        if self.groups > 1:
            shape = (shape[0] // self.groups,) + shape[1:]
        return shape

    def rows_of(self, tensor, saturating: bool = False) -> np.ndarray:
        """The (rows, lanes) values of `tensor` (of `shape`) in the region's layout."""
        tensor = np.asarray(tensor)
        if tuple(tensor.shape) != self.shape:
            raise UserError(f"region {self.name}: tensor has shape {tuple(tensor.shape)}, the "
                            f"region holds {self.shape}")
        if self.groups == 1:
            return self.layout.rows(tensor.reshape(self.group_shape), self.tensor, saturating)
        parts = tensor.reshape((self.groups, -1) + self.group_shape[1:])
        return np.concatenate([self.layout.rows(p, self.tensor, saturating) for p in parts])

    def encode(self, tensor, saturating: bool = False) -> np.ndarray:
        """The region's bytes for `tensor` (of `shape`), a flat uint8 array."""
        return to_bytes(self.rows_of(tensor, saturating), self.geometry, "little")

    def decode(self, data: bytes) -> np.ndarray:
        """The tensor (int64, `shape`) from the region's bytes."""
        rows = from_bytes(bytes(data), self.geometry, "little", self.name)
        parts = np.split(rows, self.groups)
        tensor = np.concatenate([self.layout.unrows(p, self.group_shape) for p in parts])
        return tensor.reshape(self.shape)

    def to_json(self) -> dict:
        g = self.geometry
        entry = {"name": self.name, "kind": self.kind, "tensor": self.tensor,
                 "offset": self.offset, "size": self.size, "rows": self.rows,
                 "word_bits": g.word_bits, "word_bytes": g.word_bytes, "lanes": g.lanes,
                 "shape": list(self.shape), "groups": self.groups,
                 "layout": self.layout.describe()}
        if self.parent:
            entry |= {"parent": self.parent, "channel_offset": self.channel_offset,
                      "requantize": self.requantize}
        return entry

    @classmethod
    def from_json(cls, entry: dict) -> "Region":
        layout = Layout(**entry["layout"])
        return cls(entry["name"], entry["kind"], entry["tensor"], entry["offset"],
                   entry["size"], entry["rows"], tuple(entry["shape"]), layout,
                   entry.get("groups", 1), entry.get("parent"), entry.get("channel_offset", 0),
                   entry.get("requantize", False))


@dataclass(frozen=True)
class DdrMap:
    """Every region of a DDR image of `size` bytes; regions start at multiples of `alignment`."""

    size: int
    alignment: int
    regions: tuple[Region, ...]
    _by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "_by_name", {r.name: r for r in self.regions})

    def region(self, name: str) -> Region:
        if name not in self._by_name:
            raise UserError(f"DDR map: no region named {name!r}")
        return self._by_name[name]

    def read_tensor(self, image, name: str) -> np.ndarray:
        """The tensor stored in region `name` of `image` (int64, its logical shape)."""
        r = self.region(name)
        if len(image) < r.offset + r.size:
            raise UserError(f"DDR image of {len(image)} bytes ends before region {name} "
                            f"({r.offset}+{r.size})")
        return r.decode(memoryview(image)[r.offset:r.offset + r.size])

    def write_tensor(self, image, name: str, tensor, saturating: bool = False):
        """Store `tensor` in region `name`: in place for a bytearray, else a new bytes."""
        r = self.region(name)
        data = r.encode(tensor, saturating)
        target = image if isinstance(image, bytearray) else bytearray(image)
        target[r.offset:r.offset + r.size] = memoryview(data)
        return target if isinstance(image, bytearray) else bytes(target)

    def to_json(self) -> dict:
        return {"format": MAP_FORMAT, "size": self.size, "alignment": self.alignment,
                "regions": [r.to_json() for r in self.regions]}

    def save(self, path) -> None:
        with atomic_open(path) as f:
            json.dump(self.to_json(), f, indent=1)
            f.write("\n")

    @classmethod
    def load(cls, path) -> "DdrMap":
        try:
            data = json.loads(open(path).read())
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        if data.get("format") != MAP_FORMAT:
            raise UserError(f"{path}: not a {MAP_FORMAT} map")
        return cls(data["size"], data["alignment"],
                   tuple(Region.from_json(e) for e in data["regions"]))

    def with_regions(self, regions) -> "DdrMap":
        return replace(self, regions=tuple(regions))
