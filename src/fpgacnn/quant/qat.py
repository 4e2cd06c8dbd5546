"""Quantization-aware training: fake-quant PyTorch modules whose forward pass IS the golden model.

Each layer's forward value is computed by the golden integer kernel (`fpgacnn.golden.ops`) from
the current integer weights, so it equals the golden model bit for bit, for every op the golden
model has. Gradients flow through a float surrogate: conv and linear on dequantized values with
weights rounded by a straight-through estimator, every other op as its float op
(`ir.reference`) on the dequantized inputs; value = exact + (surrogate - surrogate.detach()).
Scales, zero points and requantization parameters stay those of the post-training model;
weights and biases train.

    >>> qat_model = QATModel(ptq_qmodel)             # from fpgacnn.quant.quantize
    >>> train_qat(qat_model, x_train, y_train, epochs=8)
    >>> qmodel = qat_model.convert()                 # a QModel with the trained integers
"""

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from fpgacnn.errors import UserError
from fpgacnn.golden.ops import KERNELS, run_layer
from fpgacnn.ir import Node, ops
from fpgacnn.ir.reference import run_node
from fpgacnn.quant.model import QLayer, QModel
from fpgacnn.quant.schemes import weight_dtype


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward (the straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


class FakeQuantLayer(nn.Module):
    """A conv or linear layer with trainable float weight/bias and fixed integer formats."""

    def __init__(self, layer: QLayer, weight: np.ndarray, bias: np.ndarray | None):
        super().__init__()
        self.layer = layer
        self.weight = nn.Parameter(torch.tensor(weight, dtype=torch.float64))
        self.bias = None if bias is None else nn.Parameter(torch.tensor(bias, dtype=torch.float64))
        shape = (-1,) + (1,) * (weight.ndim - 1)
        self.register_buffer("w_scale", torch.tensor(layer.weight_scale).reshape(shape))
        self.top = (1 << (layer.weight_bits - 1)) - 1

    def integer_weight(self) -> torch.Tensor:
        return torch.clamp(round_ste(self.weight / self.w_scale), -self.top, self.top)

    def integer_bias(self, in_scale: float) -> torch.Tensor | None:
        if self.bias is None:
            return None
        return round_ste(self.bias / (in_scale * self.w_scale.reshape(-1)))

    def frozen(self, in_scale: float) -> QLayer:
        """The QLayer with the current integers."""
        w = self.integer_weight().detach().numpy().astype(weight_dtype(self.layer.weight_bits))
        b = self.integer_bias(in_scale)
        return replace(self.layer, weight=w,
                       bias=None if b is None else b.detach().numpy().astype(np.int64))

    def surrogate(self, x_real: torch.Tensor, in_scale: float) -> torch.Tensor:
        """The layer in float on dequantized values (before requantization)."""
        w = self.integer_weight() * self.w_scale
        b = self.integer_bias(in_scale)
        b = None if b is None else b * in_scale * self.w_scale.reshape(-1)
        op = self.layer.op
        if isinstance(op, ops.Linear):
            return F.linear(x_real, w, b)
        t, l, bo, r = op.padding
        return F.conv2d(F.pad(x_real, (l, r, t, bo)), w, b, op.stride, 0, op.dilation, op.groups)


class QATModel(nn.Module):
    """The QModel's network with trainable weights; forward(x_codes) -> output codes."""

    def __init__(self, qmodel: QModel):
        super().__init__()
        if qmodel.float_graph is None:
            raise UserError(f"{qmodel.name}: QAT needs the float model inside the QModel")
        self.qmodel = qmodel
        self.fake = nn.ModuleDict()
        for layer in qmodel.layers:
            if type(layer.op) not in KERNELS:
                raise UserError(f"layer {layer.name!r}: op {layer.kind} has no golden kernel "
                                f"to train through")
            if layer.weight is not None:
                node = qmodel.float_graph.node(layer.name)
                self.fake[_key(layer.name)] = FakeQuantLayer(layer, node.params["weight"],
                                                             node.params.get("bias"))

    def forward(self, x_codes: torch.Tensor, keep: bool = False):
        """Integer codes in (float64 tensor), output codes out; equal to golden.run."""
        values = {next(iter(self.qmodel.input_shapes)): x_codes.to(torch.float64)}
        for layer in self.qmodel.layers:
            values[layer.name] = self._layer(layer, [values[t] for t in layer.inputs])
        return values if keep else values[self.qmodel.outputs[0]]

    def _layer(self, layer: QLayer, xs):
        fmts = [self.qmodel.format_of(t) for t in layer.inputs]
        fake = self.fake[_key(layer.name)] if _key(layer.name) in self.fake else None
        frozen = fake.frozen(fmts[0].scale) if fake is not None else layer
        codes = [np.rint(x.detach().numpy()).astype(np.int64) for x in xs]
        exact = run_layer(frozen, codes, fmts, self.qmodel.rounding)
        exact = torch.from_numpy(exact.astype(np.float64))
        surrogate = self._surrogate(layer, fake, xs, fmts)
        return exact + (surrogate - surrogate.detach())

    def _surrogate(self, layer, fake, xs, fmts):
        """The layer in float on dequantized inputs, as output codes (not rounded)."""
        reals = [(x - f.zero_point) * f.scale for x, f in zip(xs, fmts)]
        if fake is not None:
            real = fake.surrogate(reals[0], fmts[0].scale)
        else:
            node = self.qmodel.float_graph.node(layer.name)
            params = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in node.params.items()}
            real = run_node(Node(layer.name, layer.op, layer.inputs), reals, params)
        fout = layer.output
        return torch.clamp(real / fout.scale + fout.zero_point, layer.out_lo, layer.out_hi)

    def logits(self, x_codes: torch.Tensor) -> torch.Tensor:
        fmt = self.qmodel.format_of(self.qmodel.outputs[0])
        return (self.forward(x_codes) - fmt.zero_point) * fmt.scale

    def convert(self) -> QModel:
        """A QModel holding the trained integer weights and biases."""
        layers = []
        for layer in self.qmodel.layers:
            key = _key(layer.name)
            if key in self.fake:
                layer = self.fake[key].frozen(self.qmodel.format_of(layer.inputs[0]).scale)
            layers.append(layer)
        return replace_layers(self.qmodel, layers)


def _key(name: str) -> str:
    return name.replace(".", "__")


def replace_layers(qmodel: QModel, layers) -> QModel:
    return QModel(qmodel.name, qmodel.scheme, qmodel.mode, qmodel.rounding, qmodel.acc_bits,
                  qmodel.input_shapes, qmodel.input_formats, layers, qmodel.outputs,
                  qmodel.float_graph)


def train_qat(model: QATModel, x_codes: np.ndarray, labels: np.ndarray, epochs: int = 8,
              lr: float = 1e-3, batch: int = 64, seed: int = 0) -> list[float]:
    """Fine-tune with Adam on cross-entropy of the dequantized logits; returns epoch losses."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x_all = torch.from_numpy(np.asarray(x_codes, np.float64))
    y_all = torch.from_numpy(np.asarray(labels, np.int64))
    losses = []
    for _ in tqdm(range(epochs), desc="QAT", unit="epoch", leave=False):
        order = rng.permutation(len(x_all))
        total = 0.0
        for start in range(0, len(order), batch):
            idx = torch.from_numpy(order[start:start + batch])
            loss = F.cross_entropy(model.logits(x_all[idx]), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(order))
    return losses
