"""`fpgacnn demo`: `fpgacnn build` on the bundled model, zoo:digits, for the xc7z020.

It writes the digits data beside the build (256 training images for calibration, the 450 test
images with their labels) and runs, with progress on stderr:

    fpgacnn build zoo:digits --device xc7z020 --per-channel --calib DIR/calib.npy \\
        --data DIR/test.npz -o DIR

that is quantize (8-bit affine, per channel), verify (accuracy, bit-exactness against
onnxruntime), plan (explore the engine), export, compile, Verilog, simulation of the first
test image in Verilator against the golden model, and yosys; DIR/report.md says how it went.
"""

from pathlib import Path

import numpy as np

from fpgacnn.commands import build

HELP = "run `fpgacnn build` on zoo:digits for the xc7z020 (what `make demo` runs)"

MODEL = "zoo:digits"
DEVICE = "xc7z020"
CALIBRATION_IMAGES = 256


def add_arguments(parser):
    parser.add_argument("-o", "--output", default="build/demo", metavar="DIR",
                        help="where every artefact goes (default build/demo)")
    parser.add_argument("--no-sim", action="store_true", help="skip the Verilator simulation")
    parser.add_argument("--no-synth", action="store_true", help="skip yosys")


def _data_files(out: Path) -> tuple[Path, Path]:
    from fpgacnn.zoo import digits_data

    x_train, _, x_test, y_test = digits_data()
    calib, test = out / "calib.npy", out / "test.npz"
    np.save(calib, x_train[:CALIBRATION_IMAGES])
    np.savez(test, x=x_test, y=y_test)
    return calib, test


def build_argv(out: Path, calib: Path, test: Path, no_sim=False, no_synth=False) -> list[str]:
    argv = [MODEL, "--device", DEVICE, "--scheme", "affine", "--bits", "8", "--per-channel",
            "--calib", calib, "--data", test, "-o", out]
    return [str(a) for a in argv] + ["--no-sim"] * no_sim + ["--no-synth"] * no_synth


def run(args):
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    argv = build_argv(out, *_data_files(out), args.no_sim, args.no_synth)
    print(f"$ fpgacnn build {' '.join(argv)}", flush=True)
    return build.run(build.command_args(build, argv))
