"""Dedupe on the real engines: the window forgets the oldest ids, a dead-lettered event is
not remembered, so `dlq redrive` processes it instead of dropping it as a duplicate, and the
window an earlier version kept as one list still drops its ids after the upgrade.

The window (`DEDUPE_WINDOW`, 1000 ids) has no bindings option; the eviction test patches the
module attribute to 3, which works because the app is served in this process.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient, sql_literal
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime import dedupe
from restate_stream.runtime.bound import SEEN_COUNT, SEEN_PREFIX, bind, remembered_ids
from restate_stream.runtime.dead_letter import DeadLetter, parse_record
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    ServedApp,
    bindings_yaml,
    drop_cluster,
    object_state,
    produce_json,
    run_cli,
    topic_records,
    wait_until,
)
from tests.integration import dedupe_app

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]


def cloudevent(event_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "type": "t", "source": "test", "data": data}


def write_bindings(path: Path, stack: LocalStack, run: str, dead_letter: bool) -> None:
    binding: dict[str, Any] = {
        "name": "sink",
        "topic": f"dedupe-{run}",
        "handler": "DedupeSink/consume",
        "dedupe": True,
    }
    if dead_letter:
        binding["dead_letter"] = f"dedupe-{run}.dlq"
    path.write_text(
        bindings_yaml(
            admin_url=stack.admin_url,
            ingress_url=stack.ingress_url,
            clusters={f"dd-{run}": stack.bootstrap_servers},
            topics={f"dedupe-{run}": {"cluster": f"dd-{run}", "partitions": 1}},
            bindings=[binding],
        )
    )


async def window_of(admin: AdminClient, key: str) -> list[str]:
    """The ids in DedupeSink `key`'s dedupe window, oldest first, from all its state."""
    rows = await admin.query(
        "SELECT key, value_utf8 FROM state WHERE service_name = 'DedupeSink' "
        f"AND service_key = {sql_literal(key)}"
    )
    return remembered_ids({row["key"]: json.loads(row["value_utf8"]) for row in rows})


async def state_names(admin: AdminClient, key: str) -> set[str]:
    rows = await admin.query(
        "SELECT key FROM state WHERE service_name = 'DedupeSink' "
        f"AND service_key = {sql_literal(key)}"
    )
    return {row["key"] for row in rows}


