"""yosys (synth_xilinx) on the engine against the planner's resource count, at full size.

    .venv/bin/python bench/synth_report.py              # ZC706-sized engine: 64 x 8 MACs
    .venv/bin/python bench/synth_report.py --tm 16 --tn 8 --tr 16 --tc 16   # a mid-sized one

The peer is the planner (`fpgacnn.hw.synth.planned_resources`): for DSPs, block RAM (RAMB18
units) it prints yosys's count, the plan's and their ratio; LUTs and flip-flops have no plan.
It also gives yosys's CPU time, the device's capacity and whether the engine fits it.
"""

import argparse
import resource
import sys
import time

from fpgacnn.commands.synth import synth_report
from fpgacnn.config import HardwareConfig
from fpgacnn.plan.devices import load_device

# ZC706 (XC7Z045): the configuration of bench/sim_speed.py
ZC706 = dict(device="xc7z045", clock_mhz=150.0, tm=64, tn=8, tr=14, tc=14, act_bits=8,
             weight_bits=8, acc_bits=32, max_kernel=3, max_stride=1, ddr_width_bits=64,
             burst_len=16, ddr_latency=20, ddr_bytes_per_cycle=8.0)


def child_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def capacity(device):
    return {"dsp": device.dsp, "bram18_units": device.bram18, "lut": device.lut,
            "ff": device.ff}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("tm", "tn", "tr", "tc", "max_kernel", "max_stride"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=ZC706[name])
    p.add_argument("--device", default=ZC706["device"])
    args = p.parse_args(argv)
    changes = {k: getattr(args, k) for k in ("tm", "tn", "tr", "tc", "max_kernel",
                                             "max_stride", "device")}
    config = HardwareConfig(**{**ZC706, **changes,
                               "ddr_width_bits": args.tn * ZC706["act_bits"]})
    device = load_device(config.device)
    print(f"engine {config.tm} x {config.tn}, tiles {config.tr} x {config.tc}, K <= "
          f"{config.max_kernel}, S <= {config.max_stride}, on {config.device}", flush=True)
    cpu, wall = child_cpu_seconds(), time.perf_counter()
    report = synth_report(config)
    cpu, wall = child_cpu_seconds() - cpu, time.perf_counter() - wall
    have = capacity(device)
    print(f"{'resource':<14}{'yosys':>10}{'planned':>10}{'yosys/plan':>12}{'device':>10}")
    for key in ("dsp", "bram18_units", "lut", "ff"):
        ours, plan = report["yosys"][key], report["planned"][key]
        ratio = "-" if plan is None else f"{ours / plan:.3f}"
        print(f"{key:<14}{ours:>10}{'-' if plan is None else plan:>10}{ratio:>12}"
              f"{have[key]:>10}")
    fits = all(report["yosys"][key] <= have[key] for key in have)
    print(f"fits {config.device}: {'yes' if fits else 'no'}")
    print(f"yosys: {cpu:.0f} s CPU, {wall:.0f} s wall (Verilog generation included in wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
