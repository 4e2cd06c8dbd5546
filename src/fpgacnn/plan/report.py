"""Plans as JSON-ready dicts and as text tables (what `fpgacnn plan` prints).

>>> from fpgacnn.config import HardwareConfig
>>> from fpgacnn.plan.devices import load_device
>>> from fpgacnn.plan.engine import plan_layers
>>> from fpgacnn.plan.workload import zhang_alexnet
>>> cfg = HardwareConfig(tm=64, tn=7)
>>> report = engine_report(plan_layers(zhang_alexnet(), cfg), load_device("xc7vx485t"))
>>> sorted(report)
['arch', 'config', 'device', 'dsp_per_mac', 'layers', 'resource_model', 'totals']
"""

from dataclasses import asdict, fields

from fpgacnn.config import HardwareConfig
from fpgacnn.plan.dataflow import DataflowPlan
from fpgacnn.plan.devices import Device
from fpgacnn.plan.engine import EnginePlan


def config_dict(config: HardwareConfig) -> dict:
    return {f.name: getattr(config, f.name) for f in fields(config)}


def _device_dict(device: Device) -> dict:
    return {"name": device.name, "dsp": device.dsp, "bram18": device.bram18,
            "dsp_type": device.dsp_type, "ddr_gbps": device.ddr_gbps}


def _totals(cycles, ops, clock_mhz, dsp, bram18, device: Device, frames_cycles=None) -> dict:
    seconds = cycles / (clock_mhz * 1e6)
    frame = frames_cycles or cycles
    return {"cycles": cycles, "latency_ms": seconds * 1e3, "ops": ops,
            "gops": ops / (frame / (clock_mhz * 1e6)) / 1e9,
            "fps": clock_mhz * 1e6 / frame,
            "dsp": dsp, "dsp_available": device.dsp, "dsp_use": dsp / device.dsp,
            "bram18": bram18, "bram18_available": device.bram18,
            "bram18_use": bram18 / device.bram18}


def engine_report(plan: EnginePlan, device: Device) -> dict:
    """`config`, `device`, `totals` and `layers` (the keys of `fpgacnn plan --json`)."""
    ops = sum(p.ops for p in plan.layers)
    totals = _totals(plan.cycles, ops, plan.config.clock_mhz, plan.dsp, plan.bram18, device)
    totals["compute_cycles"] = plan.compute_cycles
    totals["ddr_bytes"] = sum(p.ddr_bytes for p in plan.layers)
    return {"arch": "engine", "config": config_dict(plan.config), "device": _device_dict(device),
            "totals": totals, "layers": [asdict(p) for p in plan.layers],
            "resource_model": plan.resources.name,
            "dsp_per_mac": plan.resources.dsp_per_mac(plan.config)}


def dataflow_report(plan: DataflowPlan, config: HardwareConfig, device: Device) -> dict:
    ops = sum(2 * s.macs for s in plan.stages)
    totals = _totals(plan.latency, ops, config.clock_mhz, plan.dsp, plan.bram18, device,
                     frames_cycles=plan.interval)
    totals["interval_cycles"] = plan.interval
    key = "interval_cycles" if plan.objective == "throughput" else "latency_cycles"
    totals["compute_cycles"] = plan.latency
    layers = [{"name": s.name, "op": s.op, "ops": 2 * s.macs, "tm": s.tm, "tn": s.tn,
               "compute_cycles": s.cycles, "cycles": s.cycles,
               "bound": "bottleneck" if s.cycles == plan.interval else "compute",
               "dsp": s.dsp, "bram18": s.bram18, "weight_bram18": s.weight_bram18,
               "line_bram18": s.line_bram18, "efficiency": s.macs / (s.cycles * s.tm * s.tn)}
              for s in plan.stages]
    return {"arch": "dataflow", "config": config_dict(config), "device": _device_dict(device),
            "totals": totals, "layers": layers,
            "objective": plan.objective,
            "front": [{"dsp": d, key: c} for d, c in plan.front]}


RESOURCE_NOTES = {"engine": " (the engine as generated: MAC array and post-processing)",
                  "mac-array": " (MAC array only: Zhang et al.'s model)"}

COLUMNS = (("name", "layer", "{:<18}", 18), ("op", "op", "{:<6}", 6),
           ("ops", "ops", "{:>14,}", 14), ("compute_cycles", "compute cyc", "{:>12,}", 12),
           ("cycles", "cycles", "{:>12,}", 12), ("bound", "bound", "{:>10}", 10),
           ("dsp", "DSP", "{:>6}", 6), ("bram18", "RAMB18", "{:>6}", 6),
           ("efficiency", "effic.", "{:>7.1%}", 7))


def text_table(report: dict) -> str:
    """The per-layer table and the totals, for people."""
    head = " ".join(f"{label:<{width}}" if i < 2 else f"{label:>{width}}"
                    for i, (_, label, _, width) in enumerate(COLUMNS))
    c = report["config"]
    if report["arch"] == "engine":
        arch = f"engine: Tm={c['tm']} Tn={c['tn']} Tr={c['tr']} Tc={c['tc']}"
    else:
        arch = "dataflow: " + ", ".join(f"{l['name']} {l['tm']}x{l['tn']}"
                                        for l in report["layers"])
    lines = [f"{arch}; {c['act_bits']}-bit activations, {c['weight_bits']}-bit weights, "
             f"{c['clock_mhz']} MHz, DDR {c['ddr_bytes_per_cycle']:g} bytes/cycle", head]
    for layer in report["layers"]:
        lines.append(" ".join(fmt.format(layer[name]) for name, _, fmt, _ in COLUMNS))
    t = report["totals"]
    lines += ["", f"latency {t['cycles']:,} cycles = {t['latency_ms']:.3f} ms at "
              f"{report['config']['clock_mhz']} MHz; {t['gops']:.2f} GOPS; "
              f"{t['fps']:.2f} frames/s",
              f"DSP {t['dsp']} / {t['dsp_available']} ({t['dsp_use']:.1%}), "
              f"RAMB18 {t['bram18']} / {t['bram18_available']} ({t['bram18_use']:.1%}) "
              f"on {report['device']['name']}" + RESOURCE_NOTES.get(report.get("resource_model"),
                                                                   "")]
    if "ddr_bytes" in t:
        lines.append(f"DDR traffic {t['ddr_bytes']:,} bytes; compute-only cycles "
                     f"{t['compute_cycles']:,}")
    if "interval_cycles" in t:
        lines.append(f"pipeline interval {t['interval_cycles']:,} cycles (slowest stage)")
    return "\n".join(lines)
