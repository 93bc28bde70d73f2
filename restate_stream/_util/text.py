"""Text shortening for one-line summaries."""

from typing import Any


def one_line(text: Any, width: int) -> str:
    """`text` with its whitespace folded, cut to `width` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
