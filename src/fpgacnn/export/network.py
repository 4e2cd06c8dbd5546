"""Export a whole quantized network: per-layer parameter files, the DDR image and its map,
test vectors from the golden model, and manifest.json.

>>> report = export_network(qmodel, "out", "coe", HardwareConfig(), vectors=x)
>>> sorted(report["files"])[:2]
['conv1.bias.coe', 'conv1.multiplier.coe']
"""

import dataclasses
import hashlib
import json
import re
import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fpgacnn import golden
from fpgacnn.atomic import atomic_open, atomic_path
from fpgacnn.config import HardwareConfig
from fpgacnn.export.ddr import batch_one, fmap_tensors, param_arrays, plan_ddr, write_at
from fpgacnn.export.digest import Digests
from fpgacnn.export.formats import FileOptions, format_module
from fpgacnn.export.layoutfile import LayoutFile
from fpgacnn.export.tensorio import write_rows
from fpgacnn.export.words import to_bytes

MANIFEST_FORMAT = "fpgacnn-export-1"


def file_stem(name: str) -> str:
    """A file name from a tensor name: '/conv1/Conv_output_0' -> '_conv1_Conv_output_0'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def integer_input(qmodel, x) -> np.ndarray:
    """Test input as the model's integers: floats are quantized, integers taken as they are."""
    x = np.asarray(x)
    return x.astype(np.int64) if np.issubdtype(x.dtype, np.integer) else \
        golden.quantize_input(qmodel, x)


def export_network(qmodel, out_dir, fmt: str, config: HardwareConfig = HardwareConfig(),
                   layout_file: LayoutFile | None = None, options: FileOptions = FileOptions(),
                   vectors=None, progress=None, saturating: bool = False) -> dict:
    """Write everything into `out_dir`; returns the manifest (also written as manifest.json).

    `vectors`: a test input (float or integer, batch N); then `vectors/<tensor>.<fmt>` holds
    every layer's input and output from the golden model, the DDR image holds its first
    sample in the input region, and `ddr_expected.bin` is the image with every feature map
    region holding the golden value of that sample. `progress`: a tqdm-like object updated
    once per file. `saturating`: clamp parameters that do not fit their layout's width instead
    of failing (feature maps always fit: their width is checked against the model's).
    """
    module = format_module(fmt)
    out = Path(out_dir)
    ddr_map = plan_ddr(qmodel, config, layout_file)
    x_int = None if vectors is None else integer_input(qmodel, vectors)
    files = _Written(out, Digests(), progress)
    try:
        with atomic_open(out / "ddr.bin", "wb") as f, _ImageWriter(f, ddr_map.size) as image:
            for region, array in param_arrays(qmodel, ddr_map):
                # once, for both the layer's file and the image
                rows = region.rows_of(array, saturating)
                path = out / f"{file_stem(region.name)}{module.SUFFIX}"
                files.add(write_rows(path, rows, region.layout, fmt, options, region.name,
                                     files.digests), region.name, region.kind)
                image.write(region.offset, to_bytes(rows, region.geometry, "little"))
                files.throttle(image)
            inputs = [(ddr_map.region(f"fmap.{t}"), value)
                      for t, value in batch_one(qmodel, x_int).items()]
            for region, value in sorted(inputs, key=lambda pair: pair[0].offset):
                image.write(region.offset, region.encode(value))
        files.add([out / "ddr.bin"], "ddr image", "ddr", image.hexdigest())
        ddr_map.save(out / "ddr_map.json")
        files.add([out / "ddr_map.json"], "ddr map", "ddr")
        if x_int is not None:
            _write_vectors(qmodel, ddr_map, x_int, out, module.SUFFIX, fmt, options, files)
        manifest = {"format": MANIFEST_FORMAT, "model": qmodel.name, "file_format": fmt,
                    "options": dataclasses.asdict(options), "config": dataclasses.asdict(config),
                    "vectors": None if x_int is None else list(x_int.shape),
                    "files": files.entries()}
    finally:
        files.digests.close()
    with atomic_open(out / "manifest.json") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return manifest


