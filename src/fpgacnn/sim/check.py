"""Run a quantized model's conv/FC layers on the simulated engine and compare with the golden model.

The DDR image is the exporter's (`fpgacnn.export.ddr.build_ddr_image`: weights and feature maps
in the shared convention), followed by what only the engine reads: each layer's parameter
record (`fpgacnn.hw.program.pack_params`) and its descriptor (`compile_layer`). Each layer is
one run: `start(descriptor address)`, wait, then its output region is decoded with the
exporter's layout and compared, element by element, with the golden model's output.

>>> results = simulate(qmodel, x_int, HardwareConfig())      # doctest: +SKIP
>>> [(r.name, r.cycles, r.mismatches) for r in results]      # doctest: +SKIP
[('fc1', 1283, 0)]
"""

from dataclasses import dataclass
from math import ceil

import numpy as np

from fpgacnn.errors import UserError
from fpgacnn.ir import ops

ENGINE_OPS = (ops.Conv2d, ops.Linear)


@dataclass(frozen=True)
class LayerResult:
    name: str
    cycles: int
    mismatches: int
    elements: int
    planned_cycles: int
    seconds: float = 0.0            # wall-clock time of the simulation

    def to_dict(self):
        return {"name": self.name, "cycles": self.cycles, "mismatches": self.mismatches,
                "elements": self.elements, "planned_cycles": self.planned_cycles}


@dataclass(frozen=True)
class EngineImage:
    image: bytes
    ddr_map: object                 # fpgacnn.export.ddrmap.DdrMap
    descriptors: dict               # layer name -> byte offset of its descriptor


def engine_layers(qmodel):
    """The layers the engine runs, refusing a model with any other layer."""
    for layer in qmodel.layers:
        if not isinstance(layer.op, ENGINE_OPS):
            raise UserError(f"layer {layer.name!r}: {type(layer.op).__name__} does not run on "
                            f"the engine (it runs Conv2d and Linear layers)")
    return list(qmodel.layers)


def build_engine_image(qmodel, config, x_int):
    """The exporter's image of `qmodel` with input `x_int`, plus parameters and descriptors."""
    from fpgacnn.export.ddr import build_ddr_image, tensor_shapes
    from fpgacnn.hw.program import compile_layer, pack_params

    image, ddr_map = build_ddr_image(qmodel, config, input_int=x_int)
    image = bytearray(image)
    shapes = tensor_shapes(qmodel)

    def append(blob):
        offset = ceil(len(image) / ddr_map.alignment) * ddr_map.alignment
        image.extend(bytes(offset - len(image)))
        image.extend(blob)
        return offset

    params = {layer.name: append(pack_params(layer, config)) for layer in engine_layers(qmodel)}
    descriptors = {}
    for layer in qmodel.layers:
        source = layer.inputs[0]
        addresses = {"input": ddr_map.region(f"fmap.{source}").offset,
                     "output": ddr_map.region(f"fmap.{layer.name}").offset,
                     "weight": ddr_map.region(f"{layer.name}.weight").offset,
                     "params": params[layer.name]}
        descriptor = compile_layer(layer, config, addresses, input_shape=_nchw(shapes[source]),
                                   input_format=qmodel.format_of(source),
                                   rounding=qmodel.rounding)
        descriptors[layer.name] = append(descriptor.to_bytes())
    pad = ceil(len(image) / ddr_map.alignment) * ddr_map.alignment - len(image)
    return EngineImage(bytes(image) + bytes(pad), ddr_map, descriptors)


def _nchw(shape):
    return tuple(shape) + (1, 1) if len(shape) == 2 else tuple(shape)


def planned_cycles(qmodel, config, layer):
    """The planner's cycle prediction for `layer` on the engine of `config`."""
    from fpgacnn.export.ddr import tensor_shapes
    from fpgacnn.plan.engine import Memory, layer_cycles
    from fpgacnn.plan.workload import layer_from_op

    shape = tensor_shapes(qmodel)[layer.inputs[0]]
    planned = layer_from_op(layer.name, layer.op, shape)
    cycles, _ = layer_cycles(planned, Memory.of(config), config.tm, config.tn, config.tr,
                             config.tc)
    return int(cycles)


def simulate(qmodel, x_int, config, device=None, max_cycles=None, progress=None):
    """Run every layer of `qmodel` on the engine; a LayerResult per layer, in order."""
    from fpgacnn.golden import run as golden_run

    layers = engine_layers(qmodel)
    x_int = np.asarray(x_int)[:1]
    expected = golden_run(qmodel, x_int, keep=True)
    engine_image = build_engine_image(qmodel, config, x_int)
    device = device or engine_device(config)
    device.load(engine_image.image)
    results = []
    for layer in layers:
        device.start(engine_image.descriptors[layer.name])
        run = device.wait(max_cycles) if max_cycles else device.wait()
        got = engine_image.ddr_map.read_tensor(device.memory, f"fmap.{layer.name}")
        want = expected[layer.name][:1]
        mismatches = int(np.count_nonzero(got.reshape(want.shape) != want))
        results.append(LayerResult(layer.name, run.cycles, mismatches, int(want.size),
                                   planned_cycles(qmodel, config, layer), run.seconds))
        if progress:
            progress(layer.name)
    return results


def engine_device(config):
    """A SimulatedDevice running the engine of `config` (built, or taken from the cache)."""
    from fpgacnn.sim.runtime import SimulatedDevice

    try:
        from fpgacnn.hw.verilog import engine_top
        top = engine_top(config)
    except ImportError:
        raise UserError("sim: the engine (fpgacnn.hw.engine) is not part of this version") \
            from None
    return SimulatedDevice(top, config)
