"""Golden model vs PyTorch's fbgemm int8 path on the same quantized model and batch.

    .venv/bin/python bench/golden_speed.py                 # AlexNet, VGG16, YOLOv3-tiny; batch 1, 16
    .venv/bin/python bench/golden_speed.py --models alexnet --batches 1 --repeats 3
    .venv/bin/python bench/golden_speed.py --threads 1     # both sides on one thread
    .venv/bin/python bench/golden_speed.py --other-modes gemmlowp single_round shift

Both sides run the same QModel (affine, 8 bits, per-channel weights, float32 requantization
mode, whose conv/linear layers equal fbgemm's bit for bit): the golden model through
`fpgacnn.golden.run`, the peer as torch.ao quantized modules built from the same integers.
Printed: milliseconds per batch for each (best of --repeats calls, and of as many as fill
--min-seconds, after a warm-up call) and the ratio golden / fbgemm (target <= 1.0); in
brackets the same for CPU time of all threads (with the golden model's waiting threads
spinning, it counts their spin too); after each model, the load average (other
work on the machine slows the two sides unequally, so it belongs beside the figures).
"""

import argparse
import os
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from fpgacnn import golden
from fpgacnn.frontends import load_model
from fpgacnn.ir import ops
from fpgacnn.quant import QuantConfig, quantize

warnings.filterwarnings("ignore")
SHAPES = {"alexnet": (3, 224, 224), "vgg16": (3, 224, 224), "yolov3-tiny": (3, 416, 416)}


def _qweight(layer):
    w = torch.from_numpy(layer.weight.astype(np.int8))
    scales = torch.from_numpy(layer.weight_scale.astype(np.float64))
    if scales.numel() == 1:
        return torch._make_per_tensor_quantized_tensor(w, float(scales[0]), 0)
    return torch._make_per_channel_quantized_tensor(
        w, scales, torch.zeros(len(scales), dtype=torch.long), 0)


def _float_bias(layer, fin):
    if layer.bias is None:
        return None
    return torch.from_numpy((layer.bias * fin.scale * layer.weight_scale).astype(np.float32))


class FbgemmModel:
    """The QModel as torch.ao quantized modules (fbgemm kernels)."""

    def __init__(self, qm):
        self.qm = qm
        self.steps = [self._step(layer) for layer in qm.layers]

    def _step(self, layer):
        op, fin, fout = layer.op, self.qm.format_of(layer.inputs[0]), layer.output
        if isinstance(op, (ops.Conv2d, ops.Linear)):
            relu = isinstance(op.activation, ops.ReLU)
            leaky = op.activation.alpha if isinstance(op.activation, ops.LeakyReLU) else None
            if isinstance(op, ops.Conv2d):
                t, l, b, r = op.padding
                assert (t, l) == (b, r), "asymmetric conv padding"
                cls = torch.ao.nn.intrinsic.quantized.ConvReLU2d if relu else \
                    torch.ao.nn.quantized.Conv2d
                mod = cls(op.in_channels, op.out_channels, op.kernel, op.stride, (t, l),
                          op.dilation, op.groups)
            else:
                cls = torch.ao.nn.intrinsic.quantized.LinearReLU if relu else \
                    torch.ao.nn.quantized.Linear
                mod = cls(op.in_features, op.out_features)
            mod.set_weight_bias(_qweight(layer), _float_bias(layer, fin))
            mod.scale, mod.zero_point = fout.scale, fout.zero_point
            if leaky is None:
                return mod
            qF = torch.ao.nn.quantized.functional
            return lambda x: qF.leaky_relu(mod(x), leaky, fout.scale, fout.zero_point)
        if isinstance(op, ops.MaxPool):
            t, l, b, r = op.padding
            if (t, l) == (b, r):
                return lambda x: F.max_pool2d(x, op.kernel, op.stride, (t, l),
                                              ceil_mode=op.ceil_mode)
            return lambda x: F.max_pool2d(_replicate_pad(x, b, r), op.kernel, op.stride)
        if isinstance(op, ops.LeakyReLU):
            qF = torch.ao.nn.quantized.functional
            return lambda x: qF.leaky_relu(x, op.alpha, fout.scale, fout.zero_point)
        if isinstance(op, ops.Flatten):
            return lambda x: x.reshape(x.shape[0], -1)
        if isinstance(op, ops.Upsample):
            return lambda x: F.interpolate(x, scale_factor=op.scale, mode="nearest")
        if isinstance(op, ops.Concat):
            return lambda *xs: torch.ops.quantized.cat(list(xs), op.axis, fout.scale,
                                                       fout.zero_point)
        if op.host:
            return lambda x: torch.sigmoid(x.dequantize())
        raise NotImplementedError(op.kind)

    def __call__(self, x):
        values = {next(iter(self.qm.input_shapes)): x}
        for layer, step in zip(self.qm.layers, self.steps):
            values[layer.name] = step(*[values[t] for t in layer.inputs])
        return values[self.qm.outputs[0]]


