"""`fpgacnn demo`: the whole flow on the bundled model, zoo:digits, for the xc7z020.

Each step is an ordinary `fpgacnn` command, printed before it runs so that it can be run again
by hand: inspect, quantize (calibrated on the digits training images), verify (accuracy of the
float and integer models on the test images, bit-exactness against onnxruntime), plan (explore
the engine for the device, write the hardware configuration and plots), export (memory images,
DDR image and test vectors in the engine's layout) and synth (yosys on the generated engine).
"""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HELP = "run the whole flow on zoo:digits for the xc7z020 (what `make demo` runs)"

MODEL = "zoo:digits"
DEVICE = "xc7z020"


def add_arguments(parser):
    parser.add_argument("-o", "--output", default="build/demo", metavar="DIR",
                        help="where every artefact goes (default build/demo)")


def _data_files(out: Path) -> tuple[Path, Path, Path]:
    from fpgacnn.zoo import digits_data

    x_train, _, x_test, y_test = digits_data()
    calib, test, sample = out / "calib.npy", out / "test.npz", out / "sample.npy"
    np.save(calib, x_train[:256])
    np.savez(test, x=x_test, y=y_test)
    np.save(sample, x_test[:1])
    return calib, test, sample


def _steps(out: Path, calib: Path, test: Path, sample: Path) -> list[tuple[str, list[str]]]:
    qmodel, hw = str(out / "digits.q.npz"), str(out / "hw.toml")
    return [
        ("the model, layer by layer", ["inspect", MODEL]),
        ("8-bit affine quantization, calibrated on 256 training images",
         ["quantize", MODEL, "--scheme", "affine", "--bits", "8", "--per-channel",
          "--calib", str(calib), "-o", qmodel, "--onnx", str(out / "digits.qlinear.onnx")]),
        ("accuracy and bit-exactness against onnxruntime", ["verify", qmodel, "--data", str(test)]),
        (f"the engine planned for the {DEVICE}",
         ["plan", qmodel, "--device", DEVICE, "--explore", "--set", "tn=8",
          "--plots", str(out / "plots"), "-o", hw]),
        ("memory images, DDR image and test vectors",
         ["export", qmodel, "--config", hw, "--format", "coe", "--vectors", str(sample),
          "-o", str(out / "export")]),
    ]


def run(args):
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    steps = _steps(out, *_data_files(out))
    started = time.monotonic()
    for number, (title, argv) in enumerate(steps, 1):
        print(f"\n[{number}/{len(steps)}] {title}\n$ fpgacnn {' '.join(argv)}", flush=True)
        status = subprocess.run([sys.executable, "-m", "fpgacnn", *argv]).returncode
        if status:
            print(f"fpgacnn demo: step {number} ({argv[0]}) failed with status {status}",
                  file=sys.stderr)
            return status
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s; everything is in {out}/")
    return 0
