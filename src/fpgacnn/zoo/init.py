"""Seeded random weights for zoo models that have no trained weights available offline.

Convolutions and linear layers get He (Kaiming) normal weights and small biases, BatchNorm
layers random affine parameters, PReLU random slopes. BatchNorm running statistics are those
of a seeded random batch (`calibrate_batchnorm`), so that every BatchNorm really normalises:
activations keep a sensible range through deep residual stacks, and BatchNorm folding changes
the weights for real (not the identity fold that default statistics would give).
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


def calibrate_batchnorm(module: nn.Module, input_shape, seed: int) -> nn.Module:
    """Set every BatchNorm's running mean and variance to those of one seeded random batch.

    >>> calibrate_batchnorm(seed_weights(resnet18(), 4), (4, 3, 64, 64), seed=4)
    """
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return module
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average: after one batch, that batch's statistics
    was_training = module.training
    module.train()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        module(torch.randn(input_shape, generator=gen))
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    return module.train(was_training)
