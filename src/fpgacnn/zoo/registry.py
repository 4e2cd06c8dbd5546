"""The zoo's table of models and the functions that build them at a chosen input size."""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from fpgacnn.errors import UserError
from fpgacnn.ir import Graph
from fpgacnn.zoo import classic, mtcnn, resnet, squeezenet
from fpgacnn.zoo.adaptive import adaptive_pool_inputs, fix_adaptive_pools
from fpgacnn.zoo.digits import DigitsNet, digits_data, trained_digits_net
from fpgacnn.zoo.init import calibrate_batchnorm, seed_weights

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class ZooModel:
    """One zoo entry. `build` makes the untrained nn.Module (None for Darknet-defined models)."""

    name: str
    default_shape: tuple[int, int, int, int]
    smallest_shape: tuple[int, int, int, int]
    build: Callable[[], nn.Module] | None
    seed: int  # of the random weights (Darknet models: the Darknet frontend's own seed)
    summary: str
    multiple_of: int = 1  # input height and width must be a multiple of this


MODELS = {m.name: m for m in [
    ZooModel("digits", (1, 1, 8, 8), (1, 1, 8, 8), DigitsNet, 0,
             "small CNN trained on scikit-learn's 8x8 digits (bundled weights)"),
    ZooModel("alexnet", (1, 3, 224, 224), (1, 3, 63, 63), classic.alexnet, 1,
             "AlexNet, torchvision layout"),
    ZooModel("vgg16", (1, 3, 224, 224), (1, 3, 32, 32), classic.vgg16, 2,
             "VGG16, torchvision layout"),
    ZooModel("squeezenet1_1", (1, 3, 224, 224), (1, 3, 17, 17), squeezenet.squeezenet1_1, 3,
             "SqueezeNet 1.1, torchvision layout (fire modules, concat, global average pool)"),
    ZooModel("resnet18", (1, 3, 224, 224), (1, 3, 1, 1), resnet.resnet18, 4,
             "ResNet-18, torchvision layout (BasicBlocks, residual add)"),
    ZooModel("mtcnn-pnet", (1, 3, 12, 12), (1, 3, 11, 11), mtcnn.PNet, 5,
             "MTCNN proposal net (PReLU, ceil-mode pooling, softmax + box heads)"),
    ZooModel("mtcnn-rnet", (1, 3, 24, 24), (1, 3, 22, 22), mtcnn.RNet, 6,
             "MTCNN refinement net (24x24 crops)"),
    ZooModel("mtcnn-onet", (1, 3, 48, 48), (1, 3, 42, 42), mtcnn.ONet, 7,
             "MTCNN output net (48x48 crops; softmax, box and landmark heads)"),
    ZooModel("yolov3-tiny", (1, 3, 416, 416), (1, 3, 32, 32), None, 8,
             "YOLOv3-tiny from its Darknet cfg (route, upsample, leaky, yolo heads)", 32),
]}


def names() -> list[str]:
    """The names of all zoo models, sorted: `names()[:2] == ["alexnet", "digits"]`."""
    return sorted(MODELS)


def entry(name: str) -> ZooModel:
    """The zoo entry `name`; UserError listing the known names when there is none."""
    if name not in MODELS:
        raise UserError(f"zoo:{name}: no such zoo model; known: {', '.join(names())}")
    return MODELS[name]


def torch_module(name: str, input_shape=None) -> tuple[nn.Module, torch.Tensor]:
    """`(module in eval mode, example input)` of a PyTorch-defined zoo model.

    With `input_shape`, adaptive pools that are not global become their fixed equivalent at
    that size (same function, see fpgacnn.zoo.adaptive).
    >>> module, x = torch_module("alexnet", (1, 3, 67, 67))
    """
    model = entry(name)
    if model.build is None:
        raise UserError(f"zoo:{name}: defined by a Darknet cfg, not a PyTorch module; "
                        f"use fpgacnn.zoo.load")
    shape = check_input_shape(model, input_shape)
    module = trained_digits_net() if name == "digits" else _seeded_module(model)
    if shape != model.default_shape:
        fix_adaptive_pools(module, _pool_inputs(model, shape), f"zoo:{name}")
    return module.eval(), _example_input(model, shape)


def load(name: str, input_shape=None) -> Graph:
    """The raw graph of zoo model `name` (`fpgacnn.frontends.load_model` simplifies it).

    >>> load("yolov3-tiny", input_shape=(1, 3, 64, 64)).outputs
    ('layer16_yolo', 'layer23_yolo')
    """
    model = entry(name)
    if model.build is None:
        return _darknet_graph(model, check_input_shape(model, input_shape))
    from fpgacnn.frontends.torch import from_torch

    module, example = torch_module(name, input_shape)
    return from_torch(module, example, name=name)


def _seeded_module(model: ZooModel) -> nn.Module:
    with torch.device("meta"):  # skip the default initialisation: seed_weights sets everything
        module = model.build()
    module = seed_weights(module.to_empty(device="cpu"), model.seed)
    return calibrate_batchnorm(module, (4,) + model.default_shape[1:], model.seed)


def check_input_shape(model: ZooModel, input_shape) -> tuple[int, int, int, int]:
    """`input_shape` as a tuple (the default when None); UserError when the model rejects it."""
    if input_shape is None:
        return model.default_shape
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    where = f"zoo:{model.name}: input shape {shape or input_shape!r}"
    if len(shape) != 4 or min(shape) < 1:
        raise UserError(f"{where}: expected N,C,H,W with positive sizes")
    if shape[1] != model.default_shape[1]:
        raise UserError(f"{where}: the model takes {model.default_shape[1]} channel(s)")
    if shape[2] % model.multiple_of or shape[3] % model.multiple_of:
        raise UserError(f"{where}: height and width must be multiples of {model.multiple_of}")
    if model.build is not None:
        _pool_inputs(model, shape)  # runs the model on shapes only: too small, wrong FC size
    return shape


def _pool_inputs(model: ZooModel, shape):
    with torch.device("meta"):
        module = model.build().eval()
    try:
        sizes = adaptive_pool_inputs(module, shape)
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"zoo:{model.name}: input shape {shape} does not fit the model "
                        f"(smallest: {model.smallest_shape}): {reason}") from None
    fix_adaptive_pools(module, sizes, f"zoo:{model.name}")  # raises for uneven adaptive pools
    return sizes


def _example_input(model: ZooModel, shape) -> torch.Tensor:
    if model.name == "digits" and shape[0] <= 450 and shape[2:] == (8, 8):
        _, _, x_test, _ = digits_data()
        return torch.from_numpy(x_test[:shape[0]])
    gen = torch.Generator().manual_seed(model.seed)
    return torch.randn(shape, generator=gen)


def _darknet_graph(model: ZooModel, shape) -> Graph:
    from fpgacnn.frontends.darknet import from_darknet

    return from_darknet(DATA / f"{model.name}.cfg", None, shape)  # its own seeded weights
