"""binding_statuses and `restate-stream status` when Restate answers the invocations query
with an error or loses the answer (no server: a fake transport and a fake Kafka admin)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import httpx
import pytest

from connectors import PartitionLag, TopicAdmin
from restate_stream.bindings import BindingsFile, parse_bindings
from restate_stream.cli import main
from restate_stream.cli.status import render_text
from restate_stream.control.admin import AdminApiError, AdminClient, AdminUnavailableError
from restate_stream.control.status import binding_statuses
from restate_stream.testing import bindings_yaml

YAML = bindings_yaml(
    admin_url="http://admin.test",
    clusters={"c1": "127.0.0.1:9092"},
    bindings=[
        {"name": "orders", "topic": "orders", "handler": "Orders/apply"},
        {"name": "refunds", "topic": "refunds", "handler": "Refunds/apply"},
    ],
)
TWO = parse_bindings(YAML, Path("bindings.yaml"))
SPEC = dataclasses.replace(TWO, bindings=TWO.bindings[:1])
SUBSCRIPTIONS = {
    "subscriptions": [
        {
            "id": f"sub_{i}",
            "source": f"kafka://c1/{b.topic}",
            "sink": b.sink,
            "options": {"group.id": b.consumer_group},
        }
        for i, b in enumerate(TWO.bindings, 1)
    ]
}


class NoLag:
    def group_lag(self, group: str, topic: str) -> list[PartitionLag]:
        return []


def no_lag(properties: Mapping[str, str]) -> TopicAdmin:
    return cast(TopicAdmin, NoLag())


def restate(query_status: int, message: str) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/subscriptions":
            return httpx.Response(200, json=SUBSCRIPTIONS)
        return httpx.Response(query_status, json={"message": message})

    return httpx.MockTransport(handler)


async def test_a_cluster_that_cannot_answer_the_query_shows_invocations_unknown() -> None:
    message = "Datafusion error: External error:\nnode lookup for partition 0 failed"
    async with AdminClient("http://admin.test", transport=restate(500, message)) as admin:
        [status] = await binding_statuses(SPEC, admin, no_lag)
    assert (status.state, status.subscription_ids) == ("active", ["sub_1"])
    assert status.invocations_error == (
        "500: Datafusion error: External error: node lookup for partition 0 failed"
    )
    [row] = [line for line in render_text([status]).splitlines() if line.startswith("orders")]
    assert "unknown (500: Datafusion error: External error: node lookup" in row


async def test_a_query_restate_rejects_is_a_bug_and_raises() -> None:
    async with AdminClient("http://admin.test", transport=restate(400, "no such column")) as admin:
        with pytest.raises(AdminApiError, match="no such column"):
            await binding_statuses(SPEC, admin, no_lag)


def lost_query_answers(queries: list[str]) -> httpx.MockTransport:
    """Subscriptions listed; then every query is sent and its answer lost (the node died)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/subscriptions":
            return httpx.Response(200, json=SUBSCRIPTIONS)
        queries.append(request.content.decode())
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    return httpx.MockTransport(handler)


LOST = (
    "Restate admin API at http://admin.test did not answer POST /query: "
    "Server disconnected without sending a response."
)


async def test_a_query_answer_lost_midway_shows_invocations_unknown() -> None:
    queries: list[str] = []
    async with AdminClient("http://admin.test", transport=lost_query_answers(queries)) as admin:
        orders, refunds = await binding_statuses(TWO, admin, no_lag)
    assert (orders.state, orders.subscription_ids) == ("active", ["sub_1"])
    assert (refunds.state, refunds.subscription_ids) == ("active", ["sub_2"])
    assert orders.invocations_error == refunds.invocations_error == LOST
    assert (orders.invocations, orders.stuck_keys) == ({}, [])
    # Asked once: the next binding does not wait out the retries on a node that went away.
    assert len(queries) == 1, queries
    rows = [line for line in render_text([orders, refunds]).splitlines() if "sub_" in line]
    assert len(rows) == 2 and all(f"unknown ({LOST})" in row for row in rows), rows


@pytest.fixture
def fake_engines(monkeypatch: pytest.MonkeyPatch) -> list[httpx.MockTransport]:
    """`restate-stream status` talks to the transport the test puts in the list."""
    transports: list[httpx.MockTransport] = []

    def admin_client(spec: BindingsFile, wait: float) -> AdminClient:
        [transport] = transports
        return AdminClient(spec.restate.admin_url, startup_timeout=wait, transport=transport)

    monkeypatch.setattr("restate_stream.cli.status.admin_client", admin_client)
    monkeypatch.setattr("restate_stream.cli.status.TopicAdmin", no_lag)
    return transports


