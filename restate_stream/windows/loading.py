"""Finding a window's reducer by the "module.path:attribute" the bindings file names.

Used by the check against the app (bindings/app_check.py) and by the objects served for window
bindings (runtime/provided.py), which both import the reducer the same way.
"""

from __future__ import annotations

import importlib
from typing import Any

from restate_stream.errors import ConfigurationError
from restate_stream.windows.reducer import Reducer


class ReducerImportError(ConfigurationError, ImportError):
    """A window's `reducer:` cannot be imported or is not a usable Reducer."""


def load_reducer(path: str) -> Reducer[Any, Any]:
    """The Reducer at "module.path:attribute"; ReducerImportError says why not."""
    module_name, _, attr = path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            found = getattr(found, part)
    except ImportError as exc:
        raise ReducerImportError(f"cannot import {module_name!r}: {exc}") from exc
    except AttributeError:
        raise ReducerImportError(f"{module_name!r} has no attribute {attr!r}") from None
    if not isinstance(found, Reducer):
        raise ReducerImportError(
            f"{path!r} is a {type(found).__name__}, not a restate_stream.windows.Reducer "
            "(Reducer(initial=..., reduce=...))"
        )
    if (problem := found.problem()) is not None:
        raise ReducerImportError(f"{path!r}: {problem}")
    return found
