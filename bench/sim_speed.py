"""Simulation speed and MAC utilization of the engine in Verilator.

    .venv/bin/python bench/sim_speed.py            # ZC706-sized engine, VGG16's 3x3 layers
    .venv/bin/python bench/sim_speed.py --quick    # conv5_x only
    .venv/bin/python bench/sim_speed.py --design memcopy   # the memory side alone

1. Speed: simulated cycles per second of the Verilator build of the ZC706-sized configuration
   (target >= 200,000), against Amaranth's Python simulator on the same design and image
   (the peer), with the ratio.
2. MAC utilization on VGG16's 3x3 conv layers at full size: useful MACs / (Q x L x cycles)
   from simulation (target >= 90%), beside the planner's prediction for the same layers (the
   peer), with the ratio; every layer's output is also compared with the golden model.
"""

import argparse
import sys
import time

import numpy as np

from fpgacnn.config import HardwareConfig

# ZC706 (XC7Z045: 900 DSP48E1, 545 RAMB36): a 64 x 8 array of 8-bit MACs on one 64-bit HP port
# at 150 MHz; 14 x 14 output tiles divide every VGG16 feature map.
ZC706 = HardwareConfig(device="xc7z045", clock_mhz=150.0, tm=64, tn=8, tr=14, tc=14,
                       act_bits=8, weight_bits=8, acc_bits=32, max_kernel=3, max_stride=1,
                       ddr_width_bits=64, burst_len=16, ddr_latency=20,
                       ddr_bytes_per_cycle=8.0)

# (name, in channels, out channels, input size) of VGG16's 3x3, stride 1, padding 1 convs
VGG16_3X3 = [("conv1_1", 3, 64, 224), ("conv1_2", 64, 64, 224), ("conv2_1", 64, 128, 112),
             ("conv2_2", 128, 128, 112), ("conv3_1", 128, 256, 56), ("conv3_2", 256, 256, 56),
             ("conv3_3", 256, 256, 56), ("conv4_1", 256, 512, 28), ("conv4_2", 512, 512, 28),
             ("conv4_3", 512, 512, 28), ("conv5_1", 512, 512, 14), ("conv5_2", 512, 512, 14),
             ("conv5_3", 512, 512, 14)]


def pysim_cycles_per_second(top, config, image, args, cycles):
    """Cycles per second of Amaranth's Python simulator running `top` (a SimTop) on `image`."""
    from amaranth.sim import Simulator

    from fpgacnn.sim.ddr import DDRModel, add_ddr_process

    sim = Simulator(top)
    sim.add_clock(1e-8)
    add_ddr_process(sim, DDRModel.from_config(bytearray(image), config), rd=top.rd, wr=top.wr)

    async def starter(ctx):
        ctx.set(top.args, list(args) + [0] * (4 - len(args)))
        ctx.set(top.start, 1)
        await ctx.tick()
        ctx.set(top.start, 0)
    sim.add_testbench(starter)
    began = time.perf_counter()
    sim.run_until(cycles * 1e-8)
    return cycles / (time.perf_counter() - began)


def speed_memcopy(config, size):
    from fpgacnn.hw.verilog import MemoryCopy, SimTop
    from fpgacnn.sim.runtime import SimulatedDevice

    device = SimulatedDevice(MemoryCopy.from_config(config), config)
    device.load(bytes(2 * size))
    device.start(0, size, size)
    run = device.wait()
    peer = pysim_cycles_per_second(SimTop(MemoryCopy.from_config(config)), config,
                                   bytes(2 * size), [0, size, size], 3000)
    return run, peer


def conv_qmodel(cin, cout, size, seed=0):
    """A quantized 3x3/s1/p1 conv + ReLU of seeded random weights, and an integer input."""
    import torch
    from torch import nn

    from fpgacnn.frontends.torch import from_torch
    from fpgacnn.golden import quantize_input
    from fpgacnn.quant import QuantConfig, quantize

    torch.manual_seed(seed)
    module = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()).eval()
    x = torch.randn(1, cin, size, size)
    qmodel = quantize(from_torch(module, x), x.numpy(), QuantConfig(bits=8, per_channel=True))
    return qmodel, quantize_input(qmodel, x.numpy())


def utilization(config, layers):
    """Simulate each layer; print and return (name, macs, LayerResult) rows."""
    from fpgacnn.sim.check import engine_device, simulate

    device = engine_device(config)
    rows = []
    q_l = config.tm * config.tn
    for name, cin, cout, size in layers:
        qmodel, x = conv_qmodel(cin, cout, size)
        (result,) = simulate(qmodel, x, config, device=device)
        macs = cout * cin * size * size * 9
        rows.append((name, macs, result))
        print(f"{name:<8} cycles {result.cycles:>11,} planned {result.planned_cycles:>11,}  "
              f"utilization {macs / (q_l * result.cycles):6.1%} simulated "
              f"{macs / (q_l * result.planned_cycles):6.1%} planned  "
              f"mismatches {result.mismatches}  "
              f"{result.cycles / result.seconds:,.0f} cycles/s", flush=True)
    return rows


def engine_pysim_speed(config, layer, cycles):
    """Amaranth's Python simulator on the engine running `layer`'s image (the peer)."""
    from fpgacnn.hw.verilog import engine_top
    from fpgacnn.sim.check import build_engine_image

    _, cin, cout, size = layer
    qmodel, x = conv_qmodel(cin, cout, size)
    image = build_engine_image(qmodel, config, x)
    start = image.descriptors[qmodel.layers[0].name]
    return pysim_cycles_per_second(engine_top(config), config, image.image, [start], cycles)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", choices=("engine", "memcopy"), default="engine")
    parser.add_argument("--quick", action="store_true", help="conv5_x only")
    parser.add_argument("--layers", help="comma-separated VGG16 layer names (default: all)")
    parser.add_argument("--no-peer", action="store_true",
                        help="skip Amaranth's simulator on the engine (slow at this size)")
    args = parser.parse_args(argv)
    config = ZC706
    print(f"configuration: {config}")
    if args.design == "memcopy":
        run, peer = speed_memcopy(config, 8 << 20)
        print(f"memcopy 8 MiB: {run.cycles:,} cycles in {run.seconds:.2f} s: "
              f"{run.cycles_per_second:,.0f} cycles/s (Verilator); Amaranth pysim "
              f"{peer:,.0f} cycles/s; ratio {run.cycles_per_second / peer:,.0f}x")
        return 0
    layers = VGG16_3X3[-3:] if args.quick else VGG16_3X3
    if args.layers:
        known = {layer[0]: layer for layer in VGG16_3X3}
        layers = [known[name] for name in args.layers.split(",")]
    rows = utilization(config, layers)
    macs = sum(macs for _, macs, _ in rows)
    cycles = sum(r.cycles for _, _, r in rows)
    planned = sum(r.planned_cycles for _, _, r in rows)
    speed = cycles / sum(r.seconds for _, _, r in rows)
    q_l = config.tm * config.tn
    if not args.no_peer:
        peer = engine_pysim_speed(config, layers[-1], 2000)
        print(f"speed: {speed:,.0f} simulated cycles/s (Verilator); Amaranth pysim "
              f"{peer:,.0f} cycles/s; ratio {speed / peer:,.0f}x")
    print(f"VGG16 3x3 layers ({len(rows)}): MAC utilization {macs / (q_l * cycles):.1%} "
          f"simulated, {macs / (q_l * planned):.1%} planned; simulated/planned cycles "
          f"{cycles / planned:.3f}; mismatches {sum(r.mismatches for _, _, r in rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
