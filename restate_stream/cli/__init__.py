"""The `restate-stream` command line."""

from restate_stream.cli.main import main

__all__ = ["main"]
