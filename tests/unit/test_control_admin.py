"""AdminClient error handling against a fake transport (pure HTTP logic, no server)."""

from __future__ import annotations

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


async def test_unreachable_admin_names_the_url_after_deadline() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    admin = AdminClient(
        "http://admin.test:9070", startup_timeout=0.5, transport=httpx.MockTransport(handler)
    )
    async with admin:
        with pytest.raises(
            AdminUnavailableError, match=r"http://admin.test:9070.*GET /deployments"
        ):
            await admin.list_deployments()


async def test_query_asks_for_json() -> None:
    seen: dict[str, str] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["accept"] = request.headers["accept"]
        return httpx.Response(200, json={"rows": [{"n": 3}]})

    async with AdminClient("http://admin.test", transport=httpx.MockTransport(handler)) as admin:
        assert await admin.query("SELECT 3 AS n") == [{"n": 3}]
    assert seen["accept"] == "application/json"
