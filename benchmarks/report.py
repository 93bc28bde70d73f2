"""The pure parts of the benchmarks' reports: ratios against a baseline measured in the same
rounds, and fixed-width tables."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def ratio(value: float, baseline: float) -> float:
    """value / baseline; NaN when there is no baseline to compare with (zero or NaN)."""
    if baseline == 0 or math.isnan(baseline):
        return math.nan
    return value / baseline


def paired_ratio(values: Sequence[float], baselines: Sequence[float]) -> float:
    """The median over rounds of value / baseline of the same round: a drift of the machine
    between rounds (another job starting) moves both sides of a pair, not the ratio."""
    if len(values) != len(baselines):
        raise ValueError(f"{len(values)} values for {len(baselines)} baselines: not paired")
    ratios = [r for v, b in zip(values, baselines, strict=True) if not math.isnan(r := ratio(v, b))]
    return statistics.median(ratios) if ratios else math.nan


def fmt(value: float, spec: str) -> str:
    """`value` formatted with `spec`, or "-" when it is NaN (nothing to show)."""
    return "-" if math.isnan(value) else format(value, spec)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A fixed-width table: the first column left-aligned, the others right-aligned, each as
    wide as its widest cell, a rule under the headers."""
    if any(len(row) != len(headers) for row in rows):
        raise ValueError(f"every row needs {len(headers)} cells")
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        parts = [first.ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])
