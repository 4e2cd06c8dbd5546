"""Which converter handles which PyTorch module class, function and tensor method."""

import operator

import torch
import torch.nn.functional as F
from torch import nn

from fpgacnn.frontends._torch_ops import (adaptive_avg_function, adaptive_avg_module,
                                          adaptive_max_function, adaptive_max_module,
                                          avgpool_function, avgpool_module,
                                          batchnorm_function, batchnorm_module,
                                          clamp, conv2d_function, conv2d_module,
                                          hardtanh_function, hardtanh_module,
                                          leaky_relu_function, leaky_relu_module,
                                          linear_function, linear_module, maxpool_function,
                                          maxpool_module, mean, prelu_function, prelu_module,
                                          relu, relu6_function)
from fpgacnn.frontends._torch_shapes import (add, channel_shuffle_module, concat, dropout_function, dropout_module,
                                             flatten_module, identity_module, lrn_function,
                                             lrn_module, pass_through, reshape,
                                             softmax_function, softmax_module, upsample)

MODULES = {
    nn.Conv2d: conv2d_module, nn.Linear: linear_module,
    nn.BatchNorm1d: batchnorm_module, nn.BatchNorm2d: batchnorm_module,
    nn.ReLU: relu, nn.LeakyReLU: leaky_relu_module, nn.PReLU: prelu_module,
    nn.Hardtanh: hardtanh_module,  # ReLU6 is a Hardtanh
    nn.MaxPool2d: maxpool_module, nn.AvgPool2d: avgpool_module,
    nn.AdaptiveAvgPool2d: adaptive_avg_module, nn.AdaptiveMaxPool2d: adaptive_max_module,
    nn.LocalResponseNorm: lrn_module,
    nn.Dropout: dropout_module, nn.Dropout1d: dropout_module, nn.Dropout2d: dropout_module,
    nn.ChannelShuffle: channel_shuffle_module,
    nn.Identity: identity_module, nn.Flatten: flatten_module, nn.Softmax: softmax_module,
    nn.Upsample: upsample,  # UpsamplingNearest2d is an Upsample
}

FUNCTIONS = {
    F.conv2d: conv2d_function, torch.conv2d: conv2d_function,
    F.linear: linear_function,
    F.relu: relu, torch.relu: relu, F.relu_: relu, torch.relu_: relu,
    F.leaky_relu: leaky_relu_function, F.prelu: prelu_function, torch.prelu: prelu_function,
    F.relu6: relu6_function, F.hardtanh: hardtanh_function,
    torch.clamp: clamp, torch.clip: clamp,
    F.max_pool2d: maxpool_function, torch.max_pool2d: maxpool_function,
    F.avg_pool2d: avgpool_function,
    F.adaptive_avg_pool2d: adaptive_avg_function, F.adaptive_max_pool2d: adaptive_max_function,
    torch.mean: mean,
    torch.flatten: reshape, torch.reshape: reshape, torch.squeeze: reshape,
    torch.cat: concat, torch.concat: concat, torch.concatenate: concat,
    operator.add: add, operator.iadd: add, torch.add: add,
    F.interpolate: upsample,
    F.softmax: softmax_function, torch.softmax: softmax_function,
    F.local_response_norm: lrn_function,
    F.dropout: dropout_function, F.dropout2d: dropout_function,
    F.batch_norm: batchnorm_function,
}

_aten = torch.ops.aten
ATEN = {  # the ops of a torch.export graph (the fallback when torch.fx cannot trace)
    _aten.conv2d.default: conv2d_function, _aten.conv2d.padding: conv2d_function,
    _aten.linear.default: linear_function, _aten.batch_norm.default: batchnorm_function,
    _aten.relu.default: relu, _aten.relu_.default: relu,
    _aten.leaky_relu.default: leaky_relu_function, _aten.leaky_relu_.default: leaky_relu_function,
    _aten.prelu.default: prelu_function, _aten.hardtanh.default: hardtanh_function,
    _aten.hardtanh_.default: hardtanh_function, _aten.relu6.default: relu6_function,
    _aten.clamp.default: clamp, _aten.clamp_.default: clamp,
    _aten.max_pool2d.default: maxpool_function,
    _aten.max_pool2d_with_indices.default: maxpool_function,
    _aten.avg_pool2d.default: avgpool_function,
    _aten.adaptive_avg_pool2d.default: adaptive_avg_function,
    _aten.adaptive_max_pool2d.default: adaptive_max_function, _aten.mean.dim: mean,
    _aten.view.default: reshape, _aten.reshape.default: reshape,
    _aten.flatten.using_ints: reshape, _aten.squeeze.dim: reshape, _aten.squeeze.dims: reshape,
    _aten.squeeze.default: reshape, _aten.cat.default: concat,
    _aten.add.Tensor: add, _aten.add_.Tensor: add,
    _aten.upsample_nearest2d.vec: upsample, _aten.upsample_nearest2d.default: upsample,
    _aten.softmax.int: softmax_function, _aten._softmax.default: softmax_function,
    _aten.dropout.default: dropout_function,
    _aten.clone.default: pass_through, _aten.detach.default: pass_through,
    _aten.alias.default: pass_through, _aten.contiguous.default: pass_through,
}
FUNCTIONS |= ATEN

METHODS = {
    "relu": relu, "relu_": relu, "clamp": clamp, "clip": clamp, "clamp_": clamp,
    "mean": mean, "view": reshape, "reshape": reshape, "flatten": reshape, "squeeze": reshape,
    "add": add, "add_": add, "softmax": softmax_function,
    "contiguous": pass_through, "clone": pass_through, "detach": pass_through,
    "float": pass_through,
}


def supported_names() -> list[str]:
    """The supported modules, functions and tensor methods, for error messages."""
    names = {cls.__name__ for cls in MODULES}
    names |= {getattr(f, "__name__", str(f)) for f in FUNCTIONS if f not in ATEN}
    names |= {f"Tensor.{m}" for m in METHODS}
    return sorted(names)
