"""batch_latency --breakdown's arithmetic: a record's stages add up to its latency, a record
that joined a send late is not charged the send's earlier waits, and the table prints."""

from __future__ import annotations

from benchmarks.latency_stages import STAGES, StageClock, breakdown_lines
from connectors.group_consumer import PolledRecord
from restate_stream.batch.timings import SendStages


def record(offset: int, timestamp_ms: int) -> PolledRecord:
    return PolledRecord("t", 0, offset, timestamp_ms, b"k", b"{}", ())


def test_stages_add_up_and_a_late_joiner_is_charged_from_its_cut() -> None:
    clock = StageClock(every=1)
    early, late = record(0, 1_000), record(1, 1_100)
    clock.polled([early], 1.010)
    clock.cut([early], 1.020)
    clock.polled([late], 1.110)
    clock.cut([late], 1.120)  # joined the waiting send after its previous send was accepted
    stages = SendStages(1.020, previous_accepted=1.050, paced=1.200, posted=1.210, accepted=1.230)
    clock.accepted("k", [early, late], stages)
    # The handler ran at 1.300 s: the first record's sample is 300 ms.
    early_row, late_row = clock.split({("k", 0, 0): 300})
    assert [round(ms) for ms in early_row] == [10, 10, 30, 150, 10, 20, 70]
    assert [round(ms) for ms in late_row] == [10, 10, 0, 80, 10, 20, 70]
    assert round(sum(late_row)) == 200
    lines = list(breakdown_lines([early_row, late_row]))
    assert len(lines) == 2 + len(STAGES) + 1 and lines[-1].split()[0] == "total"


def test_a_calls_time_counts_from_its_post_to_the_run() -> None:
    """A call is answered after the run: its acceptance stage is 0, its queueing from the POST."""
    clock = StageClock(every=1)
    r = record(0, 1_000)
    clock.polled([r], 1.010)
    clock.cut([r], 1.020)
    stages = SendStages(1.020, previous_accepted=1.050, paced=1.050, posted=1.060, accepted=1.400)
    stages.called = True
    clock.accepted("k", [r], stages)
    (row,) = clock.split({("k", 0, 0): 300})  # ran at 1.300 s, answered at 1.400 s
    assert [round(ms) for ms in row] == [10, 10, 30, 0, 10, 0, 240]
