"""The ASGI entry hypercorn imports in each worker process.

hypercorn loads apps by import path in every (spawned) worker process; this module wraps
the user's app named in RESTATE_STREAM_APP so each process gets the same wrapping.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from restate_stream.serving import without_lifespan_warnings

APP_ENV = "RESTATE_STREAM_APP"


def load_app(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"app path {path!r}: expected 'package.module:attribute'")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"app path {path!r}: module {module_name} has no {attribute!r}") from None


app = without_lifespan_warnings(load_app(os.environ[APP_ENV])) if APP_ENV in os.environ else None
