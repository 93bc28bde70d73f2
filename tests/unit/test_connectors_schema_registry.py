"""SchemaRegistryClient against a fake registry (httpx.MockTransport): caching and errors."""

from __future__ import annotations

import json

import httpx
import pytest

from connectors.schema_registry import SchemaRegistryClient, SchemaRegistryError

ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}],
}


def test_schema_by_id_is_fetched_once() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        assert request.url.path == "/schemas/ids/7"
        return httpx.Response(200, json={"schema": json.dumps(ORDER)})

    registry = SchemaRegistryClient("http://registry.test/", transport=httpx.MockTransport(handler))
    first = registry.schema_by_id(7)
    second = registry.schema_by_id(7)
    assert first is second
    assert first["name"] == "shop.Order"
    assert len(requests) == 1
    assert requests[0].headers["Accept"] == "application/vnd.schemaregistry.v1+json"


def test_register_posts_schema_text_and_returns_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 42})

    registry = SchemaRegistryClient(
        "http://registry.test", auth=("user", "secret"), transport=httpx.MockTransport(handler)
    )
    assert registry.register("orders-value", ORDER) == 42
    assert registry.register("orders-value", ORDER) == 42  # cached: same subject and schema
    assert len(seen) == 1
    request = seen[0]
    assert request.method == "POST"
    assert request.url.path == "/subjects/orders-value/versions"
    assert request.headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
    assert request.headers["Authorization"].startswith("Basic ")
    assert json.loads(json.loads(request.content)["schema"]) == ORDER


def test_unknown_id_names_url_code_and_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error_code": 40403, "message": "Schema 42 not found"})

    registry = SchemaRegistryClient("http://registry.test", transport=httpx.MockTransport(handler))
    with pytest.raises(SchemaRegistryError) as raised:
        registry.schema_by_id(42)
    err = raised.value
    assert err.status == 404
    assert err.error_code == 40403
    assert "GET http://registry.test/schemas/ids/42 -> 404" in str(err)
    assert "error_code 40403" in str(err)
    assert "Schema 42 not found" in str(err)


def test_unreachable_registry_names_the_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    registry = SchemaRegistryClient("http://registry.test", transport=httpx.MockTransport(handler))
    with pytest.raises(SchemaRegistryError, match=r"http://registry.test/schemas/ids/1.*refused"):
        registry.schema_by_id(1)


def test_non_avro_schema_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF"})

    registry = SchemaRegistryClient("http://registry.test", transport=httpx.MockTransport(handler))
    with pytest.raises(SchemaRegistryError, match="PROTOBUF schema, not Avro"):
        registry.schema_by_id(3)
