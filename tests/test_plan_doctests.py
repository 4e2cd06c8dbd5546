"""The examples in the plan modules' docstrings run and give what they show."""

import doctest
import importlib

import pytest

MODULES = ["bram", "dataflow", "devices", "dsp", "engine", "explore", "plots", "report",
           "resources", "source", "workload"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"fpgacnn.plan.{name}")
    result = doctest.testmod(module)
    assert result.failed == 0
