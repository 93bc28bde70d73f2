"""A record whose key is not UTF-8 stops a subscription's partition for good (Restate cannot
route it to an object): status names the partition, the offset and why; unblock dead-letters
the record and moves the binding past it, losing and skipping nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors import Record, TopicAdmin, produce_records
from restate_stream.bindings import load_bindings
from restate_stream.cli import main
from restate_stream.cli.status import render_text as render_status
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.control.blocked import BlockedPartition, UnblockError, unblock
from restate_stream.control.status import BindingStatus, binding_statuses
from restate_stream.runtime.bound import bind
from restate_stream.runtime.dead_letter import parse_record
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    RestateApp,
    bindings_yaml,
    drop_cluster,
    object_state,
    topic_records,
    wait_until,
)
from tests.integration import poison_app

pytestmark = pytest.mark.engines

BAD_KEY = b"\xff\xfe"


async def test_blocked_partition_is_named_and_unblocked(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = uuid.uuid4().hex[:8]
    topic, dlq, cluster = f"orders-{run}", f"orders-{run}.dlq", f"c-{run}"
    bootstrap = restate_stream_stack.bootstrap_servers
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            admin_url=restate_stream_stack.admin_url,
            clusters={cluster: bootstrap},
            topics={topic: {"cluster": cluster, "partitions": 2}},
            bindings=[
                {
                    "name": "orders",
                    "topic": topic,
                    "handler": "PoisonSink/consume",
                    "dead_letter": dlq,
                }
            ],
        )
    )
    spec = load_bindings(path)
    assert bind([poison_app.sink], spec) == ["PoisonSink/consume"]
    keys = [f"{run}-{k}" for k in range(3)]
    expected: dict[str, list[int]] = {}

    def order(key: bytes | str | None, i: int, partition: int) -> Record:
        if isinstance(key, str) or key is None:
            expected.setdefault("" if key is None else key, []).append(i)
        return Record(key, json.dumps({"id": i, "amount": i}), partition)

    before = [order(keys[i % 3], i, (i % 3) % 2) for i in range(10)]
    bad_offset = sum(1 for r in before if r.partition == 0)
    after = [order(keys[i % 3], i, (i % 3) % 2) for i in range(10, 30)]
    # Keyless records on a keyed binding: Restate delivers them to the object with key "".
    after += [order(None, i, 0) for i in range(30, 33)]
    total = sum(map(len, expected.values()))

    async def processed() -> dict[str, Any]:
        state = await object_state(restate_admin, "PoisonSink", "orders")
        return {k: [i for i, _ in v] for k, v in state.items() if k in expected}

    async def status() -> BindingStatus:
        [s] = await binding_statuses(spec, restate_admin, TopicAdmin)
        return s

    async with restate_app(poison_app.app):
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        produce_records(bootstrap, topic, before)
        produce_records(bootstrap, topic, [Record(BAD_KEY, json.dumps({"id": 99}), 0)])
        produce_records(bootstrap, topic, after)

        # Restate's consumer has handed over every record before the bad one (so it sits on it).
        before_ids = [json.loads(str(r.value))["id"] for r in before]
        await wait_until(
            processed,
            lambda s: set(before_ids) <= {i for ids in s.values() for i in ids},
            timeout=60,
        )
        blocked = BlockedPartition(topic, 0, bad_offset, "key is not UTF-8 text (ff fe)", "ff fe")
        stuck = await wait_until(status, lambda s: s.blocked == [blocked], timeout=60)
        line = f"blocked p0@{bad_offset}: key is not UTF-8 text (ff fe); run restate-stream "
        assert line + "unblock orders" in render_status([stuck])
        assert stuck.to_json()["blocked"] == [dataclasses.asdict(blocked)]
        # Partition 1 flows meanwhile (its commits catch up); partition 0 stays at the record.
        flowing = await wait_until(status, lambda s: s.lag[1].lag == 0, timeout=60)
        assert flowing.lag[0].lag > 0 and flowing.blocked == [blocked]

        # Without a dead-letter topic unblock refuses, naming what it would drop.
        no_dlq = dataclasses.replace(spec.bindings[0], dead_letter=None)
        with pytest.raises(UnblockError, match=rf"would drop 1 record\(s\): {topic}\[0\]@"):
            await unblock(dataclasses.replace(spec, bindings=[no_dlq]), "orders", restate_admin)

        capsys.readouterr()
        assert await asyncio.to_thread(main, ["unblock", "orders", "-f", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"{topic} p0@{bad_offset} (key is not UTF-8 text (ff fe)" in out, out
        assert f"dead-lettered to {dlq}" in out and "subscription recreated" in out, out
        assert f"p0 now resumes at offset {bad_offset + 1}" in out, out

        final = await wait_until(
            processed, lambda s: sum(map(len, s.values())) >= total, timeout=120
        )
        settled = await wait_until(status, lambda s: s.total_lag == 0, timeout=60)
        assert settled.blocked == [] and settled.state == "active"
        again = await unblock(spec, "orders", restate_admin)
        assert again.nothing_blocked and again.deleted_subscriptions == []
        [letter_record] = await topic_records(bootstrap, dlq, at_least=1)
        await drop_cluster(restate_admin, cluster)

    # Every good record exactly once, in order per key (a key stays on one partition);
    # the keyless ones under the key "", one object for all of them.
    assert final == expected
    assert letter_record.key == BAD_KEY, "the raw key is the dead letter's Kafka key"
    letter = parse_record(letter_record.value or b"").to_json()
    assert letter["binding"] == "orders"
    assert (letter["source"]["topic"], letter["source"]["partition"]) == (topic, 0)
    assert letter["source"]["offset"] == bad_offset
    assert letter["error"]["type"] == "UnroutableKey"
    assert "key is not UTF-8 text (ff fe)" in letter["error"]["message"]
    assert letter["key_base64"] == "//4="
    assert json.loads(letter["value"]) == {"id": 99}
