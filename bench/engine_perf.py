"""Whole networks on the simulated accelerator of the ZC706-sized configuration.

    .venv/bin/python bench/engine_perf.py                          # VGG16 and YOLOv3-tiny, full size
    .venv/bin/python bench/engine_perf.py --model yolov3-tiny      # one of them
    .venv/bin/python bench/engine_perf.py --model vgg16 --size 64  # a smaller input
    .venv/bin/python bench/engine_perf.py --target                 # VGG16 on the 2x design

Prints every step as it finishes (cycles, planner's cycles, mismatches against the golden
model), then the totals: simulated cycles, MAC utilization (useful MACs / (Q x L x cycles)),
GOPS at the configured clock (2 operations per MAC, from simulated cycles) beside the peer,
Angel-Eye on the ZC706 (Qiu et al., FPGA'16: 137 GOPS on VGG16 at 150 MHz with 780 DSPs), and
the total cycles against the planner's (engine and vector steps; host steps count as 0 on
both sides: they run on the CPU); only conv/FC MACs count as useful work.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from sim_speed import ZC706  # noqa: E402  (the one ZC706-sized configuration of bench/)

ANGEL_EYE_GOPS = 137.0          # VGG16, 150 MHz, 780 DSPs (Qiu et al., FPGA'16)
ANGEL_EYE_DSPS = 780
MODELS = {"vgg16": 224, "yolov3-tiny": 416}
# YOLOv3-tiny's layer-9 pool (its input also feeds the route, so it is not fused) has stride 2:
# the vector unit's pool stride is bounded by max_stride, 1 in the VGG16-sized ZC706 config.
# VGG16's first FC layer reads 512 x 7 x 7 values: as a 1x1 conv its 3,136 input blocks exceed
# the descriptor's 10-bit field, as the 7x7 conv it is it needs max_kernel >= 7.
CONFIGS = {"vgg16": ZC706.with_(max_kernel=7), "yolov3-tiny": ZC706.with_(max_stride=2)}
# The design for the target (2x Angel-Eye's GOPS with at most its 780 DSPs): 48 x 32
# MACs in 768 DSP48E1 (two INT8 MACs per slice), shift-only post-processing lanes (no DSPs;
# power-of-two quantization, as Angel-Eye's dynamic fixed point), a 256-bit port at
# 32 bytes/cycle (4.8 GB/s at 150 MHz). VGG16 only: YOLOv3-tiny's LeakyReLU needs multipliers.
TARGET = ZC706.with_(tm=48, tn=32, max_kernel=7, ddr_width_bits=256, ddr_bytes_per_cycle=32.0,
                     post_multipliers=False)


def quantized(name, size, config):
    from fpgacnn import zoo
    from fpgacnn.golden import quantize_input
    from fpgacnn.quant import QuantConfig, quantize

    graph = zoo.load(name, (1, 3, size, size))
    calib = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    scheme = QuantConfig(bits=8, per_channel=True) if config.post_multipliers else \
        QuantConfig(scheme="pow2", bits=8)
    qmodel = quantize(graph, calib, scheme)
    return qmodel, quantize_input(qmodel, calib[:1])


def run_model(name, size, config):
    """Simulate `name` at `size` x `size`; print each step and the totals."""
    from fpgacnn.hw.compiler import compile_network
    from fpgacnn.sim.check import check_steps, planned_layer

    started = time.time()
    qmodel, x = quantized(name, size, config)
    program = compile_network(qmodel, config)
    print(f"{name} {size}x{size}: {len(program.steps)} steps, image "
          f"{program.ddr_map.size / 2**20:.1f} MiB, top {program.top} "
          f"(quantize + compile {time.time() - started:.0f} s)", flush=True)
    macs = {s.name: planned_layer(qmodel, config, s).macs
            for s in program.steps if s.unit == "engine"}
    results = []
    for r in check_steps(qmodel, x, config, program=program):
        results.append(r)
        print(f"  {r.name:<28}{r.unit:<8}{r.cycles:>12,}{r.planned_cycles:>12,}"
              f"{r.mismatches:>8} wrong  {r.seconds:7.1f} s", flush=True)
    summarize(results, macs, config, program.top)


def summarize(results, macs, config, top):
    from fpgacnn.hw.synth import planned_resources

    cycles = sum(r.cycles for r in results)
    planned = sum(r.planned_cycles for r in results)
    engine_cycles = sum(r.cycles for r in results if r.unit == "engine")
    total_macs = sum(macs.values())
    seconds = cycles / (config.clock_mhz * 1e6)
    gops = 2 * total_macs / seconds / 1e9
    q_l = config.tm * config.tn
    dsps = planned_resources(config, design=top).dsp
    print(f"  total {cycles:,} cycles ({engine_cycles:,} engine), planner {planned:,}: "
          f"{cycles / planned - 1:+.1%}; mismatches {sum(r.mismatches for r in results)}")
    print(f"  {total_macs / 1e9:.2f} GMAC, MAC utilization {total_macs / (q_l * cycles):.1%} "
          f"of {config.tm} x {config.tn}; {gops:.1f} GOPS at {config.clock_mhz:g} MHz with "
          f"{dsps} DSP48E1 ({top}, planned) vs Angel-Eye {ANGEL_EYE_GOPS:g} GOPS with "
          f"{ANGEL_EYE_DSPS}: {gops / ANGEL_EYE_GOPS:.2f}x; simulated in "
          f"{sum(r.seconds for r in results):.0f} s", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), action="append",
                        help="model to run (default: both)")
    parser.add_argument("--size", type=int, help="input height and width (default: full)")
    parser.add_argument("--target", action="store_true",
                        help="VGG16 on the 48 x 32 design for the 2x Angel-Eye target")
    parser.add_argument("--set", help="config changes, KEY=VALUE[,KEY=VALUE...] (integers)")
    args = parser.parse_args(argv)
    changes = dict(kv.split("=") for kv in args.set.split(",")) if args.set else {}
    for name in ["vgg16"] if args.target else args.model or sorted(MODELS, reverse=True):
        config = (TARGET if args.target else CONFIGS[name]).with_(
            **{k: int(v) for k, v in changes.items()})
        print(f"configuration: {config}")
        run_model(name, args.size or MODELS[name], config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
