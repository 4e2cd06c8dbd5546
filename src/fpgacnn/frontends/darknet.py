"""Darknet frontend: a `.cfg` network description and an optional `.weights` file.

Layer indices count every section after `[net]` from 0, as Darknet does; node names carry
them: `layer8_conv`, `layer8_bn`, `layer8_leaky`, `layer19_upsample`, `layer20_route`. A
layer's output is the tensor of its last node, so after BatchNorm folding and activation
fusion a convolutional layer is the single node `layerN_conv`.

Without a weights file every convolutional/connected layer gets seeded random weights of a
sensible scale (He normal) and random BatchNorm statistics.
"""

from pathlib import Path

from fpgacnn.errors import UserError
from fpgacnn.frontends._build import GraphBuilder, unsupported
from fpgacnn.frontends._darknet_weights import RandomWeights, WeightsFile
from fpgacnn.ir import Graph, ops

ACTIVATIONS = {
    "linear": None,
    "leaky": ops.LeakyReLU(0.1),
    "relu": ops.ReLU(),
    "relu6": ops.Clip(0.0, 6.0),
    "hardtan": ops.Clip(-1.0, 1.0),
}
SECTIONS = ("convolutional", "maxpool", "avgpool", "route", "upsample", "shortcut", "yolo",
            "connected", "dropout", "softmax")


def from_darknet(cfg_path, weights_path=None, input_shape=None) -> Graph:
    """The graph IR of a Darknet network; `input_shape` (N, C, H, W) overrides `[net]`.

    >>> g = from_darknet("yolov3-tiny.cfg")
    >>> g.outputs, g.shapes["layer16_yolo"]
    (('layer16_yolo', 'layer23_yolo'), (1, 255, 13, 13))
    """
    cfg_path = Path(cfg_path)
    sections = parse_cfg(cfg_path)
    if not sections or sections[0][0] not in ("net", "network"):
        raise UserError(f"{cfg_path}: the first section must be [net]")
    shape = _input_shape(cfg_path, sections[0][1], input_shape)
    weights = WeightsFile(weights_path) if weights_path is not None else RandomWeights(seed=0)
    network = _Network(cfg_path.stem, shape, weights)
    for index, (kind, options) in enumerate(sections[1:]):
        network.add_layer(index, kind, _Options(f"{cfg_path.name}: layer {index} [{kind}]",
                                                options))
    weights.finish()
    return network.build()


def parse_cfg(path: Path) -> list[tuple[str, dict[str, str]]]:
    """The sections of a .cfg file in order, each (name, {key: value})."""
    sections = []
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#")[0].split(";")[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise UserError(f"{path}:{number}: section header {line!r} lacks ']'")
            sections.append((line[1:-1].strip().lower(), {}))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1][1][key.strip()] = value.strip()
        else:
            raise UserError(f"{path}:{number}: expected [section] or key=value, got {line!r}")
    return sections


def _input_shape(cfg_path, net, override) -> tuple[int, int, int, int]:
    if override is not None:
        if len(override) != 4:
            raise UserError(f"{cfg_path}: input shape must be N,C,H,W, got {tuple(override)}")
        return tuple(int(d) for d in override)
    opts = _Options(f"{cfg_path.name}: [net]", net)
    # batch=64 in a training cfg is not the inference batch: Darknet itself runs 1
    return (1, opts.int("channels", 3), opts.int("height", 416), opts.int("width", 416))


class _Options:
    """The key=value options of one section, read with the types and defaults Darknet uses."""

    def __init__(self, where: str, options: dict[str, str]):
        self.where = where
        self.options = options

    def int(self, key, default=None) -> int:
        return int(self._number(key, default))

    def float(self, key, default=None) -> float:
        return float(self._number(key, default))

    def ints(self, key) -> list[int]:
        try:
            return [int(v) for v in self.options[key].split(",") if v.strip()]
        except KeyError:
            raise UserError(f"{self.where}: field {key!r} is missing") from None
        except ValueError:
            raise UserError(f"{self.where}: field {key!r}={self.options[key]!r} is not a "
                            f"list of integers") from None

    def str(self, key, default) -> str:
        return self.options.get(key, default).strip().lower()

    def _number(self, key, default):
        if key not in self.options:
            if default is None:
                raise UserError(f"{self.where}: field {key!r} is missing")
            return default
        try:
            return float(self.options[key])
        except ValueError:
            raise UserError(f"{self.where}: field {key!r}={self.options[key]!r} is not a "
                            f"number") from None

    def error(self, message: str) -> UserError:
        return UserError(f"{self.where}: {message}")


