"""AdminClient error handling against a fake transport (pure HTTP logic, no server)."""

from __future__ import annotations

import base64
import errno
import json

import httpx
import pytest

from restate_stream.control.admin import AdminApiError, AdminClient, AdminUnavailableError


async def test_restate_error_message_and_status_surface() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json={"message": "Kafka cluster 'nope' not found", "restate_code": "META0015"},
        )

    async with AdminClient("http://admin.test", transport=httpx.MockTransport(handler)) as admin:
        with pytest.raises(AdminApiError) as raised:
            await admin.create_subscription("kafka://nope/t", "service://S/h")
    err = raised.value
    assert err.status == 400
    assert err.restate_code == "META0015"
    assert "Kafka cluster 'nope' not found" in str(err)
    assert "POST http://admin.test/subscriptions -> 400" in str(err)


CANARY = "canary-0f1e2d3c"
TOKEN = "token-9a8b7c6d"


async def test_an_error_body_is_shown_without_the_secrets_sent() -> None:
    """Restate may quote what it was sent: the SASL password, a URL's token."""
    echoed = f"bad property sasl.password={CANARY!r}; cannot reach https://{TOKEN}@registry"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"message": echoed, "restate_code": "META0001"})

    properties = {
        "bootstrap.servers": "k:9092",
        "sasl.password": CANARY,
        "schema.registry.url": f"https://{TOKEN}@registry",
    }
    async with AdminClient("http://admin.test", transport=httpx.MockTransport(handler)) as admin:
        with pytest.raises(AdminApiError) as raised:
            await admin.create_kafka_cluster("c", properties)
    assert raised.value.message == (
        "bad property sasl.password='***'; cannot reach https://***@registry"
    )
    assert CANARY not in str(raised.value) and TOKEN not in str(raised.value)


async def test_a_starting_servers_answer_is_shown_without_the_secrets_sent() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text=f"not ready for options {{'sasl.password': {CANARY!r}}}")

    admin = AdminClient(
        f"http://u:{TOKEN}@admin.test",
        startup_timeout=0.3,
        transport=httpx.MockTransport(handler),
    )
    async with admin:
        with pytest.raises(AdminUnavailableError) as raised:
            await admin.create_subscription(
                "kafka://c/t", "service://S/h", {"sasl.password": CANARY}
            )
    assert "not ready for options {'sasl.password': '***'}" in str(raised.value)
    assert CANARY not in str(raised.value) and TOKEN not in str(raised.value)


async def test_retries_while_starting_then_succeeds() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("connection refused", request=request)
        if calls == 2:
            return httpx.Response(503, text="starting")
        return httpx.Response(200, json={"subscriptions": []})

    async with AdminClient("http://admin.test", transport=httpx.MockTransport(handler)) as admin:
        assert await admin.list_subscriptions() == []
    assert calls == 3


async def test_unreachable_admin_is_one_line_naming_the_url_after_deadline() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
        raise httpx.ConnectError("All connection attempts failed", request=request) from refused

    admin = AdminClient(
        "http://admin.test:9070", startup_timeout=0.5, transport=httpx.MockTransport(handler)
    )
    async with admin:
        with pytest.raises(AdminUnavailableError) as raised:
            await admin.list_deployments()
    assert str(raised.value) == (
        "Restate admin API at http://admin.test:9070 is not reachable: connection refused "
        "(retried for 0.5s); is the server running? Any live node of a Restate cluster serves "
        "the same admin API"
    )


async def test_a_503_that_persists_is_reported_with_its_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"message": "node lookup for partition 2 failed"})

    admin = AdminClient(
        "http://admin.test:9070", startup_timeout=0.3, transport=httpx.MockTransport(handler)
    )
    async with admin:
        with pytest.raises(AdminUnavailableError) as raised:
            await admin.list_subscriptions()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(
        "Restate admin API at http://admin.test:9070 answered GET /subscriptions with 503 "
        "(retried for 0.3s): "
    )
    assert "node lookup for partition 2 failed" in message


async def test_a_request_sent_without_answer_is_not_repeated() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("", request=request)

    async with AdminClient("http://admin.test", transport=httpx.MockTransport(handler)) as admin:
        with pytest.raises(AdminUnavailableError) as raised:
            await admin.create_subscription("kafka://c/t", "service://S/h")
    assert calls == 1  # it may have acted: repeating a POST is not safe
    assert str(raised.value) == (
        "Restate admin API at http://admin.test did not answer POST /subscriptions: ReadTimeout"
    )


async def test_query_asks_for_json() -> None:
    seen: dict[str, str] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["accept"] = request.headers["accept"]
        return httpx.Response(200, json={"rows": [{"n": 3}]})

    async with AdminClient("http://admin.test", transport=httpx.MockTransport(handler)) as admin:
        assert await admin.query("SELECT 3 AS n") == [{"n": 3}]
    assert seen["accept"] == "application/json"


async def test_a_password_in_the_admin_url_is_basic_auth_and_stays_out_of_its_errors() -> None:
    authorizations: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        authorizations.append(request.headers.get("authorization"))
        if request.url.path == "/deployments":
            raise httpx.ConnectError("All connection attempts failed", request=request)
        return httpx.Response(404, json={"message": "no such subscription"})

    admin = AdminClient(
        "http://ops:hunter2@admin.test:9070",
        startup_timeout=0.3,
        transport=httpx.MockTransport(handler),
    )
    async with admin:
        with pytest.raises(AdminUnavailableError) as unreachable:
            await admin.list_deployments()
        with pytest.raises(AdminApiError) as refused:
            await admin.delete_subscription("sub_1")
    assert admin.admin_url == "http://admin.test:9070"
    assert set(authorizations) == {"Basic " + base64.b64encode(b"ops:hunter2").decode()}
    for error in (unreachable.value, refused.value):
        assert "hunter2" not in str(error) and "admin.test:9070" in str(error)


async def test_a_secret_quoted_inside_json_is_not_shown_escaped() -> None:
    """Restate answering with the request's JSON in its message: a password holding `"`, `\\`
    or a non-ASCII character is there escaped, not as sent."""
    password = 'pa"ss\\wörd-' + CANARY
    echoed = "invalid options " + json.dumps({"sasl.password": password})

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"message": echoed})

    async with AdminClient("http://admin.test", transport=httpx.MockTransport(handler)) as admin:
        with pytest.raises(AdminApiError) as raised:
            await admin.create_kafka_cluster(
                "c", {"bootstrap.servers": "k:9092", "sasl.password": password}
            )
    assert raised.value.message == 'invalid options {"sasl.password": "***"}'
