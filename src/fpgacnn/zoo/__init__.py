"""The model zoo: networks defined in fpgacnn's own code, named `zoo:NAME` on the command line.

>>> from fpgacnn import zoo
>>> zoo.names()[:3]
['alexnet', 'digits', 'mtcnn-onet']
>>> graph = zoo.load("alexnet", input_shape=(1, 3, 67, 67))   # raw graph (BatchNorm unfolded)
>>> module, example = zoo.torch_module("resnet18")

`digits` has trained weights (see `scripts/train_digits.py`); every other model has seeded
random weights (He-normal, random BatchNorm statistics), the same on every call.
"""

from fpgacnn.zoo.digits import digits_data
from fpgacnn.zoo.registry import MODELS, ZooModel, load, names, torch_module

__all__ = ["MODELS", "ZooModel", "digits_data", "load", "names", "torch_module"]