def test_status_with_a_lost_query_answer_exits_0_and_says_unknown(
    fake_engines: list[httpx.MockTransport], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "b.yaml").write_text(YAML)
    fake_engines.append(lost_query_answers([]))
    assert main(["status", "-f", str(tmp_path / "b.yaml")]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    rows = [line for line in out.splitlines() if line.startswith(("orders", "refunds"))]
    assert len(rows) == 2 and all(f"unknown ({LOST})" in row for row in rows), out


def test_status_with_the_listing_unreachable_is_one_error_line_and_exit_2(
    fake_engines: list[httpx.MockTransport], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    (tmp_path / "b.yaml").write_text(YAML)
    fake_engines.append(httpx.MockTransport(handler))
    assert main(["status", "-f", str(tmp_path / "b.yaml")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "error: Restate admin API at http://admin.test did not answer GET /subscriptions: "
        "Server disconnected without sending a response.\n"
    )


async def test_an_unreachable_listing_still_raises() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("All connection attempts failed", request=request)

    admin = AdminClient(
        "http://admin.test", startup_timeout=0.2, transport=httpx.MockTransport(handler)
    )
    async with admin:
        with pytest.raises(AdminUnavailableError, match="is not reachable"):
            await binding_statuses(TWO, admin, no_lag)


async def test_a_binding_without_subscription_has_nothing_to_ask_after_a_lost_answer() -> None:
    missing = parse_bindings(YAML.replace("refunds", "returns"), Path("bindings.yaml")).bindings[
        1
    ]  # declared, and no subscription of it on the server
    spec = dataclasses.replace(TWO, bindings=[TWO.bindings[0], missing])
    async with AdminClient("http://admin.test", transport=lost_query_answers([])) as admin:
        orders, returns = await binding_statuses(spec, admin, no_lag)
    assert orders.invocations_error == LOST
    assert (returns.state, returns.invocations_error, returns.invocations) == ("missing", None, {})


class LagUnreadable:
    def group_lag(self, group: str, topic: str) -> list[PartitionLag]:
        raise TimeoutError("no answer from 127.0.0.1:9092 in 10s")


async def test_an_unreadable_lag_leaves_blocked_partitions_unknown_not_none() -> None:
    """Blocked partitions are found from the lag: without it they are unknown (an exporter
    alert on them must not read 0)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/subscriptions":
            return httpx.Response(200, json=SUBSCRIPTIONS)
        return httpx.Response(200, json={"rows": []})

    async with AdminClient("http://admin.test", transport=httpx.MockTransport(handler)) as admin:
        [status] = await binding_statuses(
            SPEC, admin, lambda properties: cast(TopicAdmin, LagUnreadable())
        )
    assert status.lag_error == "TimeoutError: no answer from 127.0.0.1:9092 in 10s"
    assert status.blocked_error == "the consumer group's lag could not be read"
    assert status.blocked == [] and status.invocations_error is None


class Behind:
    def group_lag(self, group: str, topic: str) -> list[PartitionLag]:
        return [PartitionLag(0, 0, 50_000, 50_000)]


def batched(per: str) -> BindingsFile:
    text = bindings_yaml(
        admin_url="http://admin.test",
        clusters={"c1": "127.0.0.1:9092"},
        bindings=[
            {
                "name": "clicks",
                "topic": "clicks",
                "handler": "Clicks/on_clicks",
                "batch": {"max_records": 1000, "per": per},
            }
        ],
    )
    return parse_bindings(text, Path("bindings.yaml"))


@pytest.mark.parametrize(("per", "keys", "warned"), [("key", 10_000, True), ("key", 100, False),
                                                     ("partition", 10_000, False)])  # fmt: skip
async def test_a_per_key_binding_behind_over_many_keys_is_warned_of(
    per: str, keys: int, warned: bool
) -> None:
    queries: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/subscriptions":
            return httpx.Response(200, json={"subscriptions": []})
        sql = json.loads(request.content)["query"]
        queries.append(sql)
        if "count(DISTINCT target_service_key)" in sql:
            return httpx.Response(200, json={"rows": [{"n": keys}]})
        return httpx.Response(200, json={"rows": []})

    async with AdminClient("http://admin.test", transport=httpx.MockTransport(handler)) as admin:
        [status] = await binding_statuses(
            batched(per), admin, lambda properties: cast(TopicAdmin, Behind())
        )
    text = render_text([status])
    if warned:
        (warning,) = status.warnings
        assert warning.startswith("clicks: 50,000 records behind with per: key over 10,000 keys")
        assert "per: partition" in warning and warning in text
    else:
        assert status.warnings == [] and "records behind" not in text
    # per: partition never asks for the keys.
    assert any("DISTINCT" in q for q in queries) == (per == "key")
