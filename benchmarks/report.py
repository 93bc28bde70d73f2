"""The pure parts of the benchmarks' reports: ratios against a baseline measured in the same
rounds, fixed-width tables, and result rows (rates and CPU per round) with the table of their
medians."""

from __future__ import annotations

import dataclasses
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


def cpu_cell(seconds_per_1000: float) -> str:
    """CPU s per 1,000 records: four decimals below 0.1 (batched rows cost 0.004-0.02, where a
    third decimal cannot show a 10% change)."""
    return fmt(seconds_per_1000, ".4f" if seconds_per_1000 < 0.1 else ".3f")


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


@dataclasses.dataclass
class Series:
    """One result row: its rate (and CPU) per round, from round 1 on; `versus` names the row
    its rate is also compared with."""

    name: str
    versus: str | None = None
    rates: list[float] = dataclasses.field(default_factory=list)  # records/s, per round
    cpu: list[float] = dataclasses.field(default_factory=list)  # CPU s per 1,000 records

    def add(self, rate: float, cpu: float | None = None) -> None:
        self.rates.append(rate)
        if cpu is not None:
            self.cpu.append(cpu)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _paired(values: Sequence[float], baselines: Sequence[float]) -> float:
    """paired_ratio over the rounds both ran: every series starts at round 1, so a row run in
    fewer rounds (the per-message ones) pairs with the baseline's first rounds."""
    n = min(len(values), len(baselines))
    return paired_ratio(values[:n], baselines[:n])


def series_table(baseline: Series, rows: Sequence[Series]) -> str:
    """A table of medians: records/s, x baseline (its first row) and x the `versus` row
    (paired by round), CPU s per 1,000 records. A row without rates (not run) is left out;
    one whose `versus` row was not run gets no ratio to it; one run in fewer rounds than the
    baseline says so."""
    ran = {s.name: s for s in [baseline, *rows] if s.rates}
    cells = []
    for s in [baseline, *rows]:
        if not s.rates:
            continue
        versus = ran.get(s.versus) if s.versus is not None else None
        runs = ""
        if len(s.rates) != len(baseline.rates):
            runs = f" ({len(s.rates)} round{'s' if len(s.rates) > 1 else ''})"
        cells.append(
            [
                f"{s.name}{runs}",
                _number(statistics.median(s.rates)),
                "1" if s is baseline else fmt(_paired(s.rates, baseline.rates), ".4f"),
                "" if versus is None else f"{_paired(s.rates, versus.rates):.2f} x {versus.name}",
                cpu_cell(statistics.median(s.cpu)) if s.cpu else "",
            ]
        )
    headers = [
        "",
        f"records/s (median of {len(baseline.rates)})",
        "x baseline",
        "x compared",
        "CPU s / 1,000 records",
    ]
    return table(headers, cells)
