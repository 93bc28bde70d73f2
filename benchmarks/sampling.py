"""The arithmetic of a soak: a paced producer's records due, the samples taken every so many
seconds, the rate between them, growth per 100k records, and the table they print as."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.report import fmt, ratio, table

MIB = 2**20
GROWTH_PER = 100_000  # records


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the soak started
    delivered: int  # records delivered since the soak started
    rss_bytes: int
    disk_bytes: int  # allocated, as du shows it
    data_bytes: int  # the files' apparent sizes


def records_due(elapsed: float, rate: float) -> int:
    """How many records a producer pacing `rate` records/s has sent after `elapsed` seconds."""
    return max(0, math.floor(elapsed * rate))


def rate_between(earlier: Sample, later: Sample) -> float:
    """Records/s delivered from one sample to the next."""
    return ratio(later.delivered - earlier.delivered, later.seconds - earlier.seconds)


def growth_per_100k(samples: Sequence[Sample], bytes_of: str) -> float:
    """MiB that `bytes_of` ("rss_bytes", "disk_bytes", "data_bytes") grew per 100k records, from
    the first sample to the last; NaN when no record was delivered in between."""
    if len(samples) < 2:
        return math.nan
    first, last = samples[0], samples[-1]
    grown: int = getattr(last, bytes_of) - getattr(first, bytes_of)
    return ratio(grown / MIB * GROWTH_PER, last.delivered - first.delivered)


def halves(samples: Sequence[Sample]) -> tuple[Sequence[Sample], Sequence[Sample]]:
    """The samples up to the middle one and from it on (both hold it): growth that levels off
    in the second half is what bounded memory or disk looks like."""
    middle = len(samples) // 2
    return samples[: middle + 1], samples[middle:]


def soak_table(samples: Sequence[Sample]) -> str:
    rows = []
    for i, s in enumerate(samples):
        rate = rate_between(samples[i - 1], s) if i else math.nan
        rows.append(
            [
                f"{s.seconds / 60:.1f}",
                f"{s.delivered:,}",
                fmt(rate, ",.0f"),
                f"{s.rss_bytes / MIB:,.0f}",
                f"{s.disk_bytes / MIB:,.1f}",
                f"{s.data_bytes / MIB:,.1f}",
            ]
        )
    headers = ["minute", "records delivered", "records/s", "RSS MiB", "disk MiB", "data MiB"]
    return table(headers, rows)


def growth_lines(samples: Sequence[Sample]) -> list[str]:
    """Growth per 100k records over the whole soak and over each half."""
    first, second = halves(samples)
    lines = []
    measures = (("RSS", "rss_bytes"), ("disk", "disk_bytes"), ("data", "data_bytes"))
    for what, attr in measures:
        whole, early, late = (growth_per_100k(part, attr) for part in (samples, first, second))
        lines.append(
            f"{what} growth per {GROWTH_PER:,} records: {fmt(whole, '+,.1f')} MiB "
            f"(first half {fmt(early, '+,.1f')}, second half {fmt(late, '+,.1f')})"
        )
    return lines
