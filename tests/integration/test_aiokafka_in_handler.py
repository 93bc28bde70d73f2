"""The aiokafka publisher inside a bound handler, on the real engines.

Each consumed record is relayed to an output topic with `Publisher(client="aiokafka")`. The
first attempt of every record fails right after its publish, so every record is replayed:
the ack must come from the journal (one record per input on the output topic, not two), and
each output record carries the event id and lands at the partition and offset the handler
got back.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from connectors import TopicAdmin
from connectors.producer import AioKafkaProducer
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.bound import bind
from restate_stream.runtime.publisher import Publisher
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    ServedApp,
    bindings_yaml,
    drop_cluster,
    object_state,
    produce_json,
    topic_records,
    wait_until,
)
from tests.integration import aiokafka_app

pytestmark = pytest.mark.engines


async def test_aiokafka_publisher_in_a_bound_handler_publishes_each_record_once(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: Callable[[Any], AbstractAsyncContextManager[ServedApp]],
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    source, out, cluster = f"aio-in-{run}", f"aio-out-{run}", f"aio-{run}"
    bootstrap = restate_stream_stack.bootstrap_servers
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            admin_url=restate_stream_stack.admin_url,
            clusters={cluster: bootstrap},
            topics={source: {"cluster": cluster, "partitions": 2}},
            bindings=[
                {
                    "name": "relay",
                    "topic": source,
                    "handler": "AioRelay/forward",
                    "retry": {"initial_interval": "50ms", "max_interval": "200ms"},
                }
            ],
        )
    )
    TopicAdmin(bootstrap).create_topic(out, 3)
    spec = load_bindings(path)
    assert bind([aiokafka_app.relay], spec) == ["AioRelay/forward"]
    publisher = Publisher({"bootstrap.servers": bootstrap}, client="aiokafka", source="aio-test")
    aiokafka_app.publisher = publisher
    keys = [f"{run}-{k}" for k in range(3)]
    inputs = [(keys[n % 3], {"n": n, "out": out}) for n in range(12)]

    async def sent() -> dict[str, list[list[Any]]]:
        state = await object_state(restate_admin, "AioRelay", "sent")
        return {k: v for k, v in state.items() if k in keys}

    try:
        async with restate_app(aiokafka_app.app):
            _, report = await apply_bindings(spec, restate_admin)
            assert report.ok, report.render()
            produce_json(bootstrap, source, inputs)
            final = await wait_until(
                sent, lambda s: sum(map(len, s.values())) >= len(inputs), timeout=120
            )
            # Every record was attempted twice (the first attempt failed after publishing).
            assert len([w for w in aiokafka_app.failed_once if w[0] == source]) == len(inputs)
            producers = list(publisher._producers.values())  # which client did the work
            assert producers and all(isinstance(p, AioKafkaProducer) for p in producers)
            # A marker record after all the others: once it is relayed, a stray second
            # publish of an earlier record (same key, earlier offset) would be on the topic.
            produce_json(bootstrap, source, [(keys[0], {"n": 99, "out": out})])
            await wait_until(sent, lambda s: [e[0] for e in s[keys[0]][-1:]] == [99], timeout=60)
            records = await topic_records(bootstrap, out, at_least=len(inputs) + 1)
    finally:
        aiokafka_app.publisher = None
        await drop_cluster(restate_admin, cluster)

    assert len(records) == len(inputs) + 1, "each consumed record published once despite replay"
    on_topic = {}
    for record in records:
        envelope = json.loads(record.value or b"")
        assert envelope["type"] == "relayed" and envelope["source"] == "aio-test"
        on_topic[envelope["id"]] = (
            (record.key or b"").decode(),
            envelope["data"]["n"],
            record.partition,
            record.offset,
        )
    assert len(on_topic) == len(records), "every record has its own event id"
    journaled = Counter(n for entries in final.values() for n, *_ in entries)
    assert journaled == Counter(n for _, value in inputs for n in [value["n"]])
    for key, entries in final.items():
        assert [n for n, *_ in entries] == [v["n"] for k, v in inputs if k == key], "key order"
        for n, event_id, partition, offset in entries:
            # The journaled ack names where the record is; the record carries the event id.
            assert on_topic[event_id] == (key, n, partition, offset)
