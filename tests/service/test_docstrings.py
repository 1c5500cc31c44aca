"""The runnable examples in the service modules' docstrings."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "config",
        "samples",
        "metrics",
        "host",
        "admission",
        "demo",
        "serving.inputs",
        "serving.matrix",
        "snapshot_file",
        "status.history",
        "status.probes",
        "status.board",
        "auth",
        "metrics_http",
        "serving.tls",
    ],
)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(f"lifelong.{module}"))
    assert result.failed == 0 and result.attempted > 0
