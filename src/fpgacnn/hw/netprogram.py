"""A compiled network: the steps the runtime executes and the DDR image they run on.

A `Step` runs on one unit: `engine` (a conv/FC layer, maybe with its fused max-pool), `vector`
(the vector unit: pools, adds, upsample, activations, requantizing concat copies), `host` (the
runtime runs the golden definition of softmax/LRN/YOLO head or a flatten copy on the image) or
`address` (a concat whose inputs were written into its region by their producers: nothing
runs). The files `fpgacnn compile` writes are `Program.save`'s: `ddr.bin`, `ddr_map.json`,
`program.json` (docs/compiler.md).
"""

import json
from dataclasses import dataclass, field, replace
from math import ceil
from pathlib import Path

from fpgacnn.atomic import atomic_open
from fpgacnn.export.ddr import batch_one
from fpgacnn.export.ddrmap import DdrMap, Region
from fpgacnn.export.layout import Layout

PROGRAM_FORMAT = "fpgacnn-program-1"
UNITS = ("engine", "vector", "host", "address")
BYTES = Layout("b -> b", bits=8, signed=False)


@dataclass(frozen=True)
class Step:
    unit: str                       # one of UNITS
    layers: tuple[str, ...]         # the QLayers it computes (conv + fused pool: two)
    output: str | None              # the tensor it completes (compared with golden), if any
    descriptor: int | None = None   # byte address of its descriptor (engine, vector)
    concat_input: int | None = None  # vector copy of this input of a concat

    @property
    def name(self) -> str:
        suffix = "" if self.concat_input is None else f".in{self.concat_input}"
        return "+".join(self.layers) + suffix

    def to_json(self) -> dict:
        entry = {"unit": self.unit, "layers": list(self.layers), "output": self.output}
        if self.descriptor is not None:
            entry["descriptor"] = self.descriptor
        if self.concat_input is not None:
            entry["concat_input"] = self.concat_input
        return entry


@dataclass(frozen=True, eq=False)
class Program:
    """Steps in execution order, and the image (input region zero) with its address map."""

    qmodel: object                  # fpgacnn.quant.model.QModel: host steps run its layers
    steps: tuple[Step, ...]
    ddr_map: DdrMap
    image: bytes
    top: str                        # "engine" (engine only) or "accelerator" (engine + vector)

    def image_with_input(self, x_int) -> bytearray:
        """The image with the first sample of `x_int` in the graph input's region."""
        image = bytearray(self.image)
        for name, value in batch_one(self.qmodel, x_int).items():
            self.ddr_map.write_tensor(image, f"fmap.{name}", value)
        return image

    def to_json(self) -> dict:
        return {"format": PROGRAM_FORMAT, "model": self.qmodel.name, "top": self.top,
                "inputs": list(self.qmodel.input_shapes), "outputs": list(self.qmodel.outputs),
                "steps": [s.to_json() for s in self.steps]}

    def save(self, out_dir, x_int=None) -> None:
        """ddr.bin (with the input when given), ddr_map.json and program.json in `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        image = self.image if x_int is None else self.image_with_input(x_int)
        with atomic_open(out / "ddr.bin", "wb") as f:
            f.write(image)
        self.ddr_map.save(out / "ddr_map.json")
        with atomic_open(out / "program.json") as f:
            json.dump(self.to_json(), f, indent=1)
            f.write("\n")


@dataclass
class ImageBuilder:
    """The exporter's image and map, grown by byte regions the hardware reads (descriptors,
    vector-unit parameter records), each at a multiple of the map's alignment."""

    ddr_map: DdrMap
    image: bytearray
    regions: list = field(default_factory=list)

    def add(self, name: str, kind: str, blob: bytes) -> int:
        offset = ceil(len(self.image) / self.ddr_map.alignment) * self.ddr_map.alignment
        self.image.extend(bytes(offset - len(self.image)))
        self.image.extend(blob)
        self.regions.append(Region(name, kind, name, offset, len(blob), len(blob),
                                   (len(blob),), BYTES))
        return offset

    def finish(self) -> tuple[DdrMap, bytes]:
        size = ceil(len(self.image) / self.ddr_map.alignment) * self.ddr_map.alignment
        self.image.extend(bytes(size - len(self.image)))
        ddr_map = replace(self.ddr_map.with_regions(self.ddr_map.regions + tuple(self.regions)),
                          size=size)
        return ddr_map, bytes(self.image)
