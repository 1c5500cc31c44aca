"""The learner's compiled fast path: a sequence of examples learned in one C loop, with the same
semantics as the reference path (see `path` and `kernel.c`), and one row's prediction."""

from lifelong.model.fast.build import KernelUnavailable
from lifelong.model.fast.path import FastPath, RowKernel, unsupported

__all__ = ["FastPath", "KernelUnavailable", "RowKernel", "unsupported"]
