"""Window bindings in the in-memory kit: `emit: current`, hopping windows, `late: drop`,
results to a handler, and event ids that depend only on the window and the emission."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from restate_stream.testing import BindingsKit, bindings_yaml

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def kit(tmp_path: Path, window: dict[str, Any]) -> BindingsKit:
    path = tmp_path / "bindings.yaml"
    binding = {"name": "clicks", "topic": "clicks", "window": window}
    path.write_text(bindings_yaml(clusters={"local": "127.0.0.1:9092"}, bindings=[binding]))
    return BindingsKit.load(path, [])


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
