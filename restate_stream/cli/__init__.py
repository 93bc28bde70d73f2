"""The `restate-stream` command line (click), one module per command group.

The commands call the domain packages (bindings, control, stack, topics, dlq), which return
data; rendering it (tables, colours, progress) happens here.
"""

from restate_stream.cli.app import main

__all__ = ["main"]
