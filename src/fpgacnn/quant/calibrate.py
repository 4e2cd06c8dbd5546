"""Calibration: run the float model on sample inputs and record every tensor's statistics."""

import numpy as np
from tqdm import tqdm

from fpgacnn.errors import UserError
from fpgacnn.ir import Graph, run_float
from fpgacnn.quant.observers import TensorStats


def load_calibration(graph: Graph, path=None, random_count: int | None = None,
                     seed: int = 0) -> np.ndarray:
    """Sample inputs: an .npy file (N, C, H, W) or `random_count` seeded normal inputs.

    >>> x = load_calibration(graph, random_count=8)
    """
    (name, shape), = graph.inputs.items()
    if path is not None:
        try:
            data = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise UserError(f"calibration file {path}: no such file") from None
        except (OSError, ValueError) as e:
            raise UserError(f"calibration file {path}: not a .npy array ({e})") from None
        return check_calibration(graph, data, str(path))
    count = 16 if random_count is None else random_count
    if count < 1:
        raise UserError(f"--calib-random must be at least 1, got {count}")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((count,) + tuple(shape[1:])).astype(np.float32)


def check_calibration(graph: Graph, data, what: str = "calibration data") -> np.ndarray:
    (name, shape), = graph.inputs.items()
    data = np.asarray(data)
    if data.ndim != len(shape) or tuple(data.shape[1:]) != tuple(shape[1:]):
        raise UserError(f"{what}: shape {data.shape} does not match input {name!r} of shape "
                        f"(N,) + {tuple(shape[1:])}")
    if not np.issubdtype(data.dtype, np.number) or not np.isfinite(data).all():
        raise UserError(f"{what}: values must be finite numbers")
    return data.astype(np.float32)


def collect_stats(graph: Graph, data: np.ndarray, batch: int | None = None,
                  seed: int = 0) -> dict[str, TensorStats]:
    """Statistics of every tensor (graph inputs and node outputs) over `data`."""
    (name, shape), = graph.inputs.items()
    batch = batch or 32
    rng = np.random.default_rng(seed)
    stats: dict[str, TensorStats] = {}
    starts = range(0, len(data), batch)
    for start in tqdm(starts, desc="calibrating", unit="batch", leave=False,
                      disable=len(starts) < 4):
        chunk = data[start:start + batch]
        graph_b = with_batch(graph, len(chunk))
        values = run_float(graph_b, chunk, keep=True)
        for tensor, array in values.items():
            stats.setdefault(tensor, TensorStats()).update(array, rng)
    return stats


def with_batch(graph: Graph, n: int) -> Graph:
    """The same graph with batch size `n`."""
    (name, shape), = graph.inputs.items()
    if shape[0] == n:
        return graph
    return Graph(graph.name, {name: (n,) + tuple(shape[1:])}, graph.nodes, graph.outputs)
