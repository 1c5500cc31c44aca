"""The learner modules' docstring examples run and say what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "config",
    "network",
    "optim",
    "plasticity",
    "scaler",
    "state",
    "learner",
    "__init__",
    "importpath",
    "torch_module",
    "river_model",
    "factory",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module("lifelong.model" + ("" if name == "__init__" else f".{name}"))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
