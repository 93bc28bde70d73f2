"""Windows and tables on the real engines: a tumbling count over records with out-of-order
event times matches the truth computed from what was produced, every window is emitted by its
durable timer with no later record to close it, and once only (a timer firing again and a
late record emit nothing); a table keeps the last value per key, a tombstone deletes it, and a
handler reads it through the table's shared handler."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import restate

from connectors import Record, produce_records
from restate_stream.bindings import BindingsFile, load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.bound import bind
from restate_stream.runtime.provided import provided_services
from restate_stream.runtime.publisher import Publisher
from restate_stream.stack import LocalStack
from restate_stream.tables import Table
from restate_stream.testing import (
    RestateApp,
    bindings_yaml,
    drop_cluster,
    topic_records,
    wait_until,
)

pytestmark = pytest.mark.engines

SIZE_MS, GRACE_MS = 2_000, 6_000
KEYS, RECORDS = 3, 90


def _spec(
    stack: LocalStack, tmp: Path, cluster: str, topic: str, partitions: int, binding: dict[str, Any]
) -> BindingsFile:
    """A bindings file of one binding on one declared topic, loaded as the worker loads it."""
    path = tmp / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            admin_url=stack.admin_url,
            clusters={cluster: stack.bootstrap_servers},
            topics={topic: {"cluster": cluster, "partitions": partitions}},
            bindings=[binding],
        )
    )
    return load_bindings(path)


async def test_a_tumbling_count_is_emitted_once_per_window_by_its_timer(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    topic, results, dlq, cluster = f"clicks-{run}", f"counts-{run}", f"clicks-{run}.dlq", f"c-{run}"
    name = f"clicks-{run}"
    bootstrap = restate_stream_stack.bootstrap_servers
    window = {
        "type": "tumbling",
        "size": f"{SIZE_MS}ms",
        "grace": f"{GRACE_MS}ms",
        "time_field": "ts",
        "to": results,
        "late": "dead_letter",
    }
    binding = {"name": name, "topic": topic, "dead_letter": dlq, "window": window}
    spec = _spec(restate_stream_stack, tmp_path, cluster, topic, 2, binding)
    publishers: dict[str, Publisher] = {}
    provided = provided_services(spec, [], publishers)
    bind(provided, spec, publishers)

    # Event times over three windows, shuffled: out of order within each key, none past grace
    # (the spread is below the grace), so every record counts; no record after them closes a
    # window by stream time, so every emission is a timer's.
    rng = random.Random(run)
    base = int(time.time() * 1000) // SIZE_MS * SIZE_MS
    produced = [
        (f"k{i % KEYS}", base - 2 * SIZE_MS + rng.randrange(3 * SIZE_MS)) for i in range(RECORDS)
    ]
    rng.shuffle(produced)
    truth = Counter((key, ts - ts % SIZE_MS) for key, ts in produced)
    last_close = max(start for _, start in truth) + SIZE_MS + GRACE_MS

    async with restate_app(restate.app(provided)):
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        values = [Record(k, json.dumps({"ts": ts}).encode()) for k, ts in produced]
        produce_records(bootstrap, topic, values)

        emitted = await topic_records(bootstrap, results, at_least=len(truth), timeout=120)
        seen_all = int(time.time() * 1000)
        counts = {}
        for message in emitted:
            result = json.loads(message.value or b"")["data"]
            assert result["final"] is True
            counts[(result["key"], result["start"])] = result["value"]
        assert counts == dict(truth), "the counts differ from what was produced"
        # No record came after: the timers emitted them, within end + grace + slack.
        assert seen_all <= last_close + 30_000, f"{seen_all - last_close} ms after the last close"

        # A timer firing again for an emitted window, and a late record for one: nothing more.
        key, start = next(iter(truth))
        async with httpx.AsyncClient(base_url=restate_stream_stack.ingress_url) as ingress:
            fired = await ingress.post(f"/{name}/{key}/close", json=start, timeout=30)
            assert fired.status_code == 200, fired.text
        produce_records(bootstrap, topic, [Record(key, json.dumps({"ts": start}).encode())])
        letters = await topic_records(bootstrap, dlq, at_least=1, timeout=60)
        again = await topic_records(bootstrap, results, at_least=len(truth))
        await drop_cluster(restate_admin, cluster)

    assert len(letters) == 1 and b"LateRecord" in (letters[0].value or b"")
    assert len(again) == len(truth), "a window was emitted twice"
    ids = [json.loads(m.value or b"")["id"] for m in again]
    assert len(set(ids)) == len(ids)


joiner = restate.VirtualObject("WindowsTestJoiner")
TABLE_NAME = "restaurants-test"
restaurants: Table[dict[str, Any]] = Table(TABLE_NAME, dict[str, Any])


@joiner.handler()
async def lookup(ctx: restate.ObjectContext, restaurant_id: str) -> dict[str, Any] | None:
    return await restaurants.get(ctx, restaurant_id)


async def test_a_table_keeps_the_last_value_per_key_and_a_tombstone_deletes_it(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    topic, cluster = f"restaurants-{run}", f"t-{run}"
    bootstrap = restate_stream_stack.bootstrap_servers
    # One partition: the records apply in the order produced, so once the last one is
    # readable, the tombstone before it has been applied.
    binding = {"name": TABLE_NAME, "topic": topic, "table": True}
    spec = _spec(restate_stream_stack, tmp_path, cluster, topic, 1, binding)
    provided = provided_services(spec, [joiner])
    bind(provided, spec)
    r1, r2, last = f"r1-{run}", f"r2-{run}", f"r3-{run}"
    records = [
        Record(r1, json.dumps({"name": "Pizzeria", "v": 1})),
        Record(r2, json.dumps({"name": "Sushi", "v": 1})),
        Record(r1, json.dumps({"name": "Pizzeria", "v": 2})),
        Record(r2, None),  # a tombstone: r2 is deleted
        Record(last, json.dumps({"name": "Tacos", "v": 1})),
    ]

    async with restate_app(restate.app([*provided, joiner])):
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        produce_records(bootstrap, topic, records)
        async with httpx.AsyncClient(base_url=restate_stream_stack.ingress_url) as ingress:

            async def read(key: str) -> Any:
                response = await ingress.post(f"/{TABLE_NAME}/{key}/get", timeout=30)
                response.raise_for_status()
                return response.json() if response.content else None

            await wait_until(lambda: read(last), lambda v: v is not None, timeout=90)
            final = (await read(r1), await read(r2))
            joined = await ingress.post("/WindowsTestJoiner/o1/lookup", json=r1, timeout=30)
            joined.raise_for_status()
        await drop_cluster(restate_admin, cluster)

    assert final == ({"name": "Pizzeria", "v": 2}, None)
    assert joined.json() == {"name": "Pizzeria", "v": 2}
