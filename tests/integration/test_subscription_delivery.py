"""The first events end to end: Kafka -> Restate subscription -> Python virtual object state.

Real Kafka broker and real Restate server, started by the plugin's session fixture.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

import pytest
import restate

from connectors import TopicAdmin
from restate_stream.control.admin import AdminClient, sql_literal
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    RestateApp,
    drop_cluster,
    object_state,
    produce_json,
    wait_until,
)

pytestmark = pytest.mark.engines

RECORDS = 1_200
KEYS = 24
PARTITIONS = 4

event_log = restate.VirtualObject("FirstEventLog")


@event_log.handler()
async def append(ctx: restate.ObjectContext, event: dict[str, Any]) -> None:
    seqs: list[int] = await ctx.get("seqs") or []
    seqs.append(event["seq"])
    ctx.set("seqs", seqs)


async def test_keyed_records_arrive_exactly_once_in_order(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
) -> None:
    topic = f"first-events-{uuid.uuid4().hex[:8]}"
    TopicAdmin(restate_stream_stack.bootstrap_servers).create_topic(topic, PARTITIONS)
    records = [(f"key-{seq % KEYS}", {"seq": seq}) for seq in range(RECORDS)]
    expected: dict[str, list[int]] = defaultdict(list)
    for key, value in records:
        expected[key].append(value["seq"])

    # Half before the subscription exists (read from `earliest`), half while it runs.
    produce_json(restate_stream_stack.bootstrap_servers, topic, records[: RECORDS // 2])

    async with restate_app(restate.app([event_log])):
        await restate_admin.create_kafka_cluster(
            topic, {"bootstrap.servers": restate_stream_stack.bootstrap_servers}
        )
        subscription = await restate_admin.create_subscription(
            f"kafka://{topic}/{topic}",
            "service://FirstEventLog/append",
            {"auto.offset.reset": "earliest"},
        )
        try:
            produce_json(restate_stream_stack.bootstrap_servers, topic, records[RECORDS // 2 :])

            async def state() -> dict[str, Any]:
                return await object_state(restate_admin, "FirstEventLog", "seqs")

            final = await wait_until(
                state,
                lambda s: sum(len(v) for v in s.values()) >= RECORDS,
                timeout=120,
                describe=lambda s: f"{sum(len(v) for v in s.values())}/{RECORDS} records",
            )

            async def completed() -> int:
                rows = await restate_admin.query(
                    "SELECT count(*) AS n FROM sys_invocation WHERE invoked_by_subscription_id = "
                    f"{sql_literal(subscription.id)} AND status = 'completed' "
                    "AND completion_result = 'success'"
                )
                return int(rows[0]["n"])

            # Restate writes an invocation's state as its entries are journaled, before the
            # invocation completes: the last ones may still be finishing when the state is full.
            succeeded = await wait_until(completed, lambda n: n >= RECORDS, timeout=60)
        finally:
            await drop_cluster(restate_admin, topic)

    assert len(final) == KEYS
    for key, seqs in expected.items():
        assert final[key] == seqs, f"{key}: out of order, missing or duplicated"
    assert succeeded == RECORDS
