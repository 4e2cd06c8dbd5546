"""The runtime: runs a compiled program on a device the way a board driver would.

Load the image (with the input), then step by step: `start` the engine or the vector unit on
the step's descriptor and `wait`, or, for a host step, read the layer's inputs from the
device's memory, run the golden definition of the layer (`fpgacnn.golden.ops.run_layer`:
softmax, LRN, YOLO head, a flatten copy) and write its output region back. Every engine or
vector step is one start, so its cycle count is its own.

    >>> program = compile_network(qmodel, config)                  # doctest: +SKIP
    >>> device = program_device(program, config)                   # doctest: +SKIP
    >>> outputs, runs = run_program(program, device, x_int)        # doctest: +SKIP
    >>> [(r.step.name, r.cycles) for r in runs][:1]                # doctest: +SKIP
    [('conv1', 2410)]
"""

from dataclasses import dataclass

from fpgacnn.golden.ops import run_layer
from fpgacnn.hw.netprogram import Step

UNIT_NUMBERS = {"engine": 0, "vector": 1}    # args[1] of the accelerator top


@dataclass(frozen=True)
class StepRun:
    step: Step
    cycles: int                     # 0 for host and address steps
    seconds: float = 0.0            # wall-clock time of the simulation


def program_device(program, config):
    """A SimulatedDevice with the top `program` needs: the engine alone, or engine + vector
    unit (built, or taken from the cache)."""
    from fpgacnn.sim.check import engine_device

    if program.top == "engine":
        return engine_device(config)
    from fpgacnn.hw.accelerator import accelerator_top
    from fpgacnn.sim.runtime import SimulatedDevice

    return SimulatedDevice(accelerator_top(config), config)


def iter_program(program, device, x_int, max_cycles=None):
    """Load `program` with input `x_int` into `device` and run it, yielding a StepRun after
    each step (the device's memory then holds the step's results)."""
    device.load(program.image_with_input(x_int))
    accelerator = program.top == "accelerator"
    for step in program.steps:
        if step.unit in UNIT_NUMBERS:
            args = (step.descriptor, UNIT_NUMBERS[step.unit]) if accelerator \
                else (step.descriptor,)
            device.start(*args)
            run = device.wait(max_cycles) if max_cycles else device.wait()
            yield StepRun(step, run.cycles, run.seconds)
        else:
            if step.unit == "host":
                run_host_step(program, device.memory, step)
            yield StepRun(step, 0)


def run_host_step(program, memory: bytearray, step: Step) -> None:
    """The step's layers in the golden definition, on the feature maps in `memory`."""
    qmodel, ddr_map = program.qmodel, program.ddr_map
    for name in step.layers:
        layer = qmodel.layer(name)
        xs = [ddr_map.read_tensor(memory, f"fmap.{t}") for t in layer.inputs]
        fmts = [qmodel.format_of(t) for t in layer.inputs]
        ddr_map.write_tensor(memory, f"fmap.{name}", run_layer(layer, xs, fmts,
                                                               qmodel.rounding))


def run_program(program, device, x_int, max_cycles=None, progress=None):
    """({output name: int array at batch 1}, [StepRun]) of `program` on input `x_int`."""
    runs = []
    for run in iter_program(program, device, x_int, max_cycles):
        runs.append(run)
        if progress:
            progress(run.step.name)
    outputs = {name: program.ddr_map.read_tensor(device.memory, f"fmap.{name}")
               for name in program.qmodel.outputs}
    return outputs, runs
