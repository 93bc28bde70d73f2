"""Avro in both wire formats and typed JSON through bindings, on the real engines."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors import Record, produce_records
from connectors.avro import AvroCodec
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.runtime.bound import bind
from restate_stream.runtime.dead_letter import parse_record
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    RestateApp,
    SchemaRegistryStub,
    bindings_yaml,
    drop_cluster,
    object_state,
    topic_records,
    wait_until,
)
from tests.integration import formats_app

pytestmark = pytest.mark.engines
SCHEMA = Path(__file__).parent / "schemas" / "payment.avsc"
OTHER_SCHEMA = {
    "type": "record",
    "name": "Other",
    "fields": [{"name": "label", "type": "string"}, {"name": "weight", "type": "double"}],
}


async def test_avro_both_wires_and_typed_json(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    bootstrap = restate_stream_stack.bootstrap_servers
    cluster = f"c-{run}"
    path = tmp_path / "bindings.yaml"
    avro = {"format": "avro", "schema": SCHEMA}
    path.write_text(
        bindings_yaml(
            admin_url=restate_stream_stack.admin_url,
            clusters={cluster: bootstrap},
            topics={
                f"{name}-{run}": {"cluster": cluster, "partitions": 1}
                for name in ("plain", "confluent", "json")
            },
            bindings=[
                {
                    "name": f"plain-{run}",
                    "topic": f"plain-{run}",
                    "handler": "FormatSink/avro_plain",
                    **avro,
                    "dead_letter": f"dlq-{run}",
                },
                {
                    "name": f"confluent-{run}",
                    "topic": f"confluent-{run}",
                    "handler": "FormatSink/avro_confluent",
                    **avro,
                    "avro_wire": "confluent",
                    "dead_letter": f"dlq-{run}",
                },
                {
                    "name": f"json-{run}",
                    "topic": f"json-{run}",
                    "handler": "FormatSink/typed_json",
                    "dead_letter": f"dlq-{run}",
                },
            ],
        )
    )
    spec = load_bindings(path)
    bind([formats_app.sink], spec)
    payments = [{"id": i, "amount_cents": 100 * i, "currency": "EUR"} for i in range(20)]
    plain = AvroCodec(SCHEMA)
    confluent = AvroCodec(SCHEMA, wire="confluent", schema_id=7)
    other = AvroCodec(OTHER_SCHEMA)
    key = f"acct-{run}"

    async with restate_app(formats_app.app):
        _, report = await apply_bindings(spec, restate_admin)
        assert report.ok, report.render()
        produce_records(
            bootstrap,
            f"plain-{run}",
            [Record(key, plain.encode(p)) for p in payments[:10]]
            + [Record(key, other.encode({"label": "x" * 30, "weight": 1.5}))]
            + [Record(key, plain.encode(p)) for p in payments[10:]],
        )
        produce_records(
            bootstrap,
            f"confluent-{run}",
            [Record(key, confluent.encode(p)) for p in payments[:10]]
            + [Record(key, plain.encode(payments[5]))]  # no magic byte: not Confluent wire
            + [Record(key, confluent.encode(p)) for p in payments[10:]],
        )
        produce_records(
            bootstrap,
            f"json-{run}",
            [Record(key, json.dumps(p)) for p in payments[:10]]
            + [Record(key, json.dumps({"id": "not a number", "amount_cents": 1, "currency": "X"}))]
            + [Record(key, json.dumps(p)) for p in payments[10:]],
        )

        async def state(name: str) -> list[Any]:
            return list((await object_state(restate_admin, "FormatSink", name)).get(key, []))

        for name in ("avro_plain", "avro_confluent", "typed_json"):

            async def probe(name: str = name) -> list[Any]:
                return await state(name)

            got = await wait_until(probe, lambda items: len(items) >= 20, timeout=90)
            if name == "typed_json":
                assert [{k: v for k, v in g.items() if k != "offset"} for g in got] == payments
                assert [g["offset"] for g in got] == list(range(10)) + list(range(11, 21))
            else:
                assert got == payments, name
        letters = [
            parse_record(r.value or b"").to_json()
            for r in await topic_records(bootstrap, f"dlq-{run}", at_least=3)
        ]
        await drop_cluster(restate_admin, cluster)

    by_topic = {letter["source"]["topic"]: letter for letter in letters}
    assert set(by_topic) == {f"plain-{run}", f"confluent-{run}", f"json-{run}"}
    assert all(letter["error"]["type"] == "DecodeError" for letter in letters)
    assert by_topic[f"plain-{run}"]["source"]["offset"] == 10
    assert "expected 0x00" in by_topic[f"confluent-{run}"]["error"]["message"]
    assert "does not match Payment" in by_topic[f"json-{run}"]["error"]["message"]


async def test_confluent_wire_resolves_writer_schemas_through_a_registry(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
) -> None:
    # The producer wrote with a newer schema (an extra field) registered as id 42.
    writer = json.loads(SCHEMA.read_text())
    writer["fields"].append({"name": "note", "type": "string", "default": ""})
    registry = SchemaRegistryStub({42: writer})
    registry.start()
    run = uuid.uuid4().hex[:8]
    bootstrap = restate_stream_stack.bootstrap_servers
    cluster, topic = f"c-{run}", f"registry-{run}"
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            admin_url=restate_stream_stack.admin_url,
            clusters={cluster: bootstrap},
            topics={topic: {"cluster": cluster, "partitions": 1}},
            bindings=[
                {
                    "name": topic,
                    "topic": topic,
                    "handler": "FormatSink/avro_confluent",
                    "format": "avro",
                    "avro_wire": "confluent",
                    "schema": SCHEMA,
                    "schema_registry": registry.url,
                    "dead_letter": f"dlq-{run}",
                }
            ],
        )
    )
    spec = load_bindings(path)
    bind([formats_app.sink], spec)
    newer = AvroCodec(writer, wire="confluent", schema_id=42)
    unknown = AvroCodec(writer, wire="confluent", schema_id=99)
    key = f"acct-{run}"
    payments = [{"id": i, "amount_cents": i, "currency": "EUR", "note": "n"} for i in range(5)]
    try:
        async with restate_app(formats_app.app):
            _, report = await apply_bindings(spec, restate_admin)
            assert report.ok, report.render()
            produce_records(
                bootstrap,
                topic,
                [Record(key, newer.encode(p)) for p in payments[:3]]
                + [Record(key, unknown.encode(payments[3]))]
                + [Record(key, newer.encode(payments[4]))],
            )

            async def state() -> list[Any]:
                items = await object_state(restate_admin, "FormatSink", "avro_confluent")
                return list(items.get(key, []))

            got = await wait_until(state, lambda items: len(items) >= 4, timeout=60)
            [letter] = await topic_records(bootstrap, f"dlq-{run}", at_least=1)
            await drop_cluster(restate_admin, cluster)
    finally:
        registry.stop()

    # Read with the binding's (older) schema: the extra field is dropped, nothing is lost.
    assert got == [
        {k: v for k, v in p.items() if k != "note"} for i, p in enumerate(payments) if i != 3
    ]
    error = parse_record(letter.value or b"").to_json()["error"]
    assert error["type"] == "DecodeError" and "unknown schema id 99" in error["message"]
    assert registry.requests.count("/schemas/ids/42") == 1, "ids are looked up once, then cached"
