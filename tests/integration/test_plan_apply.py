"""Declarative bindings on the real engines: plan/apply, handler change, pause/resume, prune."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors import TopicAdmin
from restate_stream.bindings import BindingsFile, load_bindings
from restate_stream.bindings.edit import set_paused
from restate_stream.control.admin import AdminApiError, AdminClient
from restate_stream.control.apply import apply_bindings
from restate_stream.control.plan import Plan, compute_plan, fetch_live
from restate_stream.control.status import binding_statuses
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    RestateApp,
    bindings_yaml,
    drop_cluster,
    object_state,
    produce_json,
    wait_until,
)
from tests.integration import bindings_app
from tests.integration.bindings_app import app

pytestmark = pytest.mark.engines

KEYS = 6
PARTITIONS = 3


@dataclass
class Scenario:
    stack: LocalStack
    admin: AdminClient
    path: Path
    topic: str
    cluster: str
    run: str  # prefix of this test's object keys

    def write(self, handler: str = "record_a", *, before: Sequence[dict[str, Any]] = ()) -> None:
        """The file with one binding to BindingsLog/`handler`, after the bindings `before`."""
        binding = {
            "name": self.topic,
            "topic": self.topic,
            "handler": f"BindingsLog/{handler}",
            "start": "earliest",
        }
        self.path.write_text(
            bindings_yaml(
                admin_url=self.stack.admin_url,
                clusters={self.cluster: "${TEST_BOOTSTRAP}"},
                topics={self.topic: {"cluster": self.cluster, "partitions": PARTITIONS}},
                bindings=[*before, binding],
            )
        )

    def spec(self) -> BindingsFile:
        return load_bindings(self.path)

    async def plan(self, prune: bool = False) -> Plan:
        spec = self.spec()
        return compute_plan(spec, await fetch_live(spec, self.admin), prune=prune)

    async def apply(self, prune: bool = False) -> Plan:
        plan, report = await apply_bindings(self.spec(), self.admin, prune=prune)
        assert report.ok, report.render()
        return plan

    def produce(self, seqs: range) -> None:
        records = [(f"{self.run}-{seq % KEYS}", {"seq": seq}) for seq in seqs]
        produce_json(self.stack.bootstrap_servers, self.topic, records)

    async def state(self, name: str) -> dict[str, list[int]]:
        everything = await object_state(self.admin, "BindingsLog", name)
        return {k: v for k, v in everything.items() if k.startswith(f"{self.run}-")}

    async def wait_count(self, name: str, count: int) -> dict[str, list[int]]:
        async def probe() -> dict[str, list[int]]:
            return await self.state(name)

        return await wait_until(
            probe,
            lambda s: sum(map(len, s.values())) >= count,
            timeout=90,
            describe=lambda s: f"{sum(map(len, s.values()))}/{count} in {name}",
        )

    def expected(self, seqs: range) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for seq in seqs:
            out.setdefault(f"{self.run}-{seq % KEYS}", []).append(seq)
        return out


@pytest.fixture
async def scenario(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Scenario]:
    monkeypatch.setenv("TEST_BOOTSTRAP", restate_stream_stack.bootstrap_servers)
    run = uuid.uuid4().hex[:8]
    async with restate_app(app):
        s = Scenario(
            restate_stream_stack,
            restate_admin,
            tmp_path / "bindings.yaml",
            topic=f"bindings-{run}",
            cluster=f"c-{run}",
            run=run,
        )
        yield s
        await drop_cluster(restate_admin, s.cluster)


async def test_apply_twice_then_change_handler_keeps_offsets(scenario: Scenario) -> None:
    scenario.write("record_a")
    first = await scenario.apply()
    kinds = sorted(type(c).__name__ for c in first.changes)
    assert kinds == ["CreateCluster", "CreateSubscription", "CreateTopic"]
    assert TopicAdmin(scenario.stack.bootstrap_servers).topics()[scenario.topic] == PARTITIONS

    second = await scenario.plan()
    assert second.empty, second.render()
    assert "No changes" in second.render()

    scenario.produce(range(0, 300))
    a = await scenario.wait_count("a", 300)
    assert a == scenario.expected(range(0, 300))

    scenario.write("record_b")
    change = await scenario.apply()
    assert [type(c).__name__ for c in change.changes] == [
        "DeleteSubscription",
        "CreateSubscription",
    ]
    assert "record_a -> service://BindingsLog/record_b" in change.render()
    scenario.produce(range(300, 600))
    b = await scenario.wait_count("b", 300)
    # No pause needed to catch a replay: in each partition a re-delivered old record would
    # come before the new ones, so it would be among the 300 b has seen and fail the check.
    assert await scenario.state("b") == scenario.expected(range(300, 600)), "skipped or replayed"
    assert await scenario.state("a") == a, "the old handler ran again"
    assert b == scenario.expected(range(300, 600))
    assert (await scenario.plan()).empty


async def test_pause_resume_and_status_lag(scenario: Scenario) -> None:
    scenario.write()
    await scenario.apply()
    scenario.produce(range(0, 60))
    await scenario.wait_count("a", 60)

    assert set_paused(scenario.path, scenario.topic, True)
    paused_plan = await scenario.apply()
    assert [type(c).__name__ for c in paused_plan.changes] == ["DeleteSubscription"]
    live = await scenario.admin.list_subscriptions()
    assert not [s for s in live if scenario.cluster in s.source]

    scenario.produce(range(60, 150))

    # The marker that the paused binding has caught up with nothing: all 90 new records are on
    # the broker and its consumer group's committed offsets have not moved past them.
    async def paused_status() -> Any:
        [status] = await binding_statuses(scenario.spec(), scenario.admin, TopicAdmin)
        return status

    status = await wait_until(paused_status, lambda s: s.total_lag == 90, timeout=60)
    assert sum(map(len, (await scenario.state("a")).values())) == 60, "consumed while paused"
    assert status.state == "paused"
    assert status.total_lag == 90, status
    assert status.invocations.get("succeeded") is None  # no subscription, nothing attributed

    assert set_paused(scenario.path, scenario.topic, False)
    await scenario.apply()
    final = await scenario.wait_count("a", 150)
    assert final == scenario.expected(range(0, 150)), "lost or doubled across pause/resume"

    async def lag() -> int:
        [s] = await binding_statuses(scenario.spec(), scenario.admin, TopicAdmin)
        return s.total_lag

    assert await wait_until(lag, lambda n: n == 0, timeout=60) == 0

    async def resumed_status() -> Any:
        [s] = await binding_statuses(scenario.spec(), scenario.admin, TopicAdmin)
        return s

    # State is journaled before an invocation completes: the count catches up a moment later.
    resumed = await wait_until(
        resumed_status, lambda s: s.invocations.get("succeeded", 0) >= 90, timeout=60
    )
    assert resumed.state == "active" and resumed.invocations.get("succeeded") == 90


async def test_prune_only_with_the_flag(scenario: Scenario) -> None:
    scenario.write()
    await scenario.apply()
    stray_cluster = f"{scenario.cluster}-stray"
    await scenario.admin.create_kafka_cluster(
        stray_cluster, {"bootstrap.servers": scenario.stack.bootstrap_servers}
    )
    stray = await scenario.admin.create_subscription(
        f"kafka://{scenario.cluster}/{scenario.topic}", "service://BindingsLog/record_b"
    )
    try:
        keep = await scenario.apply()
        assert keep.empty
        assert any(stray.id in n for n in keep.notes)
        assert any(stray_cluster in n for n in keep.notes)
        assert any(s.id == stray.id for s in await scenario.admin.list_subscriptions())

        pruned = await scenario.apply(prune=True)
        deleted = {getattr(c, "id", None) or getattr(c, "name", None) for c in pruned.changes}
        assert stray.id in deleted and stray_cluster in deleted
        assert all(s.id != stray.id for s in await scenario.admin.list_subscriptions())
        assert await scenario.admin.get_kafka_cluster(stray_cluster) is None
        assert await scenario.admin.get_kafka_cluster(scenario.cluster) is not None
    finally:
        await drop_cluster(scenario.admin, stray_cluster)


async def test_failed_apply_reports_and_rerun_completes(
    scenario: Scenario,
    restate_app: RestateApp,
) -> None:
    late_binding = {
        "name": f"{scenario.topic}-late",
        "topic": scenario.topic,
        "handler": "BindingsLate/handle",
    }
    # The late binding comes first in the file but its service is not registered yet.
    scenario.write("record_a", before=[late_binding])
    _, report = await apply_bindings(scenario.spec(), scenario.admin)
    assert not report.ok
    statuses = [(type(o.change).__name__, o.status) for o in report.outcomes]
    assert statuses == [
        ("CreateCluster", "applied"),
        ("CreateTopic", "applied"),
        ("CreateSubscription", "failed"),
        ("CreateSubscription", "not attempted"),
    ]
    rendered = report.render()
    assert "BindingsLate" in rendered and "2 of 4 change(s) applied" in rendered
    assert "run apply again" in rendered

    async with restate_app(bindings_app.late_app):
        rerun = await scenario.apply()
        assert [type(c).__name__ for c in rerun.changes] == ["CreateSubscription"] * 2
        assert (await scenario.plan()).empty


async def test_status_names_the_stuck_key(scenario: Scenario) -> None:
    scenario.write("record_or_fail")
    await scenario.apply()
    stuck_key = f"{scenario.run}-stuck"
    produce_json(
        scenario.stack.bootstrap_servers,
        scenario.topic,
        [
            (stuck_key, {"seq": 1, "fail": True}),
            (stuck_key, {"seq": 2}),
            (f"{scenario.run}-ok", {"seq": 3}),
        ],
    )

    async def status() -> Any:
        [s] = await binding_statuses(scenario.spec(), scenario.admin, TopicAdmin)
        return s

    s = await wait_until(status, lambda s: bool(s.stuck_keys), timeout=60)
    assert [k["key"] for k in s.stuck_keys] == [stuck_key]
    assert s.stuck_keys[0]["status"] in ("backing-off", "paused")
    assert "cannot handle 1 yet" in (s.stuck_keys[0]["last_failure"] or "")
    ok = await scenario.wait_count("a", 1)
    assert ok == {f"{scenario.run}-ok": [3]}, "other keys keep flowing; the stuck key waits"
    for invocation in await scenario.admin.query(
        "SELECT id FROM sys_invocation WHERE target_service_key = "
        f"'{stuck_key}' AND status != 'completed'"
    ):
        try:
            await scenario.admin.kill_invocation(invocation["id"])
        except AdminApiError as exc:
            # Killing the stuck one lets the key's next invocation finish on its own.
            assert exc.status == 409, exc
