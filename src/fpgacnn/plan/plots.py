"""PNG plots of a plan: the roofline (Zhang et al., Fig. 2 style) and per-layer latency.

>>> from fpgacnn.config import HardwareConfig
>>> from fpgacnn.plan.devices import load_device
>>> from fpgacnn.plan.engine import plan_layers
>>> from fpgacnn.plan.report import engine_report
>>> from fpgacnn.plan.workload import zhang_alexnet
>>> plan = plan_layers(zhang_alexnet(), HardwareConfig(tm=64, tn=7))
>>> report = engine_report(plan, load_device("xc7vx485t"))
>>> [p.name for p in write_plots(report, "plots/")]     # doctest: +SKIP
['roofline.png', 'layers.png']
"""

from pathlib import Path

from fpgacnn.atomic import atomic_path


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def roofline(report: dict, path) -> Path:
    """Attainable GOPS against computation-to-communication ratio, one point per layer."""
    plt = _pyplot()
    cfg = report["config"]
    bandwidth = cfg["ddr_bytes_per_cycle"] * cfg["clock_mhz"] / 1e3
    peak = 2 * cfg["tm"] * cfg["tn"] * cfg["clock_mhz"] / 1e3
    layers = [l for l in report["layers"] if "ctc" in l]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ctcs = [l["ctc"] for l in layers] or [1.0]
    lo, hi = min(ctcs + [peak / bandwidth]) / 4, max(ctcs + [peak / bandwidth]) * 4
    xs = [lo, peak / bandwidth, hi]
    ax.plot(xs, [min(peak, x * bandwidth) for x in xs], color="black",
            label=f"roof: {peak:.1f} GOPS, {bandwidth:.2f} GB/s")
    for i, layer in enumerate(layers):
        ax.scatter(layer["ctc"], layer["attainable"], zorder=3)
        ax.annotate(layer["name"], (layer["ctc"], layer["attainable"]), fontsize=7,
                    xytext=(4, 4 - 9 * (i % 2)), textcoords="offset points")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):   # 1-2-5 ticks with plain numbers: readable values
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    ax.set_xlabel("computation to communication ratio (ops per DDR byte)")
    ax.set_ylabel("attainable performance (GOPS)")
    ax.set_title(f"roofline: Tm={cfg['tm']} Tn={cfg['tn']} on {report['device']['name']}")
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def layer_latency(report: dict, path) -> Path:
    """Bars of cycles per layer, compute-only cycles marked."""
    plt = _pyplot()
    layers = report["layers"]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(layers) + 2), 4.5))
    names = [l["name"] for l in layers]
    ax.bar(names, [l["cycles"] for l in layers], color="tab:orange", label="cycles")
    ax.bar(names, [l["compute_cycles"] for l in layers], color="tab:blue", width=0.5,
           label="compute cycles")
    ax.set_ylabel("cycles")
    ax.set_title(f"per-layer latency ({report['arch']}, {report['device']['name']})")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig, plt, path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def write_plots(report: dict, directory) -> list[Path]:
    directory = Path(directory)
    paths = [layer_latency(report, directory / "layers.png")]
    if report["arch"] == "engine":
        paths.insert(0, roofline(report, directory / "roofline.png"))
    return paths