def _replicate_pad(x, bottom, right):
    """Darknet's size-2 stride-1 pool pads bottom/right; the max is unchanged by replication."""
    h, w = x.shape[2:]
    rows = torch.cat([torch.arange(h), torch.full((bottom,), h - 1)])
    cols = torch.cat([torch.arange(w), torch.full((right,), w - 1)])
    return x[:, :, rows][:, :, :, cols]


def _time(fn, repeats, min_seconds):
    """Best of at least `repeats` calls, and of as many as fill min_seconds, after a warm-up:
    (wall seconds, CPU seconds of all threads)."""
    fn()
    wall = cpu = float("inf")
    calls = spent = 0
    while calls < repeats or spent < min_seconds:
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        elapsed = time.perf_counter() - w0
        wall, cpu = min(wall, elapsed), min(cpu, time.process_time() - c0)
        calls, spent = calls + 1, spent + elapsed
    return wall, cpu


def bench(name, batches, repeats, min_seconds, other_modes=()):
    shape = SHAPES[name]
    graph = load_model(f"zoo:{name}", input_shape=(1,) + shape)
    calib = np.random.default_rng(0).standard_normal((2,) + shape).astype(np.float32)
    qm = quantize(graph, calib, QuantConfig(scheme="affine", bits=8, mode="float32",
                                            per_channel=True))
    peer = FbgemmModel(qm)
    fin = qm.input_formats[next(iter(qm.input_formats))]
    rows = []
    for batch in batches:
        x = np.random.default_rng(1).standard_normal((batch,) + shape).astype(np.float32)
        x_int = golden.quantize_input(qm, x)
        qx = torch.quantize_per_tensor(torch.from_numpy(x), fin.scale, fin.zero_point,
                                       torch.quint8)
        with torch.no_grad():
            (g_wall, g_cpu), (f_wall, f_cpu) = (
                _time(lambda: golden.run(qm, x_int), repeats, min_seconds),
                _time(lambda: peer(qx), repeats, min_seconds))
        rows.append((name, batch, g_wall, f_wall, g_wall / f_wall, g_cpu / f_cpu))
        print(f"{name:12} batch {batch:3}  golden {g_wall * 1e3:8.2f} ms  fbgemm "
              f"{f_wall * 1e3:8.2f} ms  ratio {g_wall / f_wall:5.2f}   (CPU ms: "
              f"{g_cpu * 1e3:8.2f} / {f_cpu * 1e3:8.2f} = {g_cpu / f_cpu:5.2f})", flush=True)
        for mode in other_modes:
            _print_other_mode(graph, calib, x, mode, g_wall, repeats, min_seconds)
    return rows


def _print_other_mode(graph, calib, x, mode, float32_wall, repeats, min_seconds):
    """The golden model alone in another requantization mode (fbgemm has only float32)."""
    config = QuantConfig(scheme="pow2", bits=8) if mode == "shift" else \
        QuantConfig(scheme="affine", bits=8, mode=mode, per_channel=True)
    qm = quantize(graph, calib, config)
    x_int = golden.quantize_input(qm, x)
    wall, _ = _time(lambda: golden.run(qm, x_int), repeats, min_seconds)
    print(f"{'':12} {'':9}  golden {wall * 1e3:8.2f} ms in {mode} mode: "
          f"{wall / float32_wall:5.2f} x float32", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help="repeat each side at least this long (best of all calls)")
    parser.add_argument("--other-modes", nargs="*", default=[],
                        choices=["gemmlowp", "single_round", "shift"],
                        help="also time the golden model alone in these modes (shift: pow2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both sides (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.quantized.engine = "fbgemm"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.models:
        bench(name, args.batches, args.repeats, args.min_seconds, args.other_modes)
        print("load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()),
              flush=True)


if __name__ == "__main__":
    main()
