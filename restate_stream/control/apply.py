"""Apply: carry out a plan against the Restate admin API and Kafka, in order.

Stops at the first failure and reports what was applied, what failed and what was not
attempted; the plan is recomputed from live state on the next run, so rerunning finishes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from connectors import TopicAdmin
from restate_stream._util.poll import apoll
from restate_stream.bindings import BindingsFile
from restate_stream.control.admin import AdminClient
from restate_stream.control.plan import (
    AddPartitions,
    Change,
    CreateCluster,
    CreateSubscription,
    CreateTopic,
    DeleteCluster,
    DeleteSubscription,
    Plan,
    RegisterDeployment,
    TopicAdminFactory,
    UpdateCluster,
    cluster_of,
    plan_live,
)
from restate_stream.errors import describe

Progress = Callable[[str], None]

# After deleting a subscription, wait for its consumer to leave the group, so the group's
# final offsets are committed before a recreated subscription joins and reads from them.
GROUP_DRAIN_TIMEOUT = 30.0


@dataclass(frozen=True)
class Outcome:
    change: Change
    status: str  # "applied" | "failed" | "not attempted"
    detail: str = ""


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.status == "applied" for o in self.outcomes)

    def render(self) -> str:
        if not self.outcomes:
            return "Nothing to apply: Restate and Kafka already match the file."
        lines = []
        for o in self.outcomes:
            detail = f": {o.detail}" if o.detail else ""
            lines.append(f"[{o.status}] {o.change.describe()}{detail}")
        applied = sum(o.status == "applied" for o in self.outcomes)
        lines.append(f"{applied} of {len(self.outcomes)} change(s) applied.")
        if not self.ok:
            lines.append("Fix the failure and run apply again: it continues from what is live.")
        return "\n".join(lines)


class _Executor:
    def __init__(
        self,
        spec: BindingsFile,
        admin: AdminClient,
        topic_admin: TopicAdminFactory,
    ) -> None:
        self.spec = spec
        self.admin = admin
        self.topic_admin = topic_admin

    def _topics(self, cluster: str) -> TopicAdmin:
        return self.topic_admin(self.spec.clusters[cluster].properties)

    async def run(self, change: Change) -> str:
        match change:
            case CreateCluster(name, properties):
                await self.admin.create_kafka_cluster(name, properties)
            case UpdateCluster(name, properties, _):
                await self.admin.update_kafka_cluster(name, properties)
            case DeleteCluster(name):
                await self.admin.delete_kafka_cluster(name, force=True)
            case CreateTopic(cluster, name, partitions, replication_factor, config, _):
                await asyncio.to_thread(
                    self._topics(cluster).create_topic,
                    name,
                    partitions,
                    replication_factor,
                    config,
                )
            case AddPartitions(cluster, name, _, wanted):
                await asyncio.to_thread(self._topics(cluster).add_partitions, name, wanted)
            case RegisterDeployment(uri):
                deployment = await self.admin.register_deployment(uri)
                return f"{deployment.id} serving {', '.join(deployment.services)}"
            case CreateSubscription(_, source, sink, options, _):
                return (await self.admin.create_subscription(source, sink, options)).id
            case DeleteSubscription(sub_id, source, _, _, _, wait_group):
                await self.admin.delete_subscription(sub_id)
                if wait_group is not None:
                    await self._wait_group_left(cluster_of(source), wait_group)
        return ""

    async def _wait_group_left(self, cluster: str, group: str) -> None:
        if cluster not in self.spec.clusters:
            return  # a cluster the file does not declare: no properties to ask Kafka with
        admin = self._topics(cluster)

        async def has_members() -> bool:
            return await asyncio.to_thread(admin.group_has_members, group)

        # The next subscription on the same group must not join while the old consumer is in.
        await apoll(
            has_members,
            until=lambda members: not members,
            what=f"the deleted subscription's consumer to leave group {group!r}",
            timeout=GROUP_DRAIN_TIMEOUT,
            describe=lambda _: "still a member",
        )


async def apply_plan(
    plan: Plan,
    spec: BindingsFile,
    admin: AdminClient,
    *,
    topic_admin: TopicAdminFactory = TopicAdmin,
    progress: Progress | None = None,
) -> ApplyReport:
    executor = _Executor(spec, admin, topic_admin)
    report = ApplyReport()
    failed = False
    for change in plan.changes:
        if failed:
            report.outcomes.append(Outcome(change, "not attempted"))
            continue
        try:
            detail = await executor.run(change)
        except Exception as exc:  # reported, then the remaining changes are skipped
            failed = True
            report.outcomes.append(Outcome(change, "failed", describe(exc)))
        else:
            report.outcomes.append(Outcome(change, "applied", detail))
        if progress is not None:
            last = report.outcomes[-1]
            progress(f"[{last.status}] {change.describe()}")
    return report


async def apply_bindings(
    spec: BindingsFile,
    admin: AdminClient,
    *,
    prune: bool = False,
    refresh_clusters: bool = False,
    topic_admin: TopicAdminFactory = TopicAdmin,
    progress: Progress | None = None,
    only: str | None = None,
) -> tuple[Plan, ApplyReport]:
    """Plan against the live state, then apply: what `restate-stream apply` does (with `only`,
    for that one binding)."""
    plan = await plan_live(
        spec,
        admin,
        prune=prune,
        refresh_clusters=refresh_clusters,
        only=only,
        topic_admin=topic_admin,
    )
    return plan, await apply_plan(plan, spec, admin, topic_admin=topic_admin, progress=progress)
