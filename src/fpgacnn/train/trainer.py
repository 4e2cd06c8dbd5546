"""Training a graph in fixed point (and, for comparison, in float32) from one initialisation.

Both runs start from the same seeded parameters and see the same mini-batches in the same
order; only the arithmetic differs.

>>> data = digits_data()                      # x_train, y_train, x_test, y_test
>>> graph = load_model("zoo:digits")
>>> fixed = train_fixed(graph, data, Widths(bits=16), TrainSettings(epochs=4))
>>> floating = train_float(graph, data, TrainSettings(epochs=4))
>>> fixed.test_accuracy - floating.test_accuracy
"""

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from fpgacnn.ir.graph import Graph
from fpgacnn.train.backward import backward
from fpgacnn.train.checks import check_trainable, check_widths, loss_input
from fpgacnn.train.fixed import Fixed, Rounder
from fpgacnn.train.forward import forward
from fpgacnn.train.loss import softmax_cross_entropy
from fpgacnn.train.settings import TrainSettings, Widths
from fpgacnn.train.sgd import SGD, MasterWeight

TRAINED_KEYS = ("weight", "bias", "slope")


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    loss: float
    train_accuracy: float
    test_accuracy: float


@dataclass
class TrainResult:
    """Per-epoch statistics and the trained parameters (float values of what was trained)."""

    mode: str
    epochs: list[EpochStats] = field(default_factory=list)
    params: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    saturations: int = 0

    @property
    def test_accuracy(self) -> float:
        return self.epochs[-1].test_accuracy


def initial_params(graph: Graph, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """He-normal weights, zero biases and 0.25 PReLU slopes from a seeded generator.

    >>> initial_params(graph, seed=0)["conv1"]["weight"].shape
    (16, 1, 3, 3)
    """
    rng = np.random.default_rng(seed)
    params = {}
    for node in graph.nodes:
        for key, shape in node.op.param_shapes(graph.input_shapes(node)).items():
            if key == "weight":
                fan_in = int(np.prod(shape[1:]))
                value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
            elif key == "bias":
                value = np.zeros(shape)
            elif key == "slope":
                value = np.full(shape, 0.25)
            else:
                continue
            params.setdefault(node.name, {})[key] = value.astype(np.float32)
    return params


def model_params(graph: Graph) -> dict[str, dict[str, np.ndarray]]:
    """The graph's own trainable parameters (to fine-tune instead of starting afresh)."""
    return {n.name: {k: np.asarray(v, np.float32) for k, v in n.params.items()
                     if k in TRAINED_KEYS} for n in graph.nodes if n.params}


def minibatches(n: int, settings: TrainSettings, epoch: int):
    """The same shuffled batches for every run with the same seed and epoch."""
    order = np.random.default_rng([settings.seed, epoch]).permutation(n)
    return [order[i:i + settings.batch] for i in range(0, n, settings.batch)]


class FixedPointModel:
    """Master weights in the update width, and forward/backward/update in fixed point."""

    def __init__(self, graph: Graph, widths: Widths, settings: TrainSettings, params):
        rng = np.random.default_rng([settings.seed, 1])
        self.graph, self.widths = graph, widths
        self.output = loss_input(graph)
        self.act = Rounder(widths.bits, widths.rounding, rng)
        self.grad = Rounder(widths.grad, widths.rounding, rng)
        self.nearest = Rounder(widths.bits)
        self.sgd = SGD(settings.lr, settings.momentum, settings.weight_decay, widths.update, rng)
        self.masters = {node: {k: MasterWeight.from_float(v, widths.update_bits)
                               for k, v in p.items()} for node, p in params.items()}

    def weights(self, rounder: Rounder) -> dict[str, dict[str, Fixed]]:
        return {node: {k: m.narrowed(rounder) for k, m in p.items()}
                for node, p in self.masters.items()}

    def logits(self, x) -> Fixed:
        """Inference: nearest rounding throughout."""
        tape = forward(self.graph, self.weights(self.nearest), self.nearest.float(x),
                       self.nearest, stop_at=self.output)
        return tape.values[self.output]

    def step(self, x, labels) -> tuple[float, int]:
        """One SGD step on a batch; returns (loss, number correct)."""
        params = self.weights(self.act)
        tape = forward(self.graph, params, self.act.float(x), self.act, stop_at=self.output)
        loss, correct, d_logits = softmax_cross_entropy(tape.values[self.output], labels,
                                                        self.grad)
        grads = backward(self.graph, params, tape, d_logits, self.grad, self.output)
        for node, p in self.masters.items():
            for key, master in p.items():
                self.sgd.step(master, grads.params[node][key])
        return loss, correct

    def float_params(self) -> dict[str, dict[str, np.ndarray]]:
        """The trained weights as used by the forward pass (weight width), as float values."""
        return {node: {k: w.to_float().astype(np.float32) for k, w in p.items()}
                for node, p in self.weights(self.nearest).items()}

    @property
    def saturations(self) -> int:
        return sum(m.saturations for p in self.masters.values() for m in p.values())


def accuracy(logits_fn, x, y, chunk: int = 512) -> float:
    correct = 0
    for i in range(0, len(x), chunk):
        correct += int(np.count_nonzero(logits_fn(x[i:i + chunk]).argmax(axis=1)
                                        == y[i:i + chunk]))
    return correct / len(x)


@contextlib.contextmanager
def one_thread():
    """Run the block on one torch thread: the kernels here are small, and threads only fight."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_epochs(step, evaluate, data, settings: TrainSettings, mode: str, on_epoch=None,
               progress: bool = False) -> TrainResult:
    """The loop shared by both kinds of training: `step(x, y) -> (loss, correct)`."""
    result = TrainResult(mode)
    with one_thread():
        for epoch in range(1, settings.epochs + 1):
            result.epochs.append(_epoch(step, evaluate, data, settings, mode, epoch, progress))
            if on_epoch is not None:
                on_epoch(mode, result.epochs[-1])
    return result


def _epoch(step, evaluate, data, settings, mode, epoch, progress) -> EpochStats:
    x_train, y_train, x_test, y_test = data
    total_loss, total_correct = 0.0, 0
    bar = tqdm(minibatches(len(x_train), settings, epoch), unit="batch", leave=False,
               desc=f"{mode} epoch {epoch}/{settings.epochs}", disable=not progress)
    for idx in bar:
        loss, correct = step(x_train[idx], y_train[idx])
        total_loss += loss * len(idx)
        total_correct += correct
        bar.set_postfix(loss=f"{loss:.3f}")
    return EpochStats(epoch, total_loss / len(x_train), total_correct / len(x_train),
                      evaluate(x_test, y_test))


def train_fixed(graph: Graph, data, widths: Widths, settings: TrainSettings, params=None,
                on_epoch=None, progress: bool = False) -> TrainResult:
    """Train `graph` in fixed point; `params` default to `initial_params(graph, seed)`."""
    check_trainable(graph)
    check_widths(graph, widths, settings.batch)
    model = FixedPointModel(graph, widths, settings,
                            params or initial_params(graph, settings.seed))
    result = run_epochs(model.step, lambda x, y: accuracy(lambda v: model.logits(v).value, x, y),
                        data, settings, f"fixed{widths.bits}", on_epoch, progress)
    result.params = model.float_params()
    result.saturations = model.saturations
    return result