class _ImageWriter:
    """ddr.bin written region by region in offset order by a background thread that also
    hashes it; the gaps between regions are left as holes (zeros) and hashed as zeros."""

    ZEROS = bytes(1 << 20)

    def __init__(self, f, size: int):
        self.f, self.size = f, size
        self.digest = hashlib.sha256()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ddr.bin")
        self.pending = []
        self.cursor = 0  # the end of what was submitted
        self.hashed = 0  # the end of what was hashed (in the worker)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None:
            self.pending.append(self.executor.submit(self._finish))
        self.executor.shutdown(wait=True)  # before the file is closed, even on an error
        if kind is None:
            for future in self.pending:
                future.result()

    def write(self, offset: int, data) -> None:
        if offset < self.cursor:
            raise ValueError(f"DDR image: a write at {offset} after one ending at {self.cursor}")
        self.cursor = offset + len(data)
        self.pending.append(self.executor.submit(self._write, offset, data))

    def mark(self):
        """A future that is done when everything submitted so far is written and hashed."""
        return self.pending[-1] if self.pending else None

    def hexdigest(self) -> str:
        return self.digest.hexdigest()

    def _write(self, offset: int, data) -> None:
        self._hash_zeros(offset)
        write_at(self.f, offset, data)
        self.digest.update(data)
        self.hashed = offset + len(data)

    def _finish(self) -> None:
        self._hash_zeros(self.size)
        self.f.truncate(self.size)

    def _hash_zeros(self, end: int) -> None:
        while self.hashed < end:
            step = min(end - self.hashed, len(self.ZEROS))
            self.digest.update(memoryview(self.ZEROS)[:step])
            self.hashed += step


class _Written:
    """The files written so far and their SHA-256 (computed in the background)."""

    def __init__(self, out: Path, digests: Digests, progress):
        self.out, self.digests, self.progress = out, digests, progress
        self.files = {}
        self.marks = deque()

    def add(self, paths, tensor: str, kind: str, sha256: str | None = None) -> None:
        """Record `paths`; those not written through `self.digests` nor given `sha256` are
        hashed by reading them."""
        for p in paths:
            name = str(Path(p).relative_to(self.out))
            if sha256 is None and p not in self.digests:
                self.digests.file(p)
            self.files[name] = ({"tensor": tensor, "kind": kind, "bytes": Path(p).stat().st_size},
                                sha256 or Path(p))
        if self.progress is not None:
            self.progress.update(1)

    def throttle(self, image: _ImageWriter) -> None:
        """Wait until the buffers of the region before the last one are written and hashed, so
        that at most two regions' bytes are held at a time."""
        self.marks.append((self.digests.mark(), image.mark()))
        if len(self.marks) > 1:
            for future in self.marks.popleft():
                if future is not None:
                    future.result()

    def entries(self) -> dict:
        return {name: info | {"sha256": digest if isinstance(digest, str)
                              else self.digests.hexdigest(digest)}
                for name, (info, digest) in sorted(self.files.items())}


def _write_vectors(qmodel, ddr_map, x_int, out, suffix, fmt, options, files) -> None:
    """Every tensor of the golden model in its feature-map layout, and ddr_expected.bin."""
    values = golden.run(qmodel, x_int, keep=True)
    write_expected_image(out, ddr_map, {t: v[:1] for t, v in values.items()})
    files.add([out / "ddr_expected.bin"], "ddr image with golden feature maps", "ddr")
    for tensor in fmap_tensors(qmodel):
        region = ddr_map.region(f"fmap.{tensor}")
        value = values[tensor]
        value = value.reshape(value.shape + (1, 1)) if value.ndim == 2 else value
        path = out / "vectors" / f"{file_stem(tensor)}{suffix}"
        rows = region.layout.rows(value, tensor)
        files.add(write_rows(path, rows, region.layout, fmt, options, tensor, files.digests),
                  tensor, "vector")


def write_expected_image(out: Path, ddr_map, fmaps: dict) -> None:
    """ddr_expected.bin: ddr.bin with every feature map region holding the golden value, the
    image an engine that ran the whole network should leave behind."""
    with atomic_path(out / "ddr_expected.bin") as tmp:
        shutil.copyfile(out / "ddr.bin", tmp)
        with open(tmp, "r+b") as f:
            for tensor, value in fmaps.items():
                region = ddr_map.region(f"fmap.{tensor}")
                write_at(f, region.offset, region.encode(value))


def count_files(qmodel, ddr_map, with_vectors: bool) -> int:
    """How many progress steps export_network takes (for a progress bar)."""
    params = sum(1 for _ in param_arrays(qmodel, ddr_map))
    return params + 2 + (len(fmap_tensors(qmodel)) + 1 if with_vectors else 0)
