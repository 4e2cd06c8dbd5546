"""report.md of `fpgacnn build`: the JSON report (commands/build.py) as Markdown."""

from fpgacnn.commands.synth import ROWS as RESOURCE_ROWS


def markdown(report) -> str:
    steps = report["steps"]
    parts = [f"# {report['model']} on the {report['device']}\n",
             _steps(steps), _accuracy(steps["verify"]), _plan(report, steps["plan"]),
             _simulation(steps["simulate"]), _resources(steps["synth"])]
    return "\n".join(parts)


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _not_done(section) -> str | None:
    status = section.get("status", "done")
    if status == "done":
        return None
    return f"{status}" + (f": {section['reason']}" if "reason" in section else "") + "\n"


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _steps(steps) -> str:
    rows = [(name, s.get("status", "done") + (f" ({s['reason']})" if "reason" in s else ""),
             s["seconds"]) for name, s in steps.items()]
    return "## Steps\n\n" + _table(("step", "status", "seconds"), rows)


def _accuracy(v) -> str:
    text = f"## Accuracy and bit-exactness against onnxruntime\n\n{v['samples']} test inputs"
    if v["labels"]:
        text += (f": float model {_percent(v['float_accuracy'])}, integer model "
                 f"{_percent(v['int_accuracy'])} top-1")
    text += f".\n\nonnxruntime: {v['onnxruntime']}"
    if v["onnx_mismatches"] is not None:
        text += (f"; {v['onnx_mismatches']} of {v['onnx_elements']} elements differ from the "
                 f"golden model (QLinear form of the quantized model)")
        if v["onnx_mismatches"] and v.get("requant_modes") != ["float32"]:
            text += (f" - expected: onnxruntime requantizes in float32, this model in "
                     f"{', '.join(v['requant_modes'])} (the engine's integer arithmetic); "
                     f"a model quantized with the float32 mode matches onnxruntime exactly")
    return text + ".\n"


def _plan(report, section) -> str:
    if "plan" not in report:
        return "## Plan\n\n" + (_not_done(section) or "")
    plan = report["plan"]
    config, totals = plan["config"], plan["totals"]
    keys = ("tm", "tn", "tr", "tc", "act_bits", "weight_bits", "clock_mhz", "ddr_width_bits")
    text = ("## Plan\n\n" + _table(keys, [[config[k] for k in keys]])
            + f"\nPlanned: {totals['cycles']:,} cycles, {totals['gops']:.2f} GOPS, "
              f"{totals['dsp']} DSP, {totals['bram18']} RAMB18 (`{section['config']}`).\n")
    for path in section["plots"]:
        text += f"\n![{path}]({path})\n"
    return text


def _simulation(sim) -> str:
    text = "## Simulation (Verilator, first test input)\n\n"
    if "steps" not in sim:
        return text + _not_done(sim)
    rows = [(s["name"], s.get("unit", "engine"), f"{s['cycles']:,}",
             f"{s['planned_cycles']:,}", f"{s['macs']:,}", _gops(s["gops"]),
             f"{s['mismatches']} / {s['elements']}") for s in sim["steps"]]
    rows.append(("total", "", f"{sim['cycles']:,}", "", f"{sim['macs']:,}", _gops(sim["gops"]),
                 f"{sim['mismatches']} / {sim['elements']}"))
    text += _table(("step", "unit", "cycles", "planned", "MACs", "GOPS", "mismatches"), rows)
    verdict = "bit-exact" if sim["mismatches"] == 0 else "NOT bit-exact"
    return text + (f"\n{verdict} against the golden model; {_gops(sim['gops'])} GOPS "
                   f"(2 x MACs / simulated cycles at {sim['clock_mhz']} MHz).\n")


def _gops(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _resources(synth) -> str:
    text = "## Resources (planner vs yosys synth_xilinx)\n\n"
    if "yosys" not in synth:
        return text + _not_done(synth)
    rows = []
    for key, label in RESOURCE_ROWS:
        planned, measured, diff = (synth["planned"][key], synth["yosys"][key],
                                   synth["difference"][key])
        rows.append((label, "-" if planned is None else planned, measured,
                     "-" if diff is None else f"{diff:+.1%}"))
    notes = "".join(f"\n{note}.\n" for note in synth.get("notes", []))
    return text + f"Design: {synth['design']}.\n\n" + _table(
        ("resource", "planned", "yosys", "difference"), rows) + notes
