"""Run a quantized model on the simulated accelerator and compare with the golden model.

The model is compiled (`fpgacnn.hw.compiler.compile_network`) and run step by step by the
runtime (`fpgacnn.sim.network`); after each step the tensor it completes is decoded from the
device's memory with the exporter's layout and compared, element by element, with the golden
model's value. A fused conv + max-pool is one step, checked on the pool's output; a flatten the
FC layer reads through writes nothing and has no line.

>>> results = simulate(qmodel, x_int, HardwareConfig())      # doctest: +SKIP
>>> [(r.name, r.cycles, r.mismatches) for r in results]      # doctest: +SKIP
[('conv1', 2410, 0), ('conv2+pool1', 9120, 0), ('fc', 1283, 0)]
"""

from dataclasses import dataclass, replace

import numpy as np

from fpgacnn.errors import UserError


@dataclass(frozen=True)
class LayerResult:
    """One step of the program: its layers (joined by '+'), cycles and check against golden."""

    name: str
    cycles: int
    mismatches: int
    elements: int
    planned_cycles: int
    seconds: float = 0.0            # wall-clock time of the simulation
    unit: str = "engine"
    first_mismatch: tuple | None = None   # (N, C, H, W) index of the first wrong element

    def to_dict(self):
        entry = {"name": self.name, "unit": self.unit, "cycles": self.cycles,
                 "mismatches": self.mismatches, "elements": self.elements,
                 "planned_cycles": self.planned_cycles}
        if self.first_mismatch is not None:
            entry["first_mismatch"] = list(self.first_mismatch)
        return entry


def planned_layer(qmodel, config, step):
    """The planner's Layer (`plan.workload.Layer`) of an engine step, as the engine runs it."""
    from fpgacnn.export.ddr import tensor_shapes
    from fpgacnn.hw.compiler import engine_operands
    from fpgacnn.plan.workload import layer_from_op

    layer, source = engine_operands(qmodel, config, step)
    planned = layer_from_op(layer.name, layer.op, tensor_shapes(qmodel)[source])
    return replace(planned, pool=2) if len(step.layers) == 2 else planned


def planned_cycles(qmodel, config, step, program=None) -> int:
    """The planner's cycle prediction for a step: the engine's model for an engine step, the
    vector unit's (`plan.vector`, on the descriptor in `program`'s image) for a vector step,
    0 for host and address steps (they take no accelerator cycles)."""
    from fpgacnn.plan.engine import Memory, layer_cycles
    from fpgacnn.plan.vector import vector_cycles

    if step.unit == "vector":
        if program is None:
            raise ValueError(f"step {step.name}: a vector step's plan needs its program")
        return vector_cycles(vector_descriptor(program, step), config)
    if step.unit != "engine":
        return 0
    cycles, _ = layer_cycles(planned_layer(qmodel, config, step), Memory.of(config),
                             config.tm, config.tn, config.tr, config.tc)
    return int(cycles)


def vector_descriptor(program, step):
    """The VectorDescriptor of a vector step, decoded from the program's image."""
    from fpgacnn.hw.vector_program import VECTOR_STRIDE, VectorDescriptor

    return VectorDescriptor.from_bytes(
        program.image[step.descriptor:step.descriptor + VECTOR_STRIDE])


def first_difference(got, want):
    """(mismatching elements, index of the first one or None)."""
    wrong = np.argwhere(got != want)
    return len(wrong), (tuple(int(i) for i in wrong[0]) if len(wrong) else None)


def simulate(qmodel, x_int, config, device=None, max_cycles=None, progress=None,
             program=None):
    """Run `qmodel` (compiled for `config`, or the given `program`) on the first sample of
    `x_int` (an array, or a dict by input name); a LayerResult per step, in order.
    `progress(name)` is called after each step."""
    results = []
    for result in check_steps(qmodel, x_int, config, device, max_cycles, program):
        results.append(result)
        if progress:
            progress(result.name)
    return results


def check_steps(qmodel, x_int, config, device=None, max_cycles=None, program=None):
    """`simulate` one step at a time: yields each step's LayerResult as soon as it ran."""
    from fpgacnn.export.ddr import batch_one
    from fpgacnn.golden import run as golden_run
    from fpgacnn.hw.compiler import compile_network
    from fpgacnn.sim.network import iter_program, program_device

    x_int = batch_one(qmodel, x_int)
    program = program or compile_network(qmodel, config)
    expected = golden_run(qmodel, x_int, keep=True)
    device = device or program_device(program, config)
    for run in iter_program(program, device, x_int, max_cycles):
        step = run.step
        mismatches, first, elements = 0, None, 0
        if step.output is not None:
            want = expected[step.output][:1]
            got = program.ddr_map.read_tensor(device.memory, f"fmap.{step.output}")
            mismatches, first = first_difference(got.reshape(want.shape), want)
            elements = int(want.size)
        yield LayerResult(step.name, run.cycles, mismatches, elements,
                          planned_cycles(qmodel, config, step, program), run.seconds, step.unit,
                          first)


def first_mismatch(results):
    """The first LayerResult with a mismatching element, or None."""
    return next((r for r in results if r.mismatches), None)


@dataclass(frozen=True)
class EngineImage:
    image: bytes
    ddr_map: object                 # fpgacnn.export.ddrmap.DdrMap
    descriptors: dict               # first layer of each engine step -> its descriptor's offset


def build_engine_image(qmodel, config, x_int):
    """The compiled image of `qmodel` with input `x_int`, and where each engine step starts."""
    from fpgacnn.hw.compiler import compile_network

    program = compile_network(qmodel, config)
    return EngineImage(bytes(program.image_with_input(x_int)), program.ddr_map,
                       {s.layers[0]: s.descriptor for s in program.steps if s.unit == "engine"})


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
