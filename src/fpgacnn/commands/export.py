"""`fpgacnn export`: every layer's tensors, the DDR image and its map, test vectors, manifest."""

import json
import sys

from tqdm import tqdm

from fpgacnn.commands.pack import load_npy
from fpgacnn.config import HardwareConfig
from fpgacnn.errors import UserError
from fpgacnn.export import FORMATS, FileOptions
from fpgacnn.export.ddr import plan_ddr
from fpgacnn.export.layoutfile import LayoutFile
from fpgacnn.export.network import count_files, export_network

HELP = "write a quantized model's memory files, DDR image + ddr_map.json, test vectors, manifest"


def add_arguments(parser) -> None:
    parser.add_argument("qmodel", help="quantized model (.npz written by `fpgacnn quantize`)")
    parser.add_argument("--layout", metavar="FILE", help="layout file (TOML); default: the "
                        "engine's layouts from the hardware configuration")
    parser.add_argument("--config", metavar="HW.toml", help="hardware configuration ([engine])")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS),
                        help="format of the per-layer files and test vectors")
    parser.add_argument("--radix", type=int, default=16, help="2 or 16 (.coe/.mem/.mif)")
    parser.add_argument("--byteorder", default="little", help="little or big (.bin files)")
    parser.add_argument("--address-every", type=int, default=0,
                        help=".mem: an @address line every N words")
    parser.add_argument("--vectors", metavar="X.npy",
                        help="test input (float, or integers in the model's input format)")
    parser.add_argument("--saturate", action="store_true",
                        help="clamp parameters that do not fit their width instead of failing")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")


def load_qmodel(path):
    from fpgacnn.quant import QModel
    try:
        return QModel.load(path)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None


def export_with_progress(qmodel, output, fmt, config, layout_file=None, options=FileOptions(),
                         vectors=None, saturate=False) -> dict:
    """`export_network` with a progress bar on stderr; returns the manifest."""
    total = count_files(qmodel, plan_ddr(qmodel, config, layout_file), vectors is not None)
    with tqdm(total=total, desc="export", unit="file", file=sys.stderr,
              disable=None) as progress:
        return export_network(qmodel, output, fmt, config, layout_file, options, vectors,
                              progress, saturate)


def run(args):
    qmodel = load_qmodel(args.qmodel)
    config = HardwareConfig.from_toml(args.config) if args.config else HardwareConfig()
    layout_file = LayoutFile.load(args.layout) if args.layout else None
    if layout_file:
        unknown = layout_file.unknown_layers(layer.name for layer in qmodel.layers)
        if unknown:
            raise UserError(f"layout file {args.layout}: [layers.{unknown[0]}] is not a layer "
                            f"of {qmodel.name}")
    options = FileOptions(args.radix, args.byteorder, args.address_every)
    vectors = load_npy(args.vectors) if args.vectors else None
    manifest = export_with_progress(qmodel, args.output, args.format, config, layout_file,
                                    options, vectors, args.saturate)
    if args.json:
        print(json.dumps(manifest, indent=1, sort_keys=True))
    else:
        size = sum(f["bytes"] for f in manifest["files"].values())
        print(f"{qmodel.name}: {len(manifest['files'])} files, {size} bytes in {args.output} "
              f"(ddr.bin {manifest['files']['ddr.bin']['bytes']} bytes)")
    return 0
