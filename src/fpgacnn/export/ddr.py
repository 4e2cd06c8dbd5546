"""The DDR image of a whole network: every parameter and feature map in one little-endian image,
laid out as the engine reads it (docs/export.md, "The DDR image convention").

>>> image, ddr_map = build_ddr_image(qmodel, HardwareConfig(), input_int=x)
>>> ddr_map.read_tensor(image, "fmap.conv1").shape
(1, 16, 28, 28)
"""

import io
from dataclasses import replace
from math import ceil, prod

import numpy as np

from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.export.ddrmap import DdrMap, Region
from fpgacnn.export.layoutfile import LayoutFile, default_layouts
from fpgacnn.export.params import layer_params, linear_as_conv_input
from fpgacnn.export.words import WordGeometry
from fpgacnn.ir import ops

CHANNEL_BLOCKED = "n (cb l) h w -> (n cb h w) l"


def tensor_shapes(qmodel) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor of `qmodel` at batch 1."""
    shapes = {name: (1,) + tuple(s[1:]) for name, s in qmodel.input_shapes.items()}
    for layer in qmodel.layers:
        shapes[layer.name] = tuple(int(d) for d in
                                   layer.op.output_shape([shapes[t] for t in layer.inputs]))
    return shapes


def fmap_tensors(qmodel) -> list[str]:
    return list(qmodel.input_shapes) + [layer.name for layer in qmodel.layers]


class _Planner:
    """Assigns regions one after the other, each at a multiple of one burst."""

    def __init__(self, qmodel, config: HardwareConfig, layout_file: LayoutFile | None):
        self.qmodel = qmodel
        self.layout_file = layout_file or LayoutFile("(none)", {}, {}, {})
        self.defaults = default_layouts(config)
        self.alignment = config.ddr_width_bits // 8 * config.burst_len
        self.shapes = tensor_shapes(qmodel)
        self.max_kernel = config.max_kernel
        self.regions: list[Region] = []
        self.cursor = 0

    def add(self, name, kind, tensor, shape, layout, groups=1) -> Region:
        group_shape = shape + (1, 1) if len(shape) == 2 and kind == "fmap" else shape
        if groups > 1:
            group_shape = (group_shape[0] // groups,) + group_shape[1:]
        rows, lanes = layout.rows_shape(group_shape)
        size = rows * groups * WordGeometry.of(layout, lanes).word_bytes
        region = Region(name, kind, tensor, self.cursor, size, rows * groups, shape, layout,
                        groups)
        self.regions.append(region)
        self.cursor += ceil(size / self.alignment) * self.alignment
        return region

    def fmap_layout(self, tensor: str):
        producer = tensor if tensor not in self.qmodel.input_shapes else None
        layout = self.layout_file.layout_for(producer or tensor, "fmap", self.defaults)
        fmt = self.qmodel.format_of(tensor)
        if fmt.bits > layout.bits:
            raise UserError(f"tensor {tensor}: values are {fmt.bits}-bit, the feature-map layout "
                            f"holds {layout.bits} bits (raise act_bits or choose a layout)")
        return replace(layout, signed=fmt.signed)

    def add_params(self) -> None:
        for layer in self.qmodel.layers:
            channels = self.shapes[layer.name][1]
            for field, kind, array, bits in layer_params(layer, channels,
                                                         self.fc_weight_shape(layer)):
                layout = self.layout_file.layout_for(layer.name, kind, self.defaults)
                if bits is not None:
                    layout = replace(layout, bits=bits, signed=True)
                if field == "weight" and (layer.weight_bits or 0) > layout.bits:
                    raise UserError(f"layer {layer.name}: weights are {layer.weight_bits}-bit, "
                                    f"the weight layout holds {layout.bits} bits")
                groups = layer.op.groups if isinstance(layer.op, ops.Conv2d) and \
                    field == "weight" else 1
                name = f"{layer.name}.{field}"
                self.add(name, kind, name, tuple(array.shape), layout, groups)

    def fc_weight_shape(self, layer):
        """(O, C, H, W) for an FC layer the engine runs as a convolution over a flattened map."""
        conv_input = linear_as_conv_input(self.qmodel, layer, self.max_kernel)
        return None if conv_input is None else (layer.op.out_features,) + conv_input

    def add_fmaps(self) -> None:
        aliases, slices = self.concat_placement()
        roots = {}
        for t in fmap_tensors(self.qmodel):
            if t not in aliases:
                roots[t] = self.add(f"fmap.{t}", "fmap", t, self.shapes[t], self.fmap_layout(t))
        for t, (root, block) in aliases.items():
            self.regions.append(self.view(f"fmap.{t}", t, roots[root], block, False))
        for name, t, root, block, requantize in slices:
            self.regions.append(self.view(name, t, roots[root], block, requantize))

    def concat_placement(self):
        """Where concat inputs live: {tensor: (root tensor, channel block)} for inputs stored
        inside a concat's region, and the slice of every concat input."""
        aliases, slices = {}, []
        for layer in reversed(self.qmodel.layers):
            if not isinstance(layer.op, ops.Concat) or layer.op.axis != 1:
                continue
            layout = self.fmap_layout(layer.name)
            if layout.pattern != CHANNEL_BLOCKED:
                raise UserError(f"concat {layer.name}: its inputs are placed by channel block, "
                                f"which needs the feature-map layout {CHANNEL_BLOCKED!r}")
            lanes = layout.sizes["l"]
            root, block = aliases.get(layer.name, (layer.name, 0))
            requants = layer.input_requants or (None,) * len(layer.inputs)
            for k, t in enumerate(layer.inputs):
                channels = self.shapes[t][1]
                if k < len(layer.inputs) - 1 and channels % lanes:
                    raise UserError(f"concat {layer.name}: input {t} has {channels} channels, "
                                    f"not a multiple of tn={lanes}, so the next input cannot "
                                    f"start on a channel block")
                slices.append((f"fmap.{layer.name}.in{k}", t, root, block,
                               requants[k] is not None))
                if requants[k] is None and t not in aliases and \
                        self.fmap_layout(t) == layout:
                    aliases[t] = (root, block)
                block += ceil(channels / lanes)
        return aliases, slices

    def view(self, name, tensor, root: Region, block: int, requantize: bool) -> Region:
        shape = self.shapes[tensor]
        plane = prod(root.group_shape[2:])
        word_bytes = root.geometry.word_bytes
        lanes = root.layout.sizes["l"]
        rows = ceil(shape[1] / lanes) * plane
        return Region(name, "fmap", tensor, root.offset + block * plane * word_bytes,
                      rows * word_bytes, rows, shape, self.fmap_layout(tensor), 1, root.name,
                      block * lanes, requantize)


