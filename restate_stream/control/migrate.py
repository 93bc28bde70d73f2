"""`restate-stream migrate NAME --to consumer|subscription`: move a live binding between a
Restate subscription and restate-stream's own consumer with nothing lost, nothing applied
twice and each key's order kept.

What makes it exact is not the order of the steps but the objects' high-water offsets
(runtime/high_water.py): every record a per-record binding applies on an exclusive object
handler moves its object's high-water for the record's partition in the same invocation, so a
record either delivery brings again is dropped. Both deliveries read from the group's committed
offsets, and each commits an offset only after every record before it is in Restate's log
(a subscription stores it once the record's append committed; the consumer once Restate
accepted the send), so a delivery that takes over starts at or before the first record not yet
applied, and what it re-reads is at or below the high-water. The order of the steps keeps that
re-reading small: the old delivery stops and leaves the group (its last offsets committed)
before the new one joins.

`plan_migration` is pure: the steps as data, from the file and the live subscriptions, or a
MigrationError saying why not. `run_migration` carries them out in order and stops at the first
failure; running migrate again continues from what is live and what the file says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from connectors import TopicAdmin
from restate_stream._util.poll import PollTimeout, apoll
from restate_stream.bindings import Binding, BindingsFile
from restate_stream.bindings.edit import set_delivery
from restate_stream.bindings.model import Delivery
from restate_stream.control.admin import AdminClient, Subscription
from restate_stream.control.plan import (
    TopicAdminFactory,
    binding_key,
    by_binding_key,
    same_subscription,
    subscription_options,
)
from restate_stream.errors import ConfigurationError, describe

# A stopping consumer drains its sends for up to 10 s; a killed one holds the group until its
# session times out (10 s): a minute covers both with room for a busy machine.
GROUP_EMPTY_TIMEOUT = 60.0
# Handler kinds whose objects keep a high-water (runtime/bound.py `_exclusive_object`).
EXACT_KINDS = frozenset({"exclusive"})


class MigrationError(ConfigurationError, ValueError):
    """The binding cannot be migrated as asked; the message says why and what to do."""


# --- the steps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StopSubscription:
    """Delete a subscription of the binding: Restate stops ingesting from the topic for it."""

    id: str
    source: str
    sink: str

    def describe(self) -> str:
        return f"delete subscription {self.id} ({self.source} -> {self.sink})"


@dataclass(frozen=True)
class WaitGroupEmpty:
    """Until the group has no members: the delivery that stopped committed its last offsets and
    left (a killed worker's consumer is dropped by the group when its session times out)."""

    cluster: str
    group: str
    leaving: str

    def describe(self) -> str:
        return f"wait until {self.leaving} has left group {self.group}"


@dataclass(frozen=True)
class WriteDelivery:
    """Write `delivery:` into the bindings file. The worker follows the file: with `consumer`
    its consumer starts from the group's committed offsets, with `subscription` it stops
    (drains, commits what Restate accepted, leaves the group). A worker started later reads
    it too, so a restarted worker never brings back the delivery the binding left."""

    path: Path
    binding: str
    delivery: Delivery

    def describe(self) -> str:
        return f"write `delivery: {self.delivery}` for {self.binding} into {self.path}"


@dataclass(frozen=True)
class StartSubscription:
    """Create the binding's subscription with its pinned group: it starts at the committed
    offsets the consumer left."""

    binding: str
    source: str
    sink: str
    options: dict[str, str]

    def describe(self) -> str:
        return (
            f"create subscription {self.source} -> {self.sink} (group {self.options['group.id']})"
        )


Step = StopSubscription | WaitGroupEmpty | WriteDelivery | StartSubscription


@dataclass(frozen=True)
class Migration:
    binding: str
    group: str
    to: Delivery
    steps: tuple[Step, ...]


# --- planning (pure) ---------------------------------------------------------------------------


def plan_migration(
    spec: BindingsFile,
    name: str,
    to: Delivery,
    subscriptions: list[Subscription],
    handler_kind: str | None = None,
) -> Migration:
    """The steps that move binding `name` to delivery `to`, given the live subscriptions and
    (when the app was imported) the kind of its handler ("exclusive", "shared", "workflow",
    "service"); MigrationError when it cannot be done exactly or there is nothing to do."""
    binding = find_binding(spec, name)
    _check_exact(spec, binding, handler_kind)
    current = by_binding_key(subscriptions).get(binding_key(binding), [])
    group = binding.consumer_group
    wait = WaitGroupEmpty(binding.cluster, group, "")
    if to == "consumer":
        if binding.delivered_by == "consumer" and not current:
            raise MigrationError(
                f"binding {name} is already delivered by the consumer (group {group}, no "
                "subscription left): nothing to migrate"
            )
        steps: list[Step] = [StopSubscription(s.id, s.source, s.sink) for s in current]
        if current:
            steps.append(replace(wait, leaving="the deleted subscription's consumer"))
        if binding.delivered_by != "consumer":
            steps.append(WriteDelivery(spec.path, name, "consumer"))
        return Migration(name, group, to, tuple(steps))
    as_subscription = replace(binding, delivery="subscription")
    wanted = subscription_options(as_subscription)
    kept = [s for s in current if same_subscription(s, as_subscription)]
    if binding.delivered_by == "subscription" and (kept or binding.paused):
        raise MigrationError(
            f"binding {name} is already delivered by a subscription"
            + (f" ({kept[0].id}, group {group})" if kept else f" (paused, group {group})")
            + ": nothing to migrate"
        )
    steps = []
    if binding.delivered_by != "subscription":
        steps.append(WriteDelivery(spec.path, name, "subscription"))
    steps += [StopSubscription(s.id, s.source, s.sink) for s in current if s not in kept]
    if not kept and not binding.paused:
        steps.append(replace(wait, leaving="the worker's consumer"))
        steps.append(StartSubscription(name, as_subscription.source, as_subscription.sink, wanted))
    return Migration(name, group, to, tuple(steps))


def find_binding(spec: BindingsFile, name: str) -> Binding:
    return spec.binding_named(name, MigrationError)


def _check_exact(spec: BindingsFile, binding: Binding, handler_kind: str | None) -> None:
    """Only a per-record binding on an exclusive object handler keeps the high-water the
    hand-over relies on."""
    where = f"{spec.path}:{binding.line}:{binding.column}: binding {binding.name}"
    if binding.batch is not None:
        raise MigrationError(
            f"{where} is batched, which only restate-stream's consumer delivers; remove "
            "`batch:` to make it a per-record binding first"
        )
    if not binding.keyed:
        raise MigrationError(
            f"{where} is unkeyed (a plain service): it has no object state for a high-water "
            "offset, so a hand-over could apply records twice; bind it to an exclusive "
            "virtual object handler to migrate it"
        )
    if handler_kind is not None and handler_kind not in EXACT_KINDS:
        raise MigrationError(
            f"{where}: its handler {binding.service}/{binding.handler} is {handler_kind}; only "
            "an exclusive object handler keeps the high-water offsets that make the hand-over "
            "exact"
        )


# --- running -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepOutcome:
    step: Step
    status: str  # "done" | "failed" | "not attempted"
    detail: str = ""


@dataclass
class MigrationReport:
    migration: Migration
    outcomes: list[StepOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.status == "done" for o in self.outcomes)


Progress = Callable[[StepOutcome], None]


class _Runner:
    def __init__(
        self,
        spec: BindingsFile,
        admin: AdminClient,
        topic_admin: TopicAdminFactory,
        group_timeout: float,
    ) -> None:
        self.spec, self.admin, self.topic_admin = spec, admin, topic_admin
        self.group_timeout = group_timeout

    async def run(self, step: Step) -> str:
        match step:
            case StopSubscription(sub_id, _, _):
                await self.admin.delete_subscription(sub_id)
            case WaitGroupEmpty(cluster, group, leaving):
                await self._wait_empty(cluster, group, leaving)
            case WriteDelivery(path, name, delivery):
                changed = await asyncio.to_thread(set_delivery, path, name, delivery)
                return "" if changed else "the file said so already"
            case StartSubscription(_, source, sink, options):
                return (await self.admin.create_subscription(source, sink, options)).id
        return ""

    async def _wait_empty(self, cluster: str, group: str, leaving: str) -> None:
        kafka = self.topic_admin(self.spec.clusters[cluster].properties)

        async def members() -> int:
            return len(await asyncio.to_thread(kafka.group_member_ids, group))

        try:
            await apoll(
                members,
                until=lambda n: n == 0,
                what=f"{leaving} to leave group {group!r}",
                timeout=self.group_timeout,
                interval=0.25,
                describe=lambda n: f"{n} member(s)",
            )
        except PollTimeout as exc:
            raise MigrationError(
                f"{exc}; another consumer is in the group (a worker delivering the binding by "
                "its consumer that does not read this bindings file, or another program): stop "
                "it, then run migrate again (it continues from here)"
            ) from None


async def run_migration(
    migration: Migration,
    spec: BindingsFile,
    admin: AdminClient,
    *,
    topic_admin: TopicAdminFactory = TopicAdmin,
    progress: Progress | None = None,
    group_timeout: float = GROUP_EMPTY_TIMEOUT,
) -> MigrationReport:
    runner = _Runner(spec, admin, topic_admin, group_timeout)
    report = MigrationReport(migration)
    failed = False
    for step in migration.steps:
        if failed:
            outcome = StepOutcome(step, "not attempted")
        else:
            try:
                outcome = StepOutcome(step, "done", await runner.run(step))
            except Exception as exc:  # reported; the remaining steps are not attempted
                failed = True
                outcome = StepOutcome(step, "failed", describe(exc))
        report.outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    return report


async def migrate(
    spec: BindingsFile,
    name: str,
    to: Delivery,
    admin: AdminClient,
    *,
    handler_kind: str | None = None,
    topic_admin: TopicAdminFactory = TopicAdmin,
    progress: Progress | None = None,
    group_timeout: float = GROUP_EMPTY_TIMEOUT,
) -> MigrationReport:
    """Plan against the live subscriptions, then run: what `restate-stream migrate` does."""
    migration = plan_migration(spec, name, to, await admin.list_subscriptions(), handler_kind)
    return await run_migration(
        migration,
        spec,
        admin,
        topic_admin=topic_admin,
        progress=progress,
        group_timeout=group_timeout,
    )
