"""Window bindings in the in-memory kit: `emit: current`, hopping windows, `late: drop`,
results to a handler, and event ids that depend only on the window and the emission."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import restate

from restate_stream.testing import BindingsKit, bindings_yaml

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def kit(tmp_path: Path, window: dict[str, Any], services: list[Any] | None = None) -> BindingsKit:
    path = tmp_path / "bindings.yaml"
    binding = {"name": "clicks", "topic": "clicks", "window": window}
    path.write_text(bindings_yaml(clusters={"local": "127.0.0.1:9092"}, bindings=[binding]))
    return BindingsKit.load(path, services or [])


audit = restate.Workflow("audit")


@audit.main()
async def run(ctx: restate.WorkflowContext, result: dict[str, Any]) -> None:
    return None


async def test_a_workflow_run_handler_gets_one_workflow_per_window(tmp_path: Path) -> None:
    # A workflow runs once per key: keyed by the record key alone, only the first window
    # of each key would ever run it.
    k = kit(tmp_path, {"type": "tumbling", "size": "10s", "to_handler": "audit/run"}, [audit])
    t0 = int(T0.timestamp() * 1000)
    await k.deliver("clicks", {}, key="a", timestamp=T0)
    # The second record's time closes the first window; the second closes by its timer.
    second = await k.deliver("clicks", {}, key="a", timestamp=T0 + timedelta(seconds=10))
    fired = await k.fire_timers()
    runs = [c for d in [second, *fired] for c in d.calls if c.target == "audit/run"]
    keys = [c.key for c in runs]
    assert keys == [f"a@{t0}-{t0 + 10_000}", f"a@{t0 + 10_000}-{t0 + 20_000}"]


async def test_current_emits_every_update_of_each_hopping_window(tmp_path: Path) -> None:
    k = kit(
        tmp_path,
        {
            "type": "hopping",
            "size": "1m",
            "advance": "30s",
            "emit": "current",
            "aggregate": "max",
            "field": "n",
            "to": "out",
        },
    )
    await k.deliver("clicks", {"n": 3}, key="a", timestamp=T0 + timedelta(seconds=40))
    await k.deliver("clicks", {"n": 1}, key="a", timestamp=T0 + timedelta(seconds=50))
    seen = [(s.value["start"], s.value["value"], s.value["final"]) for s in k.published("out")]
    t0 = int(T0.timestamp() * 1000)
    assert seen == [
        (t0, 3, False),
        (t0 + 30_000, 3, False),
        (t0, 3, False),
        (t0 + 30_000, 3, False),
    ]
    ids = [s.event_id for s in k.published("out")]
    assert len(set(ids)) == 4
    # timers close the windows silently: `current` emitted them already
    assert len(k.pending_timers()) == 2
    await k.fire_timers()
    assert len(k.published("out")) == 4


async def test_a_late_record_is_dropped_and_counted_as_late(tmp_path: Path) -> None:
    k = kit(tmp_path, {"type": "tumbling", "size": "10s", "grace": "5s", "to": "out"})
    await k.deliver("clicks", {}, key="a", timestamp=T0 + timedelta(seconds=1))
    closing = await k.deliver("clicks", {}, key="a", timestamp=T0 + timedelta(seconds=15))
    assert [s.value["records"] for s in closing.published] == [1]  # closed by stream time
    late = await k.deliver("clicks", {}, key="a", timestamp=T0 + timedelta(seconds=2))
    assert late.decision == "dropped"
    assert late.outcomes[0].cause == "LateRecord"
    assert late.published == []
    await k.fire_timers()  # the first window's timer: closed already, nothing
    assert [s.value["start"] for s in k.published("out")][1:] == [
        int((T0 + timedelta(seconds=10)).timestamp() * 1000)
    ]


async def test_results_to_a_handler_and_ids_that_name_the_window(tmp_path: Path) -> None:
    k = kit(tmp_path, {"type": "tumbling", "size": "10s", "to": "out"})
    other = kit(tmp_path, {"type": "tumbling", "size": "10s", "to": "out"})
    for each in (k, other):  # two runs, different invocations: the same event id
        await each.deliver("clicks", {}, key="a", timestamp=T0)
        await each.fire_timers()
    assert k.published("out")[0].event_id == other.published("out")[0].event_id

    h = kit(tmp_path, {"type": "tumbling", "size": "10s", "to_handler": "reports/on_window"})
    await h.deliver("clicks", {}, key="a", timestamp=T0)
    (fired,) = await h.fire_timers()
    (call,) = fired.calls
    assert (call.target, call.key, call.arg["value"], call.send) == (
        "reports/on_window",
        "a",
        1,
        True,
    )


async def test_a_quiet_keys_last_session_is_emitted_once_by_its_timer(tmp_path: Path) -> None:
    k = kit(
        tmp_path,
        {"type": "session", "gap": "30s", "aggregate": "sum", "field": "n", "to": "out"},
    )
    for second, n in [(0, 1), (20, 2), (45, 3)]:  # one session, grown by each record
        await k.deliver("clicks", {"n": n}, key="a", timestamp=T0 + timedelta(seconds=second))
    t0 = int(T0.timestamp() * 1000)
    timers = [t.arg for t in k.pending_timers()]
    assert timers == [[t0, t0 + 30_000], [t0, t0 + 50_000], [t0, t0 + 75_000]]
    assert k.published("out") == []

    fired = await k.fire_timers()  # the two stale timers do nothing, the last emits
    assert [len(d.published) for d in fired] == [0, 0, 1]
    (session,) = k.published("out")
    assert (session.key, session.value["start"], session.value["end"]) == ("a", t0, t0 + 75_000)
    assert (session.value["value"], session.value["records"]) == (6, 3)

    late = await k.deliver("clicks", {"n": 9}, key="a", timestamp=T0 + timedelta(seconds=50))
    assert late.decision == "dropped" and late.outcomes[0].cause == "LateRecord"
    await k.fire_timers()
    assert len(k.published("out")) == 1


async def test_a_bridging_record_emits_the_merged_session_with_current(tmp_path: Path) -> None:
    k = kit(
        tmp_path, {"type": "session", "gap": "10s", "grace": "1m", "emit": "current", "to": "out"}
    )
    for second in (0, 15, 8):  # 8 s is within 10 s of both: one session
        await k.deliver("clicks", {}, key="a", timestamp=T0 + timedelta(seconds=second))
    seen = [(s.value["start"], s.value["end"], s.value["value"]) for s in k.published("out")]
    t0 = int(T0.timestamp() * 1000)
    assert seen == [
        (t0, t0 + 10_000, 1),
        (t0 + 15_000, t0 + 25_000, 1),
        (t0 + 15_000, t0 + 25_000, None),  # merged away: its result is void
        (t0, t0 + 25_000, 3),
    ]
    gone = k.published("out")[2].value
    assert (gone["final"], gone["merged_into"]) == (True, [t0, t0 + 25_000])
    await k.fire_timers()  # `current` emitted every change already: the timers add nothing
    assert len(k.published("out")) == 4


async def test_sliding_windows_are_emitted_once_each_by_stream_time_or_timer(
    tmp_path: Path,
) -> None:
    k = kit(tmp_path, {"type": "sliding", "size": "10s", "to": "out"})
    for second in (0, 4, 12):
        await k.deliver("clicks", {}, key="a", timestamp=T0 + timedelta(seconds=second))
    t0 = int(T0.timestamp() * 1000)
    # 12 s passed the windows ending at 0 s and 4 s (no grace): emitted by the stream time
    assert [(s.value["end"], s.value["value"]) for s in k.published("out")] == [
        (t0 + 1, 1),
        (t0 + 4_001, 2),
    ]
    await k.fire_timers()  # 0 s and 4 s: emitted already; 12 s's window: [2.001 s, 12.001 s)
    assert [(s.value["start"], s.value["value"]) for s in k.published("out")][2:] == [
        (t0 + 2_001, 2)
    ]
