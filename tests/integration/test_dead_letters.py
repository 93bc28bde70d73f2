"""Poison records on the real engines: each bad record is dead-lettered with its reason,
every good one is processed once, in order, and keys with poison keep flowing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors import Record, TopicAdmin, produce_records
from restate_stream.bindings import load_bindings
from restate_stream.cli.status import render_text as render_status
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.control.status import binding_statuses
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


async def test_poison_mix_goes_to_dead_letters_and_keys_keep_flowing(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
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
                    "retry": {
                        "max_attempts": 3,
                        "initial_interval": "50ms",
                        "max_interval": "200ms",
                    },
                }
            ],
        )
    )
    spec = load_bindings(path)
    assert bind([poison_app.sink], spec) == ["PoisonSink/consume"]

    keys = [f"{run}-{k}" for k in range(4)]
    records: list[tuple[str, bytes]] = []
    good: dict[str, list[int]] = {k: [] for k in keys}
    bad: dict[tuple[str, int], str] = {}  # (key, index within key) -> expected error type
    for i in range(120):
        key = keys[i % 4]
        n = len([r for r in records if r[0] == key])
        if i % 10 == 3:
            records.append((key, b"{not json"))
            bad[(key, n)] = "DecodeError"
        elif i % 10 == 5:
            records.append((key, json.dumps({"id": i}).encode()))  # missing amount
            bad[(key, n)] = "DecodeError"
        elif i % 10 == 7:
            records.append(
                (key, json.dumps({"id": i, "amount": 1, "outcome": "terminal"}).encode())
            )
            bad[(key, n)] = "TerminalError"
        elif i == 9:
            records.append((key, json.dumps({"id": i, "amount": 1, "outcome": "flaky"}).encode()))
            bad[(key, n)] = "RetriesExhausted"
        else:
            records.append((key, json.dumps({"id": i, "amount": i}).encode()))
            good[key].append(i)

    async with restate_app(poison_app.app):
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        assert dlq in TopicAdmin(bootstrap).topics(), "apply creates the dead-letter topic"
        produce_records(bootstrap, topic, [Record(k, v) for k, v in records])
        total_good = sum(map(len, good.values()))

        async def processed() -> dict[str, Any]:
            state = await object_state(restate_admin, "PoisonSink", "orders")
            return {k: v for k, v in state.items() if k in good}

        final = await wait_until(
            processed, lambda s: sum(map(len, s.values())) >= total_good, timeout=120
        )
        letters = await topic_records(bootstrap, dlq, at_least=len(bad))
        [status] = await binding_statuses(spec, restate_admin, TopicAdmin)
        assert (status.dead_letter_topic, status.dead_letters) == (dlq, len(bad))
        assert f"{len(bad)} on {dlq}" in render_status([status])
        await drop_cluster(restate_admin, cluster)

    for key in keys:
        assert [order_id for order_id, _ in final[key]] == good[key], f"{key}: lost/dup/order"
    assert len(letters) == len(bad), "every bad record is dead-lettered exactly once"
    by_error: dict[str, int] = {}
    for message in letters:
        letter = parse_record(message.value or b"").to_json()
        assert (message.key or b"").decode() == letter["key"], "the original key is kept"
        assert letter["binding"] == "orders" and letter["source"]["topic"] == topic
        assert letter["source"]["offset"] >= 0 and letter["error"]["message"]
        by_error[letter["error"]["type"]] = by_error.get(letter["error"]["type"], 0) + 1
        if letter["error"]["type"] == "RetriesExhausted":
            assert letter["attempts"] == 3
            assert "downstream unavailable" in letter["error"]["message"]
        if letter["value"] == "{not json":
            assert "invalid JSON" in letter["error"]["message"]
    expected_counts: dict[str, int] = {}
    for error in bad.values():
        expected_counts[error] = expected_counts.get(error, 0) + 1
    assert by_error == expected_counts
    assert total_good + len(letters) == len(records), "the counts add up"


async def test_a_refused_dead_letter_blocks_the_key_instead_of_losing_the_record(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
) -> None:
    """The dead-letter topic refuses the record (too large): the invocation keeps retrying,
    the key's later records wait, other keys flow; once the topic accepts it, all proceed."""
    run = uuid.uuid4().hex[:8]
    topic, dlq, cluster = f"orders-{run}", f"orders-{run}.dlq", f"c-{run}"
    bootstrap = restate_stream_stack.bootstrap_servers
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            admin_url=restate_stream_stack.admin_url,
            clusters={cluster: bootstrap},
            topics={
                topic: {"cluster": cluster, "partitions": 1},
                dlq: {"cluster": cluster, "partitions": 1, "config": {"max.message.bytes": "300"}},
            },
            bindings=[
                {
                    "name": "orders",
                    "topic": topic,
                    "handler": "PoisonSink/consume",
                    "dead_letter": dlq,
                    "retry": {"initial_interval": "100ms", "max_interval": "500ms"},
                }
            ],
        )
    )
    spec = load_bindings(path)
    bind([poison_app.sink], spec)
    blocked, flowing = f"{run}-blocked", f"{run}-flowing"
    # Undecodable (text where Order says int) and too large for the dead-letter topic.
    rejected = {"id": 1, "amount": "x" * 400}

    async with restate_app(poison_app.app):
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        produce_records(
            bootstrap,
            topic,
            [
                Record(blocked, json.dumps(rejected)),
                Record(blocked, json.dumps({"id": 2, "amount": 2})),
                Record(flowing, json.dumps({"id": 3, "amount": 3})),
            ],
        )

        async def orders() -> dict[str, Any]:
            state = await object_state(restate_admin, "PoisonSink", "orders")
            return {k: [i for i, _ in v] for k, v in state.items() if k in (blocked, flowing)}

        assert (await wait_until(orders, lambda s: flowing in s, timeout=60)) == {flowing: [3]}

        # The marker that the refusal happened: the blocked key's invocation failed on it.
        async def pending() -> list[dict[str, Any]]:
            return await restate_admin.query(
                "SELECT status, last_failure FROM sys_invocation WHERE target_service_key = "
                f"'{blocked}' AND status != 'completed'"
            )

        def refused(rows: list[dict[str, Any]]) -> bool:
            return any("Message size too large" in (r.get("last_failure") or "") for r in rows)

        await wait_until(pending, refused, timeout=60)
        assert blocked not in await orders(), "the key waits behind the unrecorded failure"
        assert await topic_records(bootstrap, dlq) == [], "the dead-letter topic refused it"

        # The operator raises the limit: the next retry records the dead letter.
        TopicAdmin(bootstrap).set_topic_config(dlq, {"max.message.bytes": "1048576"})
        final = await wait_until(orders, lambda s: blocked in s, timeout=60)
        [letter] = await topic_records(bootstrap, dlq, at_least=1)
        await drop_cluster(restate_admin, cluster)

    assert final == {blocked: [2], flowing: [3]}
    assert parse_record(letter.value or b"").to_json()["error"]["type"] == "DecodeError"
