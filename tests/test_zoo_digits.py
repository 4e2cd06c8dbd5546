"""zoo:digits: the data split, the committed weights' accuracy, and deterministic training.

Oracles: scikit-learn's bundled dataset (labels), the float executor on the committed weights,
and PyTorch's own DigitsNet forward.
"""

import importlib.util
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from fpgacnn import zoo
from fpgacnn.frontends import load_model
from fpgacnn.ir import run_float

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_digits.py"


def _train_script():
    spec = importlib.util.spec_from_file_location("train_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_is_the_documented_stratified_split():
    x_train, y_train, x_test, y_test = zoo.digits_data()
    assert x_train.shape == (1347, 1, 8, 8) and x_test.shape == (450, 1, 8, 8)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    digits = load_digits()
    # every test image is a dataset image / 16 with its own label
    flat = (digits.images.reshape(len(digits.images), -1) / 16.0).astype(np.float32)
    index = {row.tobytes(): label for row, label in zip(flat, digits.target)}
    assert all(index[x.reshape(-1).tobytes()] == y for x, y in zip(x_test[:50], y_test[:50]))
    # stratified: class counts of the test set within one of a quarter of the dataset's
    want = np.bincount(digits.target) * 0.25
    assert np.all(np.abs(np.bincount(y_test) - want) <= 1)
    again = zoo.digits_data()
    np.testing.assert_array_equal(again[2], x_test)


def test_committed_weights_reach_97_percent_with_the_float_executor():
    _, _, x_test, y_test = zoo.digits_data()
    graph = load_model("zoo:digits", input_shape=x_test.shape)
    (logits,) = run_float(graph, x_test).values()
    accuracy = float((logits.argmax(1) == y_test).mean())
    assert accuracy >= 0.97, accuracy
    module, _ = zoo.torch_module("digits")
    with torch.no_grad():
        want = module(torch.from_numpy(x_test)).numpy()
    assert np.abs(logits - want).max() <= 1e-5 * np.abs(want).max()


def test_training_is_deterministic():
    script = _train_script()
    first = zoo.digits.state_arrays(script.train(epochs=1))
    second = zoo.digits.state_arrays(script.train(epochs=1))
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert not torch.are_deterministic_algorithms_enabled()  # global state restored


def test_weights_file_is_not_a_pickle():
    with np.load(zoo.digits.WEIGHTS, allow_pickle=False) as stored:
        assert sorted(stored.files) == sorted(zoo.digits.DigitsNet().state_dict())
        assert all(stored[k].dtype == np.float32 for k in stored.files)
