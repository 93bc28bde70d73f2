"""binding_statuses when Restate answers the invocations query with an error (no server: a
fake transport and a fake Kafka admin)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import cast

import httpx
import pytest

from connectors import PartitionLag, TopicAdmin
from restate_stream.bindings import parse_bindings
from restate_stream.cli.status import render_text
from restate_stream.control.admin import AdminApiError, AdminClient
from restate_stream.control.status import binding_statuses

SPEC = parse_bindings(
    """
kafka:
  clusters:
    c1: {bootstrap.servers: "127.0.0.1:9092"}
bindings:
  - {name: orders, topic: orders, handler: Orders/apply}
""",
    Path("bindings.yaml"),
)
SUBSCRIPTIONS = {
    "subscriptions": [
        {
            "id": "sub_1",
            "source": "kafka://c1/orders",
            "sink": "service://Orders/apply",
            "options": {"group.id": SPEC.bindings[0].consumer_group},
        }
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
