"""The float32 baseline: the same graph, initialisation, batches and SGD, in PyTorch.

>>> result = train_float(load_model("zoo:digits"), digits_data(), TrainSettings(epochs=4))
"""

import numpy as np
import torch
import torch.nn.functional as F

from fpgacnn.ir.graph import Graph
from fpgacnn.ir.reference import run_node
from fpgacnn.train.checks import check_trainable, loss_input
from fpgacnn.train.settings import TrainSettings
from fpgacnn.train.trainer import (TRAINED_KEYS, TrainResult, accuracy, initial_params,
                                   run_epochs)


class FloatModel:
    def __init__(self, graph: Graph, params):
        self.graph = graph
        self.output = loss_input(graph)
        self.params = {n.name: {k: torch.tensor(v, dtype=torch.float32)
                                for k, v in n.params.items()} for n in graph.nodes}
        for node, p in params.items():
            for key, value in p.items():
                self.params[node][key] = torch.tensor(value, dtype=torch.float32,
                                                      requires_grad=True)

    def trainable(self) -> list[torch.Tensor]:
        return [t for p in self.params.values() for t in p.values() if t.requires_grad]

    def logits(self, x) -> torch.Tensor:
        (name,) = self.graph.inputs
        values = {name: torch.as_tensor(np.asarray(x, np.float32))}
        for node in self.graph.nodes:
            values[node.name] = run_node(node, [values[t] for t in node.inputs],
                                         self.params[node.name])
            if node.name == self.output:
                break
        return values[self.output]


def train_float(graph: Graph, data, settings: TrainSettings, params=None, on_epoch=None,
                progress: bool = False) -> TrainResult:
    """Train `graph` in float32 with torch.optim.SGD from `initial_params(graph, seed)`."""
    check_trainable(graph)
    model = FloatModel(graph, params or initial_params(graph, settings.seed))
    optimizer = torch.optim.SGD(model.trainable(), lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay)

    def step(x, y):
        logits = model.logits(x)
        loss = F.cross_entropy(logits, torch.as_tensor(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item(), int((logits.argmax(1).numpy() == y).sum())

    def evaluate(x, y):
        with torch.no_grad():
            return accuracy(lambda v: model.logits(v).numpy(), x, y)

    result = run_epochs(step, evaluate, data, settings, "float", on_epoch, progress)
    result.params = {node: {k: t.detach().numpy().copy() for k, t in p.items()
                            if t.requires_grad and k in TRAINED_KEYS}
                     for node, p in model.params.items()}
    result.params = {k: v for k, v in result.params.items() if v}
    return result
