"""A per-layer table of a QModel: formats, weights, requantization, accumulator width."""

from fpgacnn.quant.model import QModel
from fpgacnn.quant.overflow import check_accumulators


def summary_rows(qmodel: QModel) -> list[dict]:
    """One dict per layer (JSON-ready).

    >>> summary_rows(qm)[0]["out"]
    'u8 s=0.0123 zp=0'
    """
    acc = {r.layer: r.bits_needed for r in check_accumulators(qmodel)}
    rows = []
    for layer in qmodel.layers:
        fmt = layer.output
        rows.append({
            "name": layer.name, "op": layer.kind, "host": layer.host,
            "out": _format_text(fmt), "out_bits": fmt.bits, "out_signed": fmt.signed,
            "out_scale": fmt.scale, "out_zero_point": fmt.zero_point,
            "out_frac_bits": fmt.frac_bits, "saturation": [layer.out_lo, layer.out_hi],
            "weight_bits": layer.weight_bits,
            "requant": None if layer.requant is None else layer.requant.mode,
            "acc_bits_needed": acc.get(layer.name),
        })
    return rows


def _format_text(fmt) -> str:
    kind = ("s" if fmt.signed else "u") + str(fmt.bits)
    if fmt.frac_bits is not None:
        return f"{kind} Q.{fmt.frac_bits}"
    return f"{kind} s={fmt.scale:.4g} zp={fmt.zero_point}"


def format_summary(qmodel: QModel, rows: list[dict]) -> str:
    head = (f"{qmodel.name}: scheme {qmodel.scheme}, requantization {qmodel.mode}, "
            f"rounding {qmodel.rounding}, accumulator {qmodel.acc_bits} bits")
    lines = [head, f"{'layer':24} {'op':14} {'output':22} {'w bits':>6} {'requant':>12} "
                   f"{'acc bits':>8}"]
    for r in rows:
        op = r["op"] + (" (host)" if r["host"] else "")
        lines.append(f"{r['name'][:24]:24} {op[:14]:14} {r['out']:22} "
                     f"{r['weight_bits'] or '':>6} {r['requant'] or '':>12} "
                     f"{r['acc_bits_needed'] or '':>8}")
    return "\n".join(lines)
