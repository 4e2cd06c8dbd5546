"""Export speed and memory, against named peers in the same run.

    .venv/bin/python bench/export_speed.py

1. AlexNet conv5 weights (256x256x3x3, 16-bit, radix 2, seed 000's order) as a .coe: seed 000's
   nested-loop writer (six Python loops over a torch tensor, one d2b string per value), and the
   same loops over a numpy array, against `write_tensor`.
2. The whole AlexNet export (`export_network`, format bin: per-layer files + DDR image + map +
   manifest, N bytes in all) against `ndarray.tofile` of one array of N bytes; wall and CPU
   time, and the SHA-256 of N bytes alone (which the manifest cannot do without).
3. Peak memory of that export (tracemalloc) against the largest tensor of the model.
"""

import hashlib
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from fpgacnn import zoo
from fpgacnn.config import HardwareConfig
from fpgacnn.export import FileOptions, Layout, write_tensor
from fpgacnn.export.network import export_network
from fpgacnn.quant import QuantConfig, quantize

SEED_LAYOUT = Layout("(k j) (p i) x y -> (p k x y) (i j)", {"j": 2, "i": 16}, bits=16,
                     msb_first=True)


def d2b(value):
    return format(int(value) & 0xFFFF, "016b")


def seed_000_writer(weight, path):
    """Seed 000's writer as the seed runs it: six Python loops over a torch tensor, each value
    indexed, scaled by 2**8 and converted with `.numpy()` before d2b."""
    with open(path, "w") as f:
        f.write("memory_initialization_radix=2;\n")
        f.write("memory_initialization_vector =\n")
        for p in range(16):
            for k in range(128):
                for x in range(3):
                    for y in range(3):
                        for i in range(16):
                            for j in range(2):
                                f.write(d2b((weight[2 * k + j, 16 * p + i, x, y] * (2**8))
                                            .numpy()))
                        f.write(",\n")


def numpy_loop_writer(w, path):
    """The same loops over an integer numpy array: a stricter peer than the seed itself."""
    with open(path, "w") as f:
        f.write("memory_initialization_radix=2;\n")
        f.write("memory_initialization_vector =\n")
        for p in range(16):
            for k in range(128):
                for x in range(3):
                    for y in range(3):
                        for i in range(16):
                            for j in range(2):
                                f.write(d2b(w[2 * k + j, 16 * p + i, x, y]))
                        f.write(",\n")


def best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_conv5(directory: Path) -> None:
    w = np.random.default_rng(0).integers(-2**15, 2**15, size=(256, 256, 3, 3))
    weight = torch.from_numpy(w.astype(np.float32) / 2**8)  # the seed's float weights
    seed = best_of(1, lambda: seed_000_writer(weight, directory / "seed.coe"))
    loops = best_of(1, lambda: numpy_loop_writer(w, directory / "loops.coe"))
    ours = best_of(5, lambda: write_tensor(directory / "ours.coe", w, SEED_LAYOUT, "coe",
                                           FileOptions(radix=2), "conv5.weight"))
    our_words = (directory / "ours.coe").read_text().split("=\n", 1)[1][:-2].split(",\n")
    for peer in ("seed.coe", "loops.coe"):
        words = (directory / peer).read_text().split("=\n", 1)[1].split(",\n")[:-1]
        assert words == our_words, f"{peer} and fpgacnn disagree"
    print(f"conv5 .coe radix 2 (18432 words of 512 bits): fpgacnn {ours * 1000:.0f} ms; "
          f"seed-000 writer {seed:.1f} s, speed-up {seed / ours:.0f}x; nested loops over numpy "
          f"{loops:.2f} s, speed-up {loops / ours:.0f}x")


def alexnet_qmodel():
    graph = zoo.load("alexnet", input_shape=(1, 3, 224, 224))
    calib = np.random.default_rng(0).normal(size=(1, 3, 224, 224)).astype(np.float32)
    return quantize(graph, calib, QuantConfig(scheme="pow2"))


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process, all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_alexnet(directory: Path, repeats: int = 7) -> None:
    print("quantizing AlexNet (not timed) ...", file=sys.stderr)
    qmodel = alexnet_qmodel()
    config = HardwareConfig()
    out = directory / "alexnet"
    export_network(qmodel, out, "bin", config)
    files = [p for p in out.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    ddr = (out / "ddr.bin").stat().st_size
    shutil.rmtree(out)
    blob = np.ones(total, dtype=np.uint8)
    # alternate fpgacnn and the peer, each into fresh files deleted after the run (untimed), so
    # that both see the same load and neither leaves dirty pages behind for the other
    ours, peer = [], []
    for k in range(repeats):
        ours.append(timed(lambda: export_network(qmodel, out, "bin", config)))
        shutil.rmtree(out)
        peer.append(timed(lambda: blob.tofile(directory / "blob.bin")))
        (directory / "blob.bin").unlink()
    hashing = min(timed(lambda: hashlib.sha256(blob).digest()) for _ in range(repeats))
    ours_wall, ours_cpu = (min(column) for column in zip(*ours))
    peer_wall, peer_cpu = (min(column) for column in zip(*peer))
    print(f"AlexNet export (bin): {total:,} bytes in {len(files)} files (ddr.bin {ddr:,}); "
          f"ndarray.tofile writes the same {total:,} bytes in one file. Best of {repeats}:")
    print(f"  wall: fpgacnn {ours_wall:.3f} s, ndarray.tofile {peer_wall:.3f} s, "
          f"ratio {ours_wall / peer_wall:.1f}x")
    print(f"  CPU (all threads): fpgacnn {ours_cpu:.3f} s, ndarray.tofile {peer_cpu:.3f} s, "
          f"ratio {ours_cpu / peer_cpu:.1f}x")
    print(f"  SHA-256 of the same {total:,} bytes in memory (the manifest's share, one "
          f"thread): {hashing[0]:.3f} s = {hashing[0] / peer_wall:.1f}x the peer's wall time")
    del blob
    largest = max((layer.weight for layer in qmodel.layers if layer.weight is not None),
                  key=lambda a: a.size)
    tracemalloc.start()
    export_network(qmodel, directory / "alexnet_traced", "bin", config)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"AlexNet export peak memory (tracemalloc) {peak / 1e6:.1f} MB; largest tensor "
          f"{largest.shape} {largest.dtype}: {largest.nbytes / 1e6:.1f} MB, ratio "
          f"{peak / largest.nbytes:.2f}x")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        bench_conv5(Path(tmp))
        bench_alexnet(Path(tmp))


if __name__ == "__main__":
    main()
