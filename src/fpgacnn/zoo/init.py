"""Seeded random weights for zoo models that have no trained weights available offline.

Convolutions and linear layers get He (Kaiming) normal weights and small biases, BatchNorm
layers random affine parameters and random running statistics, PReLU random slopes. The
activations keep a sensible range through deep stacks, and BatchNorm folding changes the
weights for real (not the identity fold that default statistics would give).
"""

import math

import torch
from torch import nn


def seed_weights(module: nn.Module, seed: int) -> nn.Module:
    """Fill `module`'s parameters and BatchNorm statistics from `seed`, in place; returns it.

    >>> seed_weights(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)), seed=0)[1].running_var
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                _he_normal(layer.weight, gen)
                if layer.bias is not None:
                    layer.bias.copy_(0.05 * torch.randn(layer.bias.shape, generator=gen))
            elif isinstance(layer, nn.BatchNorm2d):
                _random_batchnorm(layer, gen)
            elif isinstance(layer, nn.PReLU):
                layer.weight.copy_(0.05 + 0.25 * torch.rand(layer.weight.shape, generator=gen))
    return module


def _he_normal(weight: torch.Tensor, gen: torch.Generator) -> None:
    fan_in = weight[0].numel()
    weight.copy_(torch.randn(weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))


def _random_batchnorm(bn: nn.BatchNorm2d, gen: torch.Generator) -> None:
    c = bn.num_features
    bn.weight.copy_(0.5 + torch.rand(c, generator=gen))
    bn.bias.copy_(0.1 * torch.randn(c, generator=gen))
    bn.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
    bn.running_var.copy_(0.5 + torch.rand(c, generator=gen))
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.zero_()
