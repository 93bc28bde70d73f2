"""AvroCodec: plain and Confluent wire round trips, clear decode errors, writer-schema resolution
through a fake Schema Registry (httpx.MockTransport)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.avro import AvroCodec, AvroDecodeError, load_schema
from connectors.schema_registry import SchemaRegistryClient, SchemaRegistryError

ORDER_V1: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "qty", "type": "int"}],
}
# v2 adds a field with a default: v1 records stay readable (backward compatible).
ORDER_V2: dict[str, Any] = {
    **ORDER_V1,
    "fields": [*ORDER_V1["fields"], {"name": "note", "type": "string", "default": ""}],
}
# Same name, but nothing a v2 reader needs: no id, no qty.
ORDER_INCOMPATIBLE: dict[str, Any] = {**ORDER_V1, "fields": [{"name": "x", "type": "long"}]}
PAYMENT: dict[str, Any] = {
    "type": "record",
    "name": "Payment",
    "fields": [{"name": "amount", "type": "double"}, {"name": "currency", "type": "string"}],
}
ORDER = {"id": "o-1", "qty": 3}


def fake_registry(schemas: dict[int, dict[str, Any]], calls: list[int] | None = None) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        match = re.fullmatch(r"/schemas/ids/(\d+)", request.url.path)
        assert match, request.url
        schema_id = int(match[1])
        if calls is not None:
            calls.append(schema_id)
        if schema_id == 500:
            return httpx.Response(500, json={"error_code": 50001, "message": "store unavailable"})
        if schema_id not in schemas:
            return httpx.Response(
                404, json={"error_code": 40403, "message": f"Schema {schema_id} not found"}
            )
        return httpx.Response(200, json={"schema": json.dumps(schemas[schema_id])})

    return SchemaRegistryClient("http://registry.test", transport=httpx.MockTransport(handler))


def test_plain_round_trip() -> None:
    codec = AvroCodec(ORDER_V1)
    data = codec.encode(ORDER)
    assert data == b"\x06o-1\x06"  # schemaless binary: no header, no schema
    assert codec.decode(data) == ORDER


def test_confluent_round_trip_carries_the_schema_id() -> None:
    codec = AvroCodec(ORDER_V1, wire="confluent", schema_id=7)
    data = codec.encode(ORDER)
    assert data[:5] == b"\x00\x00\x00\x00\x07"
    assert data[5:] == AvroCodec(ORDER_V1).encode(ORDER)
    assert codec.decode(data) == ORDER


def test_schema_as_json_text_file_path_and_path(tmp_path: Path) -> None:
    path = tmp_path / "order.avsc"
    path.write_text(json.dumps(ORDER_V1))
    for schema in (json.dumps(ORDER_V1), str(path), path):
        codec = AvroCodec(schema)
        assert codec.name == "shop.Order"
        assert codec.decode(codec.encode(ORDER)) == ORDER


def test_garbage_is_not_confluent_wire_format() -> None:
    codec = AvroCodec(ORDER_V1, wire="confluent", schema_id=7)
    with pytest.raises(
        AvroDecodeError, match=r"^not Confluent wire format: first byte 0x7b, expected 0x00$"
    ):
        codec.decode(b'{"id": "o-1", "qty": 3}')
    with pytest.raises(AvroDecodeError, match="shorter than the 5-byte header"):
        codec.decode(b"\x00\x00\x07")
    with pytest.raises(AvroDecodeError, match="the record is empty"):
        codec.decode(b"")


@pytest.mark.parametrize("wire", ["plain", "confluent"])
def test_truncated_record(wire: Any) -> None:
    codec = AvroCodec(ORDER_V1, wire=wire, schema_id=7)
    data = codec.encode({"id": "a-longer-order-id", "qty": 3})
    with pytest.raises(AvroDecodeError, match=r"does not match schema shop.Order: .*ends early"):
        codec.decode(data[:-4])


def test_bytes_of_another_schema_do_not_decode() -> None:
    payment = AvroCodec(PAYMENT).encode({"amount": 12.5, "currency": "EUR"})
    with pytest.raises(
        AvroDecodeError, match=r"record does not match schema shop.Order: 10 bytes left"
    ):
        AvroCodec(ORDER_V1).decode(payment)


def test_unknown_schema_id_without_registry() -> None:
    data = AvroCodec(ORDER_V1, wire="confluent", schema_id=9).encode(ORDER)
    with pytest.raises(AvroDecodeError, match=r"^unknown schema id 9 "):
        AvroCodec(ORDER_V1, wire="confluent", schema_id=7).decode(data)


def test_without_id_or_registry_every_record_reads_with_own_schema() -> None:
    data = AvroCodec(ORDER_V1, wire="confluent", schema_id=9).encode(ORDER)
    assert AvroCodec(ORDER_V1, wire="confluent").decode(data) == ORDER


def test_writer_schema_from_registry_resolves_to_reader_schema() -> None:
    calls: list[int] = []
    registry = fake_registry({1: ORDER_V1, 2: ORDER_V2, 3: ORDER_INCOMPATIBLE}, calls)
    reader = AvroCodec(ORDER_V2, wire="confluent", schema_id=2, registry=registry)
    old = AvroCodec(ORDER_V1, wire="confluent", schema_id=1).encode(ORDER)

    assert reader.decode(old) == {**ORDER, "note": ""}
    assert reader.decode(old) == {**ORDER, "note": ""}
    assert calls == [1]  # the writer schema is fetched once, and never for the codec's own id
    assert reader.decode(reader.encode({**ORDER, "note": "hi"})) == {**ORDER, "note": "hi"}

    incompatible = AvroCodec(ORDER_INCOMPATIBLE, wire="confluent", schema_id=3).encode({"x": 5})
    with pytest.raises(AvroDecodeError, match=r"written with schema shop.Order cannot be read"):
        reader.decode(incompatible)

    unknown = AvroCodec(ORDER_V1, wire="confluent", schema_id=42).encode(ORDER)
    with pytest.raises(AvroDecodeError, match=r"^unknown schema id 42: .*Schema 42 not found"):
        reader.decode(unknown)


def test_registry_outage_is_not_a_decode_error() -> None:
    # A bad record is dead-lettered, a registry that cannot answer is retried: keep them apart.
    reader = AvroCodec(ORDER_V2, wire="confluent", schema_id=2, registry=fake_registry({}))
    data = AvroCodec(ORDER_V1, wire="confluent", schema_id=500).encode(ORDER)
    with pytest.raises(SchemaRegistryError, match="store unavailable") as raised:
        reader.decode(data)
    assert not isinstance(raised.value, AvroDecodeError)


def test_encode_mismatch_names_schema_and_field() -> None:
    codec = AvroCodec(ORDER_V1)
    with pytest.raises(
        ValueError, match=r"does not match Avro schema shop.Order: shop.Order.qty is 'three'"
    ):
        codec.encode({"id": "o-1", "qty": "three"})
    with pytest.raises(ValueError, match=r"shop.Order.qty is None \(NoneType\), expected int"):
        codec.encode({"id": "o-1"})
    with pytest.raises(ValueError, match=r"is 2147483648 \(int\), expected int"):
        codec.encode({"id": "o-1", "qty": 2**31})


def test_union_mismatch_is_one_problem() -> None:
    codec = AvroCodec({**PAYMENT, "fields": [{"name": "note", "type": ["null", "string"]}]})
    with pytest.raises(ValueError, match=r"Payment.note is 5 \(int\), expected null or string$"):
        codec.encode({"note": 5})


def test_confluent_encode_needs_schema_id() -> None:
    with pytest.raises(ValueError, match="Confluent wire format needs its schema_id"):
        AvroCodec(ORDER_V1, wire="confluent").encode(ORDER)


def test_schema_errors_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.avsc"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(str(broken))):
        load_schema(broken)
    missing = tmp_path / "missing.avsc"
    with pytest.raises(ValueError, match=re.escape(str(missing))):
        AvroCodec(missing)
    unknown_type = tmp_path / "ref.avsc"
    unknown_type.write_text(json.dumps({**PAYMENT, "fields": [{"name": "a", "type": "Nope"}]}))
    with pytest.raises(ValueError, match=re.escape(str(unknown_type))):
        load_schema(unknown_type)