def plan_ddr(qmodel, config: HardwareConfig = HardwareConfig(),
             layout_file: LayoutFile | None = None) -> DdrMap:
    """The address map: parameters (layer by layer), then feature maps; see docs/export.md."""
    planner = _Planner(qmodel, config, layout_file)
    planner.add_params()
    planner.add_fmaps()
    return DdrMap(planner.cursor, planner.alignment, tuple(planner.regions))


def param_arrays(qmodel, ddr_map: DdrMap):
    """(region, int array) of every parameter region."""
    shapes = tensor_shapes(qmodel)
    for layer in qmodel.layers:
        for field, _, array, _ in layer_params(layer, shapes[layer.name][1]):
            region = ddr_map.region(f"{layer.name}.{field}")
            yield region, array.reshape(region.shape)


def region_writes(qmodel, ddr_map: DdrMap, fmaps: dict | None = None, progress=None):
    """(offset, bytes) of every parameter region and of the feature maps given in `fmaps`
    ({tensor name: int array at batch 1}); the rest of the image is zero."""
    for region, array in param_arrays(qmodel, ddr_map):
        yield region.offset, region.encode(array)
        if progress:
            progress.update(1)
    for tensor, value in (fmaps or {}).items():
        region = ddr_map.region(f"fmap.{tensor}")
        yield region.offset, region.encode(value)


def batch_one(qmodel, input_int) -> dict:
    """The graph inputs at batch 1 (the first sample) by name."""
    if input_int is None:
        return {}
    if not isinstance(input_int, dict):
        if len(qmodel.input_shapes) != 1:
            raise UserError(f"{qmodel.name}: has inputs {list(qmodel.input_shapes)}; give a "
                            f"dict by input name")
        input_int = {next(iter(qmodel.input_shapes)): input_int}
    return {name: np.asarray(x)[:1] for name, x in input_int.items()}


def build_ddr_image(qmodel, config: HardwareConfig = HardwareConfig(), input_int=None,
                    layout_file: LayoutFile | None = None,
                    fmaps: dict | None = None) -> tuple[bytes, DdrMap]:
    """(image bytes, DdrMap) of `qmodel`: parameters, the input (first sample of `input_int`,
    if given) and any other feature maps in `fmaps`; other feature-map regions are zero."""
    ddr_map = plan_ddr(qmodel, config, layout_file)
    image = bytearray(ddr_map.size)
    for offset, data in region_writes(qmodel, ddr_map, batch_one(qmodel, input_int) |
                                      (fmaps or {})):
        image[offset:offset + len(data)] = memoryview(data)
    return bytes(image), ddr_map


def write_ddr_image(f, qmodel, ddr_map: DdrMap, input_int=None, progress=None) -> None:
    """Stream the image to the binary file `f` region by region (the gaps stay zero)."""
    for offset, data in region_writes(qmodel, ddr_map, batch_one(qmodel, input_int), progress):
        write_at(f, offset, data)
    finish_image(f, ddr_map.size)


def write_at(f, offset: int, data) -> None:
    f.seek(offset)
    f.write(data)


def finish_image(f, size: int) -> None:
    """Extend the file `f` with zeros to `size` bytes."""
    if isinstance(f, io.BytesIO):
        f.seek(0, io.SEEK_END)
        f.write(bytes(size - f.tell()))
    else:
        f.truncate(size)
