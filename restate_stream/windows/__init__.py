"""Windowed aggregations on bindings: `window:` in the bindings file (docs/windows.md).

settings.py is the YAML's `window:` section, assign.py and aggregate.py the pure logic
(which windows a record falls in, when they close, what they add up to), objects.py the
virtual object restate-stream serves for a window binding.
"""

import restate_stream.bindings  # noqa: F401  (first: its schema imports windows.settings)
from restate_stream.windows.reducer import Reducer

__all__ = ["Reducer"]
