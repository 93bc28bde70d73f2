"""Test support: the engines, an in-process app server registered with Restate, state polling.

The fixtures live in `restate_stream.testing.pytest_plugin`, which pytest loads by itself
once restate-stream is installed.
"""

from restate_stream.testing.helpers import (
    ServedApp,
    drop_cluster,
    object_state,
    produce_json,
    serve_app,
    topic_records,
    wait_until,
)

__all__ = [
    "ServedApp",
    "drop_cluster",
    "object_state",
    "produce_json",
    "serve_app",
    "topic_records",
    "wait_until",
]
