"""`fpgacnn bram`: how many RAMB18/RAMB36 one buffer takes, and whether it fits."""

import json

from fpgacnn.errors import UserError

HELP = "map one buffer (width, depth, copies) onto RAMB18/RAMB36 and check it fits"


def add_arguments(p):
    p.add_argument("--width", type=int, required=True, help="word width in bits")
    p.add_argument("--depth", type=int, required=True, help="words per memory")
    p.add_argument("--copies", type=int, default=1,
                   help="separate memories after array partitioning (default 1)")
    p.add_argument("--primitive", choices=("ramb18", "ramb36"),
                   help="block RAM primitive (default: the one taking fewer RAMB18 units)")
    p.add_argument("--true-dual-port", action="store_true",
                   help="two read/write ports (no 512x36 / 512x72 simple dual-port shape)")
    p.add_argument("--available", type=int, help="primitives available; exit 2 if short")
    p.add_argument("--json", action="store_true")


def run(args):
    from fpgacnn.plan.bram import check_fits, map_buffer, map_buffer_best

    if args.available is not None and args.available < 0:
        raise UserError(f"--available must be a non-negative integer, got {args.available}")
    if args.primitive:
        m = map_buffer(args.width, args.depth, args.copies, args.primitive, args.true_dual_port)
    else:
        m = map_buffer_best(args.width, args.depth, args.copies, args.true_dual_port)
    if args.available is not None:
        check_fits(m, args.available)
    report = {"width": m.width, "depth": m.depth, "copies": m.copies, "words": m.words,
              "bits": m.bits, "primitive": m.primitive,
              "aspect": {"depth": m.aspect[0], "width": m.aspect[1]},
              "count": m.count, "bram18": m.bram18, "efficiency": m.efficiency}
    if args.available is not None:
        report["available"] = args.available
        report["words_available"] = m.words_held_by(args.available)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{m.copies} x {m.depth} words of {m.width} bits = {m.words:,} words: "
          f"{m.count} {m.primitive.upper()} ({m.aspect[0]}x{m.aspect[1]} each), "
          f"{m.bram18} RAMB18 units, fill {m.efficiency:.1%}")
    if args.available is not None:
        print(f"fits: {args.available} {m.primitive.upper()} hold "
              f"{report['words_available']:,} words")
    return 0
