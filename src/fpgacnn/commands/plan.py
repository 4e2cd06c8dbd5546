"""`fpgacnn plan`: DSP/BRAM/cycle plan of a model on a device, optionally explored."""

import json
import sys

from fpgacnn.atomic import atomic_open
from fpgacnn.config import HardwareConfig, engine_keys
from fpgacnn.errors import UserError

HELP = "plan DSPs, BRAMs and cycles of a model on a device (engine or dataflow), or explore"


def add_arguments(p):
    p.add_argument("model", help="zoo:NAME, FILE.onnx, FILE.cfg[:FILE.weights], "
                   "package.module:factory, a QMODEL .npz, or workload:zhang-alexnet")
    p.add_argument("--device", required=True, help="device name (e.g. xc7z020) or device .toml")
    p.add_argument("--arch", choices=("engine", "dataflow"), default="engine")
    width = p.add_mutually_exclusive_group()
    width.add_argument("--bits", type=int, help="activation and weight width (default 8)")
    width.add_argument("--float32", action="store_true", help="fp32 MACs (5 DSPs each)")
    p.add_argument("--clock", type=float, help="clock in MHz (default: the device's)")
    p.add_argument("--max-dsp", type=int, help="DSP budget (default: the device's)")
    p.add_argument("--max-bram18", type=int, help="RAMB18 budget (default: the device's)")
    p.add_argument("--config", help="hardware configuration TOML to start from")
    p.add_argument("--set", default="", metavar="KEY=VALUE,...",
                   help="override configuration keys, e.g. tm=64,tn=7")
    p.add_argument("--resource-model", choices=("engine", "mac-array"),
                   help="engine: count the DSPs and block RAMs of the engine as generated "
                   "(default); mac-array: Zhang et al.'s model, the MAC array's DSPs alone and "
                   "banked buffers, for published cross-checks (always so with --float32)")
    p.add_argument("--explore", action="store_true",
                   help="search the tiles (engine) for the lowest latency within the budget")
    p.add_argument("--any-tiling", action="store_true",
                   help="explore every tiling, also those the RTL engine cannot build "
                   "(always so with --float32)")
    p.add_argument("--objective", choices=("throughput", "latency"), default="throughput",
                   help="dataflow: balance the pipeline (throughput) or minimise the sum of "
                   "stage cycles (latency); the engine runs one image at a time, so both are "
                   "the same there")
    p.add_argument("--input-shape", help="N,C,H,W of the model input")
    p.add_argument("--training", action="store_true",
                   help="plan one training step (forward and backward layers)")
    p.add_argument("--batch", type=int, default=1, help="batch of the training step")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--plots", metavar="DIR", help="write roofline.png and layers.png here")
    p.add_argument("-o", "--output", help="write the chosen configuration TOML here")


def run(args):
    report = plan_report(args)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print_report(report)
    return 0


def plan_report(args) -> dict:
    """The plan of `args` (this command's arguments) as the JSON report; writes the
    configuration TOML (`-o`) and the plots (`--plots`) when asked."""
    from fpgacnn.plan.devices import load_device
    from fpgacnn.plan.dsp import dsp_per_mac
    from fpgacnn.plan.source import load_source

    device = load_device(args.device)
    source = load_source(args.model, _shape(args.input_shape))
    layers = _training_layers(source, args.batch) if args.training else list(source.layers)
    if not layers:
        raise UserError(f"model {source.name}: no Conv2d or Linear layer to plan")
    config = build_config(args, device, source.bits, layers)
    per_mac = dsp_per_mac(config.act_bits, config.weight_bits, device.dsp_type, args.float32)
    if args.arch == "dataflow":
        report = _dataflow(layers, config, device, per_mac, args)
        report["dsp_per_mac"] = per_mac
    else:
        report = _engine(layers, config, device, resource_model(args, device, per_mac), args)
    report["model"] = source.name
    report["not_modeled"] = [{"name": n, "op": k} for n, k in source.others]
    if args.training:
        totals = report["totals"]
        report["training_step"] = {"batch": args.batch, "cycles": totals["cycles"],
                                   "ddr_bytes": totals.get("ddr_bytes"),
                                   "images_per_s": totals["fps"] * args.batch}
    _write_outputs(report, args)
    return report


