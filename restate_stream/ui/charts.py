"""Small inline SVG charts, rendered on the server (no script, no library)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def _number(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def sparkline(
    values: Sequence[float],
    *,
    label: str,
    width: int = 140,
    height: int = 30,
    color: str = "#2563eb",
) -> Markup:
    """The values as a line (oldest left), scaled from 0 to their maximum, with the latest
    value beside it. Fewer than two values: a flat line."""
    latest = _number(values[-1]) if values else "-"
    title = escape(f"{label}: latest {latest}, max {_number(max(values)) if values else '-'}")
    top = max(values, default=0.0) or 1.0
    pad = 2.0
    if len(values) >= 2:
        step = (width - 2 * pad) / (len(values) - 1)
        points = " ".join(
            f"{pad + i * step:.1f},{height - pad - (v / top) * (height - 2 * pad):.1f}"
            for i, v in enumerate(values)
        )
    else:
        points = f"{pad},{height - pad} {width - pad},{height - pad}"
    return Markup(
        f'<span class="spark"><svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{title}">'
        f"<title>{title}</title>"
        f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}"/>'
        f'</svg><span class="spark-value">{escape(latest)}</span></span>'
    )