class _Network:
    def __init__(self, name, input_shape, weights):
        self.builder = GraphBuilder(name, {"input": input_shape})
        self.shapes = self.builder.shapes
        self.weights = weights
        self.layers: list[str] = []  # output tensor of each layer, by Darknet index
        self.yolo: list[str] = []

    def add_layer(self, index, kind, opts):
        if kind not in SECTIONS:
            raise unsupported(self.builder.name, f"layer{index}", f"[{kind}]",
                              [f"[{s}]" for s in SECTIONS])
        x = self.layers[-1] if self.layers else "input"
        self.layers.append(getattr(self, f"_{kind}")(f"layer{index}", index, x, opts))

    def build(self) -> Graph:
        outputs = self.yolo or self.layers[-1:]
        return self.builder.build(outputs)

    def add(self, name, op, inputs, params=None) -> str:
        return self.builder.add(name, op, inputs, params)

    def _activate(self, prefix, x, opts):
        act = opts.str("activation", "logistic")
        if act not in ACTIVATIONS:
            raise unsupported(self.builder.name, prefix, f"activation={act}", ACTIVATIONS)
        return x if ACTIVATIONS[act] is None else self.add(f"{prefix}_{act}", ACTIVATIONS[act],
                                                          [x])

    def _convolutional(self, prefix, index, x, opts):
        c = self.shapes[x][1]
        filters, size = opts.int("filters", 1), opts.int("size", 1)
        stride, groups = opts.int("stride", 1), opts.int("groups", 1)
        pad = size // 2 if opts.int("pad", 0) else opts.int("padding", 0)
        dilation = opts.int("dilation", 1)
        bn = bool(opts.int("batch_normalize", 0))
        if c % groups:
            raise opts.error(f"groups={groups} does not divide the {c} input channels")
        conv = ops.Conv2d(c, filters, size, stride, pad, dilation, groups, bias=not bn)
        read = self.weights.convolutional(opts.where, filters, (c // groups, size, size), bn)
        out = self.add(f"{prefix}_conv", conv, [x], read["layer"])
        if bn:
            out = self.add(f"{prefix}_bn", ops.BatchNorm(filters, 1e-5), [out], read["bn"])
        return self._activate(prefix, out, opts)

    def _connected(self, prefix, index, x, opts):
        if len(self.shapes[x]) == 4:
            x = self.add(f"{prefix}_flatten", ops.Flatten(), [x])
        inputs, outputs = self.shapes[x][1], opts.int("output", 1)
        bn = bool(opts.int("batch_normalize", 0))
        read = self.weights.connected(opts.where, outputs, inputs, bn)
        out = self.add(f"{prefix}_connected", ops.Linear(inputs, outputs, bias=not bn), [x],
                       read["layer"])
        if bn:
            out = self.add(f"{prefix}_bn", ops.BatchNorm(outputs, 1e-5), [out], read["bn"])
        return self._activate(prefix, out, opts)

    def _maxpool(self, prefix, index, x, opts):
        stride = opts.int("stride", 1)
        size = opts.int("size", stride)
        pad = opts.int("padding", size - 1)  # Darknet: top/left get pad // 2, the rest after
        pads = (pad // 2, pad // 2, pad - pad // 2, pad - pad // 2)
        return self.add(f"{prefix}_maxpool", ops.MaxPool(size, stride, pads), [x])

    def _avgpool(self, prefix, index, x, opts):
        return self.add(f"{prefix}_avgpool", ops.GlobalAvgPool(), [x])

    def _route(self, prefix, index, x, opts):
        if opts.int("groups", 1) != 1:
            raise opts.error("route with groups/group_id is not supported")
        sources = []
        for ref in opts.ints("layers"):
            at = index + ref if ref < 0 else ref
            if not 0 <= at < index:
                raise opts.error(f"layers={ref} refers to layer {at}, which is not before it")
            sources.append(self.layers[at])
        op = ops.Identity() if len(sources) == 1 else ops.Concat(1)
        return self.add(f"{prefix}_route", op, sources)

    def _upsample(self, prefix, index, x, opts):
        stride = opts.int("stride", 2)
        if stride < 1 or opts.float("scale", 1.0) != 1.0:
            raise opts.error(f"only upsampling by a positive integer stride is supported "
                             f"(stride={stride})")
        return self.add(f"{prefix}_upsample", ops.Upsample(stride), [x])

    def _shortcut(self, prefix, index, x, opts):
        ref = opts.ints("from")
        if len(ref) != 1:
            raise opts.error("shortcut from several layers is not supported")
        at = index + ref[0] if ref[0] < 0 else ref[0]
        if not 0 <= at < index:
            raise opts.error(f"from={ref[0]} refers to layer {at}, which is not before it")
        if self.shapes[x] != self.shapes[self.layers[at]]:
            raise opts.error(f"shortcut of shapes {self.shapes[x]} and "
                             f"{self.shapes[self.layers[at]]} is not supported (equal only)")
        out = self.add(f"{prefix}_shortcut", ops.Add(), [x, self.layers[at]])
        return self._activate(prefix, out, _Options(opts.where, {"activation": "linear"}
                                                    | opts.options))

    def _yolo(self, prefix, index, x, opts):
        anchors = [float(v) for v in opts.options.get("anchors", "").split(",") if v.strip()]
        anchors = [int(a) if a == int(a) else a for a in anchors]
        pairs = tuple(zip(anchors[0::2], anchors[1::2]))
        mask = tuple(opts.ints("mask")) if "mask" in opts.options else tuple(range(len(pairs)))
        if any(not 0 <= m < len(pairs) for m in mask):
            raise opts.error(f"mask {mask} refers to anchors beyond the {len(pairs)} given")
        op = ops.YoloHead(pairs, mask, opts.int("classes", 20))
        out = self.add(f"{prefix}_yolo", op, [x])
        self.yolo.append(out)
        return out

    def _dropout(self, prefix, index, x, opts):
        return self.add(f"{prefix}_dropout", ops.Dropout(), [x])

    def _softmax(self, prefix, index, x, opts):
        if opts.int("groups", 1) != 1:
            raise opts.error("softmax with groups is not supported")
        return self.add(f"{prefix}_softmax", ops.Softmax(1), [x])