def print_report(report) -> None:
    from fpgacnn.plan.report import text_table
    from fpgacnn.plan.source import describe_others

    print(text_table(report))
    if report["not_modeled"]:
        others = [(o["name"], o["op"]) for o in report["not_modeled"]]
        print(f"not in the cycle model (fused into post-processing, done by addressing "
              f"or on the host): {describe_others(others)}")
    for warning in report.get("warnings", []):
        print(f"warning: {warning}")
    if report.get("engine_problems"):
        print("the RTL engine cannot build this configuration: "
              + "; ".join(report["engine_problems"]))
    if "training_step" in report:
        t = report["training_step"]
        print(f"one training step of batch {t['batch']}: {t['cycles']:,} cycles, "
              f"{t['ddr_bytes'] or 0:,} DDR bytes, {t['images_per_s']:.1f} images/s")
    if "exploration" in report:
        e = report["exploration"]
        print(f"explored {e['evaluated']:,} of {e['space']:,} designs; Pareto front has "
              f"{len(e['front'])} points")


def resource_model(args, device, per_mac):
    """The engine's resource model the arguments ask for (`fpgacnn.plan.resources`)."""
    from fpgacnn.plan.resources import EngineResources, MacArrayResources

    name = args.resource_model or ("mac-array" if args.float32 else "engine")
    if name == "engine" and args.float32:
        raise UserError("--resource-model engine: the engine has no float32 datapath; "
                        "--float32 plans Zhang et al.'s MAC array (--resource-model mac-array)")
    return EngineResources(device.dsp_type) if name == "engine" else MacArrayResources(per_mac)


def _engine(layers, config, device, resources, args) -> dict:
    from fpgacnn.plan.engine import plan_layers
    from fpgacnn.plan.explore import budgets, explore_engine
    from fpgacnn.plan.report import engine_report

    dsp_budget, bram_budget = budgets(device, args.max_dsp, args.max_bram18)
    exploration = None
    if args.explore:
        buildable = not (args.float32 or args.any_tiling)
        exploration = explore_engine(layers, config, device, resources, dsp_budget,
                                     bram_budget, fixed=set(user_keys(args)),
                                     buildable=buildable)
        config = exploration.config
    plan = plan_layers(layers, config, resources)
    hint = "" if args.explore else "; --explore finds tiles that fit"
    check_budget("DSP", plan.dsp, dsp_budget, resources.dsp_cause(config) + hint)
    check_budget("RAMB18", plan.bram18, bram_budget, _buffer_cause(layers, config) + hint)
    report = engine_report(plan, device)
    report["engine_problems"] = config.engine_problems()
    report["warnings"] = _window_warnings(layers)
    if exploration is not None:
        report["exploration"] = {
            "space": exploration.space, "evaluated": exploration.evaluated,
            "front": [{"tm": d.tm, "tn": d.tn, "tr": d.tr, "tc": d.tc, "dsp": d.dsp,
                       "bram18": d.bram18, "cycles": d.cycles} for d in exploration.front]}
    return report


def _dataflow(layers, config, device, per_mac, args) -> dict:
    from fpgacnn.plan.dataflow import allocate
    from fpgacnn.plan.explore import budgets
    from fpgacnn.plan.report import dataflow_report

    dsp_budget, bram_budget = budgets(device, args.max_dsp, args.max_bram18)
    plan = allocate(layers, config.act_bits, config.weight_bits, per_mac, dsp_budget,
                    bram_budget, args.objective)
    return dataflow_report(plan, config, device)


def check_budget(resource: str, needed: int, available: int, cause: str = "") -> None:
    if needed > available:
        raise UserError(f"over budget: {resource} needed {needed}, available {available}"
                        + (f" ({cause})" if cause else ""))


def _buffer_cause(layers, config) -> str:
    """Which layer sets the buffers' window (max_kernel, max_stride), for a budget error."""
    kernel = max(layers, key=lambda l: max(l.kh, l.kw))
    stride = max(layers, key=lambda l: max(l.sh, l.sw))
    return (f"Tr x Tc = {config.tr} x {config.tc} tiles; buffers sized for max_kernel "
            f"{config.max_kernel} (largest: layer {kernel.name}, "
            f"{kernel.kh}x{kernel.kw}) and max_stride {config.max_stride} "
            f"(largest: layer {stride.name})")


