"""Where a batched record's latency goes, stage by stage (batch_latency.py --breakdown).

The delivery's observer (restate_stream/batch/timings.py) stamps, for one record in
`SAMPLE_EVERY` (by offset), when it was polled and cut, and for each send when its key's
previous send was accepted, when its pacing ended, when it got a send slot and when it was
accepted; the handler's run time comes from its own latency samples (the first record of
each invocation: its Kafka timestamp plus its sample). A record's latency then splits into:

- produced -> polled: produced until the delivery's poll returned it; a cut's records wait
  inside its polls (the poll after the first record returns at max_wait or when full), so
  this holds the cut's wait too
- polled -> cut: until the cut was handed on (grouped, sends made)
- previous send: cut until the key's previous send was accepted (per-key FIFO); a call is
  answered at completion, so after a call this holds the wait for its invocation too
- pacing: until the key's earlier invocation completed (batch/pacing.py), after a one-way send
- slot: until one of `max_concurrent_sends` was free
- send -> accept: the POST until Restate's 202; 0 for a call, whose acceptance is not seen
  apart from its completion
- accept -> run: queued in Restate (behind the object's earlier invocations) until the
  handler ran; for a call, from the POST
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from connectors.group_consumer import PolledRecord
from restate_stream.batch.timings import SendStages

SAMPLE_EVERY = 8
STAGES = (
    "produced->polled",
    "polled->cut",
    "previous send",
    "pacing",
    "slot",
    "send -> accept",
    "accept -> run",
)


@dataclass
class _Send:
    stages: SendStages
    first_timestamp_ms: int
    sampled: list[tuple[int, int, int]]  # (partition, offset, timestamp ms)


@dataclass
class StageClock:
    """The delivery's observer: stamps kept in memory for the sampled records."""

    every: int = SAMPLE_EVERY
    polled_at: dict[tuple[int, int], float] = field(default_factory=dict)
    cut_at: dict[tuple[int, int], float] = field(default_factory=dict)
    # (object key, first record's partition, offset) -> the send
    sends: dict[tuple[str, int, int], _Send] = field(default_factory=dict)

    def polled(self, records: list[PolledRecord], at: float) -> None:
        for r in records:
            if r.offset % self.every == 0:
                self.polled_at[(r.partition, r.offset)] = at

    def cut(self, records: list[PolledRecord], at: float) -> None:
        for r in records:
            if r.offset % self.every == 0:
                self.cut_at[(r.partition, r.offset)] = at

    def accepted(self, key: str, records: list[PolledRecord], stages: SendStages) -> None:
        first = records[0]
        sampled = [
            (r.partition, r.offset, r.timestamp_ms or 0)
            for r in records
            if r.offset % self.every == 0
        ]
        self.sends[(key, first.partition, first.offset)] = _Send(
            stages, first.timestamp_ms or 0, sampled
        )

    def split(self, runs: dict[tuple[str, int, int], int]) -> list[list[float]]:
        """Per sampled record, its stages in ms (STAGES' order). `runs`: per invocation (object
        key, first record's partition and offset), the first record's latency sample in ms."""
        rows: list[list[float]] = []
        for send_id, send in self.sends.items():
            sample = runs.get(send_id)
            if sample is None:  # a warm-up send: no samples
                continue
            run = (send.first_timestamp_ms + sample) / 1000
            s = send.stages
            for partition, offset, ts_ms in send.sampled:
                polled = self.polled_at.get((partition, offset))
                cut = self.cut_at.get((partition, offset))
                if polled is None or cut is None:
                    continue
                previous = max(s.previous_accepted, cut)
                paced = max(s.paced, previous)
                posted = max(s.posted, paced)
                accepted = posted if s.called else s.accepted
                marks = [ts_ms / 1000, polled, cut, previous, paced, posted, accepted, run]
                rows.append([(b - a) * 1000 for a, b in itertools.pairwise(marks)])
        return rows


def percentile(values: list[float], q: float) -> float:
    """The value below which a fraction `q` of `values` lies (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def breakdown_lines(rows: list[list[float]]) -> Iterable[str]:
    """A table: each stage's mean, p50 and p99 over the sampled records, and its mean over
    the slowest 1% of them (where the p99 comes from)."""
    if not rows:
        yield "  (no sampled records)"
        return
    totals = [sum(r) for r in rows]
    cutoff = percentile(totals, 0.99)
    tail = [r for r, t in zip(rows, totals, strict=True) if t >= cutoff]
    yield f"  {len(rows):,} records sampled (1 in {SAMPLE_EVERY}); ms:"
    yield f"  {'stage':<17}{'mean':>8}{'p50':>8}{'p99':>8}{'slowest 1%: mean':>18}"
    for i, name in enumerate(STAGES):
        column = [r[i] for r in rows]
        yield (
            f"  {name:<17}{statistics.fmean(column):>8.0f}{percentile(column, 0.5):>8.0f}"
            f"{percentile(column, 0.99):>8.0f}{statistics.fmean(r[i] for r in tail):>18.0f}"
        )
    yield (
        f"  {'total':<17}{statistics.fmean(totals):>8.0f}{percentile(totals, 0.5):>8.0f}"
        f"{cutoff:>8.0f}{statistics.fmean(sum(r) for r in tail):>18.0f}"
    )
