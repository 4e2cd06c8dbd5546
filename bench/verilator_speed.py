"""Verilator simulation speed of the ZC706-sized engine (issue 6: at least 200,000 cycles/s).

    .venv/bin/python bench/verilator_speed.py                  # VGG16 conv3_2, memcopy, peer
    .venv/bin/python bench/verilator_speed.py --layer conv5_1 --peer-cycles 300

1. Build (or take from the cache) the Verilator simulator of the ZC706-sized engine and say how
   long the build took.
2. Run one full-size VGG16 3x3 layer on it (default conv3_2: 56 x 56 x 256 -> 256), compare its
   output with the golden model, and print simulated cycles per second of wall-clock time and
   of processor time (the steadier figure when other work shares the machine).
3. The peer: Amaranth's Python simulator on the same design, image and DDR model for the first
   `--peer-cycles` cycles, against Verilator on the same first cycles; the ratio.
4. MemoryCopy (the memory side alone), for what the harness and DDR model cost per cycle.
"""

import argparse
import resource
import sys
import threading
import time

from sim_speed import VGG16_3X3, ZC706, conv_qmodel, pysim_cycles_per_second, speed_memcopy


def child_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build_engine(config):
    """The engine's SimulatedDevice and the seconds its build took (0 when cached)."""
    from fpgacnn.hw.verilog import engine_top
    from fpgacnn.sim.runtime import SimulatedDevice

    began = time.perf_counter()
    top = engine_top(config)
    device = SimulatedDevice(top, config)
    return top, device, time.perf_counter() - began


def full_layer(config, device, layer):
    """(LayerResult, processor seconds of the simulator) for one full-size layer."""
    from fpgacnn.sim.check import simulate

    _, cin, cout, size = layer
    qmodel, x = conv_qmodel(cin, cout, size)
    cpu = child_cpu_seconds()
    (result,) = simulate(qmodel, x, config, device=device)
    return result, child_cpu_seconds() - cpu


def with_deep_recursion(function, *args):
    """`function(*args)` in a thread with a large stack and recursion limit: Amaranth's
    simulator compiles the ZC706-sized engine into Python nested deeper than the defaults allow
    (RecursionError)."""
    outcome = []
    limit = sys.getrecursionlimit()
    threading.stack_size(512 << 20)
    sys.setrecursionlimit(100_000)
    try:
        thread = threading.Thread(target=lambda: outcome.append(function(*args)))
        thread.start()
        thread.join()
    finally:
        sys.setrecursionlimit(limit)
        threading.stack_size(0)
    if not outcome:
        raise RuntimeError("Amaranth's simulator failed on the engine (see the thread's error)")
    return outcome[0]


def first_cycles(config, top, device, layer, cycles):
    """Cycles/s of Verilator and of Amaranth pysim over the same first `cycles` of `layer`."""
    from fpgacnn.sim.check import build_engine_image

    _, cin, cout, size = layer
    qmodel, x = conv_qmodel(cin, cout, size)
    image = build_engine_image(qmodel, config, x)
    start = image.descriptors[qmodel.layers[0].name]
    device.load(image.image)
    device.start(start)
    ours = device.run_to(cycles)
    peer = with_deep_recursion(pysim_cycles_per_second, top, config, image.image, [start],
                               cycles)
    return ours.cycles / ours.seconds, peer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="conv3_2", choices=[row[0] for row in VGG16_3X3])
    parser.add_argument("--peer-cycles", type=int, default=3000)
    args = parser.parse_args(argv)
    config = ZC706
    layer = next(row for row in VGG16_3X3 if row[0] == args.layer)
    print(f"configuration: {config}")
    top, device, build_seconds = build_engine(config)
    print(f"engine simulator: {build_seconds:.1f} s to generate the Verilog and build or find "
          f"it in the cache", flush=True)

    result, cpu = full_layer(config, device, layer)
    print(f"{layer[0]} ({layer[1]} -> {layer[2]} channels, {layer[3]} x {layer[3]}): "
          f"{result.cycles:,} cycles in {result.seconds:.1f} s wall, {cpu:.1f} s cpu: "
          f"{result.cycles / result.seconds:,.0f} cycles/s wall, {result.cycles / cpu:,.0f} "
          f"cycles/s cpu; mismatches with the golden model {result.mismatches} of "
          f"{result.elements:,}", flush=True)

    ours, peer = first_cycles(config, top, device, layer, args.peer_cycles)
    print(f"first {args.peer_cycles:,} cycles of {layer[0]}: Verilator {ours:,.0f} cycles/s, "
          f"Amaranth pysim {peer:,.0f} cycles/s; ratio {ours / peer:,.0f}x", flush=True)

    run, peer = speed_memcopy(config, 8 << 20)
    print(f"memcopy 8 MiB: {run.cycles:,} cycles: {run.cycles_per_second:,.0f} cycles/s wall, "
          f"{run.cycles / run.cpu_seconds:,.0f} cycles/s cpu (Verilator); Amaranth pysim "
          f"{peer:,.0f} cycles/s; ratio {run.cycles_per_second / peer:,.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
