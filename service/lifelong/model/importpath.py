"""Objects named by import path, `"package.module:attribute"`, as settings name a model.

>>> resolve("collections:OrderedDict").__name__
'OrderedDict'
>>> path_of(resolve("collections:OrderedDict"))
'collections:OrderedDict'
>>> resolve("collections.OrderedDict")
Traceback (most recent call last):
...
ValueError: 'collections.OrderedDict' is not an import path: write 'package.module:name'

"""

from __future__ import annotations

import importlib
from typing import Any


def resolve(path: str) -> Any:
    """The object `path` ("package.module:name", the name may be dotted) names."""
    module_name, sep, name = path.partition(":")
    if not sep or not module_name or not name:
        raise ValueError(f"{path!r} is not an import path: write 'package.module:name'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{path!r}: cannot import {module_name}: {e}") from None
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{path!r}: {module_name} has no {name}") from None
    return obj


def path_of(obj: Any) -> str | None:
    """The import path that names `obj`, or None if it has none (a lambda, a nested function)."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None
    path = f"{module}:{qualname}"
    try:
        return path if resolve(path) is obj else None
    except ValueError:
        return None
