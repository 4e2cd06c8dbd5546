"""The ONNX frontend and the float reference executor on the onnx package's light models.

    .venv/bin/python bench/frontends_onnx.py [NAME ...]

For each light model (224x224, batch 1): the time `from_onnx` takes to import it, the time of
one inference with `run_float` on the simplified graph, and the same inference with the named
peer, onnxruntime (CPU provider); both on one thread, best of 3 runs; the ratio of the two
inference times; and the largest difference between the two outputs relative to the largest
output value. Input: the one onnx's backend test runner uses, arange(n) / n.
"""

import os
import sys
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch

from fpgacnn.errors import UserError
from fpgacnn.frontends.onnx import from_onnx
from fpgacnn.ir import run_float, simplify

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
MODELS = ["bvlc_alexnet", "squeezenet", "resnet50", "inception_v1", "inception_v2",
          "densenet121", "zfnet512", "vgg19", "shufflenet"]


def best_of(runs, fn):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def bench(name: str) -> str:
    path = os.path.join(LIGHT, f"light_{name}.onnx")
    try:
        import_time, graph = best_of(1, lambda: from_onnx(path))
    except UserError as e:
        return f"| {name} | refused: {str(e).split(': ', 1)[1][:70]} | | | | |"
    graph = simplify(graph)
    ((input_name, shape),) = graph.inputs.items()
    n = int(np.prod(shape))
    x = (np.arange(n).reshape(shape) / n).astype(np.float32)
    ours_time, ours = best_of(3, lambda: run_float(graph, x)[graph.outputs[0]])
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3  # the old light files list unused initializers
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    peer_time, (peer, *_) = best_of(3, lambda: session.run(None, {input_name: x}))
    error = np.abs(ours.reshape(peer.shape) - peer).max() / np.abs(peer).max()
    return (f"| {name} | {import_time:.2f} | {ours_time:.3f} | {peer_time:.3f} | "
            f"{ours_time / peer_time:.2f} | {error:.1e} |")


def main(names):
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    print("| model | import s | run_float s | onnxruntime s | ratio | max rel. diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names or MODELS:
        print(bench(name), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
