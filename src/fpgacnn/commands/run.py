"""`fpgacnn run QMODEL --input X.npy`: the golden model's integer outputs.

    fpgacnn run digits.q.npz --input x.npy -o y.npy --dump layers/

A float input array is quantized with the model's input format first; an integer array is
taken as the input codes. `-o` writes the output (.npy for one output, .npz for several);
`--dump DIR` writes every layer's integer tensor as DIR/<layer>.npy.
"""

import json
import sys
from pathlib import Path

import numpy as np

from fpgacnn.errors import UserError

HELP = "run a quantized model in integers (the golden model); dump every layer with --dump"


def add_arguments(parser):
    parser.add_argument("qmodel", help="a quantized model written by `fpgacnn quantize`")
    parser.add_argument("--input", required=True, metavar="X.npy",
                        help="input batch (N, C, H, W): float (quantized first) or integer codes")
    parser.add_argument("-o", "--output", metavar="Y.npy", help="write the integer output(s)")
    parser.add_argument("--dump", metavar="DIR", help="write every layer's tensor as DIR/NAME.npy")
    parser.add_argument("--json", action="store_true", help="the summary as JSON")


def storage_dtype(fmt):
    """The smallest numpy integer type that holds every code of `fmt`."""
    for dtype in (np.int8, np.uint8, np.int16, np.uint16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= fmt.lo and fmt.hi <= info.max:
            return dtype
    return np.int64


def file_name(tensor: str) -> str:
    """A tensor name as a file name: path separators become '_'."""
    return tensor.replace("/", "_").replace("\\", "_") + ".npy"


def run(args) -> int:
    from fpgacnn import golden
    from fpgacnn.atomic import atomic_path
    from fpgacnn.quant import QModel

    qmodel = QModel.load(args.qmodel)
    try:
        x = np.load(args.input, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"--input {args.input}: no such file") from None
    except (OSError, ValueError) as e:
        raise UserError(f"--input {args.input}: not a .npy array ({e})") from None
    if not np.issubdtype(x.dtype, np.integer):
        x = golden.quantize_input(qmodel, x)
    values = golden.run(qmodel, x, keep=args.dump is not None)
    outputs = {k: values[k].astype(storage_dtype(qmodel.format_of(k))) for k in qmodel.outputs}
    if args.output:
        with atomic_path(args.output) as tmp:
            with open(tmp, "wb") as f:
                if len(outputs) == 1:
                    np.save(f, next(iter(outputs.values())))
                else:
                    np.savez(f, **outputs)
    if args.dump:
        for name, value in values.items():
            fmt = qmodel.format_of(name)
            with atomic_path(Path(args.dump) / file_name(name)) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, value.astype(storage_dtype(fmt)))
    summary = {name: {"shape": list(v.shape), "dtype": str(v.dtype),
                      "argmax": v.reshape(len(v), -1).argmax(axis=1).tolist()}
               for name, v in outputs.items()}
    if args.json:
        json.dump({"qmodel": args.qmodel, "outputs": summary, "dump": args.dump}, sys.stdout,
                  indent=1)
        print()
    else:
        for name, s in summary.items():
            print(f"{name}: shape {tuple(s['shape'])} {s['dtype']}, argmax {s['argmax'][:16]}")
    return 0