async def test_an_id_evicted_from_the_window_is_processed_again(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: Callable[[Any], AbstractAsyncContextManager[ServedApp]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dedupe, "DEDUPE_WINDOW", 3)
    run = uuid.uuid4().hex[:8]
    path = tmp_path / "bindings.yaml"
    write_bindings(path, restate_stream_stack, run, dead_letter=False)
    spec = load_bindings(path)
    bind([dedupe_app.sink], spec)
    key = f"{run}-k"
    ids = [f"{run}-e{i}" for i in range(1, 7)]
    e1, e2, e3, e4, e5, e6 = ids
    # After e5 the window holds e3, e4, e5: e4 again is a duplicate, e1 again is not.
    sent = [e1, e2, e3, e4, e5, e4, e1, e6]

    async def seen() -> list[str]:
        state = await object_state(restate_admin, "DedupeSink", "seen", object_key=key)
        return list(state.get(key, []))

    async with restate_app(dedupe_app.app):
        try:
            _, report = await apply_bindings(spec, restate_admin)
            assert report.ok, report.render()
            produce_json(
                restate_stream_stack.bootstrap_servers,
                f"dedupe-{run}",
                [(key, cloudevent(i, {"n": n})) for n, i in enumerate(sent)],
            )
            # e6 is last on the partition: once it is processed, every record before it is done.
            processed = await wait_until(seen, lambda s: s[-1:] == [e6], timeout=90)
            window = await window_of(restate_admin, key)
            names = await state_names(restate_admin, key)
        finally:
            await drop_cluster(restate_admin, f"dd-{run}")

    assert processed == [e1, e2, e3, e4, e5, e1, e6], "e4 dropped in the window, e1 evicted"
    assert window == [e5, e1, e6], "the window keeps the last 3 processed ids"
    kept = {n for n in names if n.startswith(SEEN_PREFIX)}
    assert kept == {SEEN_PREFIX + i for i in window}, "evicted ids leave no entry behind"
    # 3 ids, 3 ring slots, the counter, the high-water offsets and the handler's own entry.
    assert len(names) == 3 + 3 + 3, sorted(names)


async def test_a_dead_lettered_event_is_redriven_not_dropped_as_a_duplicate(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: Callable[[Any], AbstractAsyncContextManager[ServedApp]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dedupe_app, "POISON_FAILS", True)
    run = uuid.uuid4().hex[:8]
    topic, dlq, bootstrap = (
        f"dedupe-{run}",
        f"dedupe-{run}.dlq",
        restate_stream_stack.bootstrap_servers,
    )
    path = tmp_path / "bindings.yaml"
    write_bindings(path, restate_stream_stack, run, dead_letter=True)
    spec = load_bindings(path)
    bind([dedupe_app.sink], spec)
    key = f"{run}-k"
    poison, good, again = f"{run}-poison", f"{run}-good", f"{run}-after"

    async def seen() -> list[str]:
        state = await object_state(restate_admin, "DedupeSink", "seen", object_key=key)
        return list(state.get(key, []))

    async with restate_app(dedupe_app.app):
        try:
            _, report = await apply_bindings(spec, restate_admin)
            assert report.ok, report.render()
            produce_json(
                bootstrap,
                topic,
                [(key, cloudevent(poison, {"poison": True})), (key, cloudevent(good, {}))],
            )
            assert await wait_until(seen, lambda s: s == [good], timeout=90) == [good]
            [letter] = await topic_records(bootstrap, dlq, at_least=1)
            dead = parse_record(letter.value or b"")
            assert isinstance(dead, DeadLetter) and dead.error.type == "TerminalError"
            window = await window_of(restate_admin, key)
            assert window == [good], "a dead-lettered event's id is not remembered"

            monkeypatch.setattr(dedupe_app, "POISON_FAILS", False)
            redriven = run_cli("dlq", "redrive", "sink", "-f", str(path), cwd=REPO)
            assert redriven.returncode == 0, redriven.stdout + redriven.stderr
            assert "1 source record(s): 1 resolved" in redriven.stdout, redriven.stdout
            assert await seen() == [good, poison], "redrive processed it despite dedupe"

            # Now it is remembered: the same event consumed again is a duplicate.
            produce_json(
                bootstrap,
                topic,
                [(key, cloudevent(poison, {"poison": True})), (key, cloudevent(again, {}))],
            )
            final = await wait_until(seen, lambda s: s[-1:] == [again], timeout=90)
            window = await window_of(restate_admin, key)
        finally:
            await drop_cluster(restate_admin, f"dd-{run}")

    assert final == [good, poison, again], "after a successful redrive the id is deduplicated"
    assert window == [good, poison, again]


async def test_the_window_of_an_earlier_version_still_drops_its_ids(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: Callable[[Any], AbstractAsyncContextManager[ServedApp]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dedupe, "DEDUPE_WINDOW", 3)
    run = uuid.uuid4().hex[:8]
    path = tmp_path / "bindings.yaml"
    write_bindings(path, restate_stream_stack, run, dead_letter=False)
    spec = load_bindings(path)
    bind([dedupe_app.sink], spec)
    key = f"{run}-k"
    o1, o2, o3, n1, last = (f"{run}-{name}" for name in ("o1", "o2", "o3", "n1", "last"))

    async def seen() -> list[str]:
        state = await object_state(restate_admin, "DedupeSink", "seen", object_key=key)
        return list(state.get(key, []))

    async with restate_app(dedupe_app.app):
        try:
            _, report = await apply_bindings(spec, restate_admin)
            assert report.ok, report.render()
            # The old window first (no event id: not deduplicated), then, "after the upgrade",
            # o2 again (in it: dropped), n1 (evicts o1), o1 again (evicted: processed), o3 again.
            records = [(key, {"legacy_window": [o1, o2, o3]})]
            records += [(key, cloudevent(i, {})) for i in (o2, n1, o1, o3, last)]
            produce_json(restate_stream_stack.bootstrap_servers, f"dedupe-{run}", records)
            processed = await wait_until(seen, lambda s: s[-1:] == [last], timeout=90)
            window = await window_of(restate_admin, key)
            names = await state_names(restate_admin, key)
        finally:
            await drop_cluster(restate_admin, f"dd-{run}")

    assert processed == [n1, o1, last], "o2 and o3 dropped: the old window still counts"
    assert window == [n1, o1, last]
    assert SEEN_COUNT in names and "restate-stream.seen-event-ids" not in names, "migrated"