def _window_warnings(layers) -> list[str]:
    """Layers whose window the RTL engine cannot take (the weight gradients' OH x OW)."""
    from fpgacnn.config import ENGINE_MAX_KERNEL, ENGINE_MAX_STRIDE

    return [f"layer {l.name}: kernel {l.kh}x{l.kw}, stride {l.sh}x{l.sw} exceeds the RTL "
            f"engine's limits (kernel <= {ENGINE_MAX_KERNEL}, stride <= {ENGINE_MAX_STRIDE}); "
            f"modelled as if the buffers were sized for it"
            for l in layers if max(l.kh, l.kw) > ENGINE_MAX_KERNEL
            or max(l.sh, l.sw) > ENGINE_MAX_STRIDE]


def build_config(args, device, source_bits, layers) -> HardwareConfig:
    """Defaults < device < model's bit widths < --config file < flags < --set."""
    changes = {"device": device.name, "clock_mhz": device.clock_mhz}
    if source_bits:
        changes.update(act_bits=source_bits[0], weight_bits=source_bits[1],
                       acc_bits=source_bits[2])
    if layers:
        changes["max_kernel"] = max(max(l.kh, l.kw) for l in layers)
        changes["max_stride"] = max(max(l.sh, l.sw) for l in layers)
    changes.update(_config_file_keys(args.config))
    if args.bits is not None:
        changes.update(act_bits=args.bits, weight_bits=args.bits)
    if args.float32:
        changes.update(act_bits=32, weight_bits=32, acc_bits=32)
    if args.clock is not None:
        if not args.clock > 0:
            raise UserError(f"--clock must be a positive number of MHz, got {args.clock}")
        changes["clock_mhz"] = args.clock
    changes.update(parse_set(args.set))
    HardwareConfig().with_(**changes)       # name a bad key or value before using it
    if "ddr_bytes_per_cycle" not in changes:
        rate = device.ddr_bytes_per_cycle(changes["clock_mhz"])
        width = changes.get("ddr_width_bits", HardwareConfig.ddr_width_bits)
        changes["ddr_bytes_per_cycle"] = min(rate, width / 8)
    return HardwareConfig().with_(**changes)


def user_keys(args) -> dict:
    """Configuration keys the user gave (--config file, then --set): explore keeps them."""
    return _config_file_keys(args.config) | parse_set(args.set)


def _config_file_keys(path) -> dict:
    if not path:
        return {}
    keys = engine_keys(path)
    HardwareConfig().with_(**keys)      # validate names and values now, naming the file's key
    return keys


def parse_set(text: str) -> dict:
    """`tm=64,tn=7,clock_mhz=100.5` -> {"tm": 64, "tn": 7, "clock_mhz": 100.5}."""
    changes = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set: expected KEY=VALUE, got {item!r}")
        changes[key.strip()] = _value(value.strip())
    return changes


def _value(text: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _shape(text):
    if not text:
        return None
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--input-shape: expected N,C,H,W integers, got {text!r}") from None
    if any(v < 1 for v in shape):
        raise UserError(f"--input-shape: dimensions must be positive, got {text!r}")
    return shape


def _training_layers(source, batch):
    if source.graph is None:
        raise UserError(f"--training needs a model graph, not {source.name}")
    if batch < 1:
        raise UserError(f"--batch must be a positive integer, got {batch}")
    try:
        from fpgacnn.train.workload import training_step_layers
    except ImportError:
        raise UserError("--training: training workload not available "
                        "(fpgacnn.train.workload.training_step_layers)") from None
    from fpgacnn.plan.workload import layers_from_list
    return layers_from_list(training_step_layers(source.graph, batch=batch))


def _write_outputs(report, args):
    if args.output:
        config = HardwareConfig().with_(**report["config"])
        with atomic_open(args.output) as f:
            f.write(config.to_toml())
    if args.plots:
        from fpgacnn.plan.plots import write_plots
        report["plots"] = [str(p) for p in write_plots(report, args.plots)]
