"""Make a module's adaptive average pools fixed for one input size.

`nn.AdaptiveAvgPool2d` has no fixed window; for a known input size it is exactly one of:
an identity (input size = output size), an average pool (input a multiple of the output), or a
nearest-neighbour upsampling (output a multiple of the input: every output bin then covers one
input pixel). AlexNet's and VGG16's `avgpool` at reduced input sizes are the last kind. A
global pool (output 1x1) is left as it is: the frontends map it to GlobalAvgPool.
"""

import torch
from torch import nn

from fpgacnn.errors import UserError


def adaptive_pool_inputs(model: nn.Module, input_shape) -> dict[str, tuple[int, int]]:
    """Input height and width of every AdaptiveAvgPool2d for `input_shape`, by module name.

    Runs the model on the meta device (shapes only, no arithmetic): `model` must be built there.
    >>> with torch.device("meta"):
    ...     net = AlexNet()
    >>> adaptive_pool_inputs(net, (1, 3, 67, 67))
    {'avgpool': (1, 1)}
    """
    sizes = {}
    hooks = [module.register_forward_pre_hook(_recorder(sizes, name))
             for name, module in model.named_modules() if isinstance(module, nn.AdaptiveAvgPool2d)]
    try:
        model(torch.empty(input_shape, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return sizes


def _recorder(sizes, name):
    def record(module, args):
        sizes[name] = tuple(args[0].shape[-2:])
    return record


def fixed_pool(pool: nn.AdaptiveAvgPool2d, in_hw: tuple[int, int], where: str) -> nn.Module:
    """The fixed module equal to `pool` on inputs of size `in_hw`.

    >>> fixed_pool(nn.AdaptiveAvgPool2d(6), (1, 1), "avgpool")
    Upsample(scale_factor=6.0, mode='nearest')
    """
    out_hw = _pair(pool.output_size, in_hw)
    if out_hw == (1, 1) or out_hw == tuple(in_hw):
        return pool if out_hw == (1, 1) else nn.Identity()
    if all(i % o == 0 for i, o in zip(in_hw, out_hw)):
        kernel = tuple(i // o for i, o in zip(in_hw, out_hw))
        return nn.AvgPool2d(kernel, kernel)
    scale = out_hw[0] // in_hw[0]
    if all(o == i * scale for i, o in zip(in_hw, out_hw)):
        return nn.Upsample(scale_factor=scale, mode="nearest")
    raise UserError(f"{where}: adaptive average pool from {in_hw[0]}x{in_hw[1]} to "
                    f"{out_hw[0]}x{out_hw[1]} is neither a pooling nor an upsampling by a whole "
                    f"factor; choose an input size that gives {out_hw[0]}x{out_hw[1]}, a "
                    f"multiple of it, or a divisor of it here")


def _pair(output_size, in_hw) -> tuple[int, int]:
    if isinstance(output_size, int):
        return (output_size, output_size)
    return tuple(i if o is None else int(o) for o, i in zip(output_size, in_hw))


def fix_adaptive_pools(model: nn.Module, sizes: dict[str, tuple[int, int]], model_name: str):
    """Replace, in place, each adaptive pool named in `sizes` by its fixed equivalent.

    >>> fix_adaptive_pools(net, {"avgpool": (1, 1)}, "alexnet").avgpool
    Upsample(scale_factor=6.0, mode='nearest')
    """
    for name, in_hw in sizes.items():
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, attr, fixed_pool(getattr(parent, attr), in_hw, f"{model_name}: {name}"))
    return model
