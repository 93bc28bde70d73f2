"""A benchmark's result rows (rates and CPU per round) and the markdown table of their medians,
each row's rate as a ratio to the baseline's and, where it names one, to another row's."""

from __future__ import annotations

import dataclasses
import statistics


@dataclasses.dataclass
class Series:
    name: str
    versus: str | None = None  # the row this one's rate is also compared with
    rates: list[float] = dataclasses.field(default_factory=list)  # records/s, per round
    cpu: list[float] = dataclasses.field(default_factory=list)  # CPU s per 1,000 records

    def add(self, rate: float, cpu: float | None = None) -> None:
        self.rates.append(rate)
        if cpu is not None:
            self.cpu.append(cpu)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def table(baseline: Series, rows: list[Series]) -> list[str]:
    """Lines of a markdown table of medians: records/s, x baseline, x the `versus` row, CPU s
    per 1,000 records. A row without rates (not run) is left out; one whose `versus` row was
    not run gets no ratio to it."""
    base = statistics.median(baseline.rates)
    medians = {s.name: statistics.median(s.rates) for s in [baseline, *rows] if s.rates}
    lines = [
        f"| | records/s (median of {len(baseline.rates)}) | x {baseline.name} | x compared "
        "| CPU s / 1,000 records |",
        "| --- | --- | --- | --- | --- |",
        f"| {baseline.name} | {_number(base)} | 1 | | {statistics.median(baseline.cpu):.3f} |"
        if baseline.cpu
        else f"| {baseline.name} | {_number(base)} | 1 | | |",
    ]
    for s in rows:
        if not s.rates:
            continue
        median = medians[s.name]
        versus = ""
        if s.versus is not None and s.versus in medians:
            versus = f"{median / medians[s.versus]:.2f} x {s.versus}"
        cpu = f"{statistics.median(s.cpu):.3f}" if s.cpu else ""
        runs = ""
        if len(s.rates) != len(baseline.rates):
            runs = f" ({len(s.rates)} round{'s' if len(s.rates) > 1 else ''})"
        lines.append(
            f"| {s.name}{runs} | {_number(median)} | {median / base:.4f} | {versus} | {cpu} |"
        )
    return lines
