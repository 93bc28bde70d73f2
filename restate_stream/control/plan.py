"""Plan: the difference between a bindings file and what Restate and Kafka run now.

`fetch_live` reads the live state (Restate admin API, Kafka topic metadata); `compute_plan`
is a pure function from (file, live state) to an ordered list of changes, so every rule
here is testable without engines. `restate_stream.control.apply` carries a plan out.

How a binding is recognised on the server: Restate subscriptions carry no name, so every
binding pins its consumer `group.id` (`group:` in the file, else `restate-stream.<name>`)
and the subscription with that group.id is the binding's. Pinning also means a recreated
subscription resumes from the group's committed offsets instead of `auto.offset.reset`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from connectors import TopicAdmin
from connectors.secrets import REDACTED, is_secret, redact_properties
from restate_stream.bindings import Binding, BindingsFile, subscription_consumer_defaults
from restate_stream.control.admin import AdminClient, Deployment, KafkaCluster, Subscription

# Options Restate adds to every subscription by itself.
_SERVER_OPTIONS = {"client.id"}


def cluster_of(source: str) -> str:
    return source.removeprefix("kafka://").split("/", 1)[0]


def subscription_key(sub: Subscription) -> tuple[str, str]:
    """(cluster, group.id): what identifies a binding's subscription (group ids are per cluster)."""
    return cluster_of(sub.source), sub.options.get("group.id", "")


def binding_key(binding: Binding) -> tuple[str, str]:
    return binding.cluster, binding.consumer_group


def by_binding_key(subscriptions: list[Subscription]) -> dict[tuple[str, str], list[Subscription]]:
    """Live subscriptions grouped by (cluster, group.id): each binding's are under its key."""
    grouped: dict[tuple[str, str], list[Subscription]] = {}
    for sub in subscriptions:
        grouped.setdefault(subscription_key(sub), []).append(sub)
    return grouped


def subscription_options(binding: Binding) -> dict[str, str]:
    """What a binding's subscription is created with: its pinned group, where a new group
    starts, restate-stream's consumer defaults (a 10 s session), then the binding's `options:`,
    which win over the defaults."""
    return {
        "group.id": binding.consumer_group,
        "auto.offset.reset": binding.start,
        **subscription_consumer_defaults(binding.options),
        **binding.options,
    }


# --- changes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateCluster:
    name: str
    properties: dict[str, str]

    def describe(self) -> str:
        return f"+ kafka cluster {self.name} ({self.properties.get('bootstrap.servers', '?')})"

    def __repr__(self) -> str:  # no secrets in logs and tracebacks
        return f"CreateCluster({self.name!r}, {redact_properties(self.properties)!r})"


@dataclass(frozen=True)
class UpdateCluster:
    name: str
    properties: dict[str, str]
    changed: tuple[str, ...]

    def describe(self) -> str:
        return f"~ kafka cluster {self.name}: {', '.join(self.changed)}"

    def __repr__(self) -> str:  # no secrets in logs and tracebacks
        shown = redact_properties(self.properties)
        return f"UpdateCluster({self.name!r}, {shown!r}, {self.changed!r})"


@dataclass(frozen=True)
class DeleteCluster:
    name: str

    def describe(self) -> str:
        return f"- kafka cluster {self.name} (not declared; --prune)"


@dataclass(frozen=True)
class CreateTopic:
    cluster: str
    name: str
    partitions: int | None
    replication_factor: int | None
    config: dict[str, str]
    reason: str = "declared"

    def describe(self) -> str:
        parts = "broker default" if self.partitions is None else str(self.partitions)
        return f"+ topic {self.name} on {self.cluster} (partitions: {parts}; {self.reason})"


@dataclass(frozen=True)
class AddPartitions:
    cluster: str
    name: str
    current: int
    wanted: int

    def describe(self) -> str:
        return f"~ topic {self.name} on {self.cluster}: partitions {self.current} -> {self.wanted}"


@dataclass(frozen=True)
class RegisterDeployment:
    uri: str
    reason: str = "the worker must be serving there"

    def describe(self) -> str:
        return f"+ deployment {self.uri} ({self.reason})"


@dataclass(frozen=True)
class CreateSubscription:
    binding: str
    source: str
    sink: str
    options: dict[str, str]
    reason: str

    def describe(self) -> str:
        return f"+ subscription for {self.binding}: {self.source} -> {self.sink} ({self.reason})"

    def __repr__(self) -> str:  # no secrets in logs and tracebacks
        shown = redact_properties(self.options)
        return f"CreateSubscription({self.binding!r}, {self.source!r}, {self.sink!r}, {shown!r})"


@dataclass(frozen=True)
class DeleteSubscription:
    id: str
    source: str
    sink: str
    reason: str
    binding: str | None = None
    # The binding's group must be empty before the next subscription on it joins (recreate,
    # pause); not for a duplicate whose twin stays in the group.
    wait_group: str | None = None

    def describe(self) -> str:
        owner = f" of {self.binding}" if self.binding else ""
        return f"- subscription {self.id}{owner}: {self.source} -> {self.sink} ({self.reason})"


Change = (
    CreateCluster
    | UpdateCluster
    | DeleteCluster
    | CreateTopic
    | AddPartitions
    | RegisterDeployment
    | CreateSubscription
    | DeleteSubscription
)


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes

    def render(self) -> str:
        lines = [change.describe() for change in self.changes]
        lines += [f"  {line}" for line in self.unchanged]
        lines += [f"note: {note}" for note in self.notes]
        if self.empty:
            lines.append("No changes: Restate and Kafka match the file.")
        else:
            lines.append(f"{len(self.changes)} change(s).")
        return "\n".join(lines)


# --- live state ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveState:
    clusters: dict[str, KafkaCluster]
    subscriptions: list[Subscription]
    deployments: list[Deployment]
    # cluster name -> topic -> partition count, for the clusters the file declares
    topics: dict[str, dict[str, int]]
    # "Service/handler" of every handler Restate knows
    handlers: set[str] = field(default_factory=set)


TopicAdminFactory = Callable[[Mapping[str, str]], TopicAdmin]


async def fetch_live(
    spec: BindingsFile, admin: AdminClient, topic_admin: TopicAdminFactory = TopicAdmin
) -> LiveState:
    clusters, subscriptions, deployments, services = await asyncio.gather(
        admin.list_kafka_clusters(),
        admin.list_subscriptions(),
        admin.list_deployments(),
        admin.list_services(),
    )
    topics: dict[str, dict[str, int]] = {}
    for name, cluster in spec.clusters.items():
        client = topic_admin(cluster.properties)
        topics[name] = await asyncio.to_thread(client.topics)
    return LiveState(
        clusters={c.name: c for c in clusters},
        subscriptions=subscriptions,
        deployments=deployments,
        topics=topics,
        handlers={
            f"{service['name']}/{handler['name']}"
            for service in services
            for handler in service.get("handlers", [])
        },
    )


# --- the diff --------------------------------------------------------------------------------


def _cluster_changes(spec: BindingsFile, live: LiveState, refresh: bool, plan: Plan) -> None:
    secrets_skipped = False
    for name, cluster in spec.clusters.items():
        current = live.clusters.get(name)
        if current is None:
            plan.changes.append(CreateCluster(name, cluster.properties))
            continue
        changed = []
        for key in sorted(set(cluster.properties) | set(current.properties)):
            live_value = current.properties.get(key)
            if live_value == REDACTED and key in cluster.properties:
                secrets_skipped = True
                continue
            if cluster.properties.get(key) != live_value:
                changed.append(key)
        if changed or refresh:
            plan.changes.append(
                UpdateCluster(name, cluster.properties, tuple(changed) or ("refresh",))
            )
        else:
            plan.unchanged.append(f"kafka cluster {name}: up to date")
    if secrets_skipped and not refresh:
        plan.notes.append(
            "Restate redacts secret cluster properties, so they are not compared; "
            "`apply --refresh-clusters` sends them again (after rotating a secret)"
        )


def _wanted_topics(spec: BindingsFile) -> list[CreateTopic]:
    wanted = {
        (t.cluster, t.name): CreateTopic(
            t.cluster, t.name, t.partitions, t.replication_factor, dict(t.config)
        )
        for t in spec.topics.values()
    }
    for b in spec.bindings:
        if b.dead_letter and (b.cluster, b.dead_letter) not in wanted:
            wanted[(b.cluster, b.dead_letter)] = CreateTopic(
                b.cluster, b.dead_letter, None, None, {}, reason=f"dead letters of {b.name}"
            )
        results = b.window.to if b.window is not None else None
        if results and (b.cluster, results) not in wanted:
            wanted[(b.cluster, results)] = CreateTopic(
                b.cluster, results, None, None, {}, reason=f"window results of {b.name}"
            )
    return list(wanted.values())


def _topic_changes(spec: BindingsFile, live: LiveState, plan: Plan) -> None:
    for topic in _wanted_topics(spec):
        existing = live.topics.get(topic.cluster, {}).get(topic.name)
        if existing is None:
            plan.changes.append(topic)
        elif topic.partitions is not None and existing < topic.partitions:
            plan.changes.append(
                AddPartitions(topic.cluster, topic.name, existing, topic.partitions)
            )
        else:
            if topic.partitions is not None and existing > topic.partitions:
                plan.notes.append(
                    f"topic {topic.name} has {existing} partitions, the file says "
                    f"{topic.partitions}: Kafka cannot remove partitions, leaving it"
                )
            plan.unchanged.append(f"topic {topic.name}: exists ({existing} partitions)")


def _compared_options(live: Subscription, binding: Binding) -> tuple[dict[str, str], ...]:
    live_options = {k: v for k, v in live.options.items() if k not in _SERVER_OPTIONS}
    wanted = {k: v for k, v in subscription_options(binding).items() if k not in _SERVER_OPTIONS}
    return live_options, wanted


def same_subscription(live: Subscription, binding: Binding) -> bool:
    live_options, wanted = _compared_options(live, binding)
    return live.source == binding.source and live.sink == binding.sink and live_options == wanted


def _what_changed(live: Subscription, binding: Binding) -> str:
    if live.sink != binding.sink:
        return f"handler {live.sink} -> {binding.sink}"
    if live.source != binding.source:
        return f"source {live.source} -> {binding.source}"
    live_options, wanted = _compared_options(live, binding)
    defaults = subscription_consumer_defaults(binding.options)
    changed = []
    for key in sorted(live_options.keys() | wanted.keys()):
        before, after = live_options.get(key), wanted.get(key)
        if before != after and is_secret(key):
            changed.append(f"{key} (a secret: values not shown)")
        elif before != after:
            why = " (restate-stream's default)" if key in defaults else ""
            changed.append(f"{key} {before or 'unset'} -> {after or 'unset'}{why}")
    return "options changed: " + ", ".join(changed)


def _subscription_changes(spec: BindingsFile, live: LiveState, prune: bool, plan: Plan) -> None:
    by_group = by_binding_key(live.subscriptions)

    deletes: list[Change] = []
    creates: list[Change] = []
    for b in spec.bindings:
        group = b.consumer_group
        current = by_group.pop(binding_key(b), [])
        if b.paused:
            deletes += [
                DeleteSubscription(
                    s.id, s.source, s.sink, f"paused; {group} keeps its offsets", b.name, group
                )
                for s in current
            ]
            if not current:
                plan.unchanged.append(f"binding {b.name}: paused (group {group})")
            continue
        if b.own_consumer:
            # Delivered by the worker's own consumer in the same group: no subscription, and
            # one left from a subscription-delivered past goes (the group keeps its offsets,
            # so the consumer starts where the subscription stopped).
            if b.batch is not None:
                how, why, wait = "batched", f"batched; {group} keeps its offsets", group
            else:
                # The worker's consumer may be in the group already (it follows the file): no
                # wait for an empty group. Exact all the same: what both deliveries bring is at
                # or below the objects' high-water (control/migrate.py says why).
                how, wait = "delivery: consumer", None
                why = f"delivery: consumer takes over from {group}'s offsets (as `migrate` does)"
                if current and not b.keyed:
                    plan.notes.append(
                        f"binding {b.name} is unkeyed: no object keeps a high-water to drop the "
                        "records both deliveries bring across this hand-over, so some may be "
                        "applied twice (`restate-stream migrate` refuses it)"
                    )
            deletes += [
                DeleteSubscription(s.id, s.source, s.sink, why, b.name, wait) for s in current
            ]
            if not current:
                plan.unchanged.append(f"binding {b.name}: {how}, delivered by the worker")
            continue
        keep = next((s for s in current if same_subscription(s, b)), None)
        for s in current:
            if s is keep:
                continue
            if keep is not None:
                reason, wait = f"duplicate of {keep.id}", None
            else:
                reason, wait = _what_changed(s, b), s.options.get("group.id")
            deletes.append(DeleteSubscription(s.id, s.source, s.sink, reason, b.name, wait))
        if keep is not None:
            plan.unchanged.append(f"binding {b.name}: subscription {keep.id} up to date")
        else:
            reason = "recreated, resumes from group offsets" if current else "new"
            if not current and b.start:
                reason = f"new, group {group}, starts at {b.start} unless the group has offsets"
            creates.append(
                CreateSubscription(b.name, b.source, b.sink, subscription_options(b), reason)
            )

    pruned: list[Change] = []
    for subs in by_group.values():
        for s in subs:
            if prune:
                pruned.append(DeleteSubscription(s.id, s.source, s.sink, "not declared; --prune"))
            else:
                plan.notes.append(
                    f"subscription {s.id} ({s.source} -> {s.sink}) is not declared in the file; "
                    "kept (--prune deletes it)"
                )
    plan.changes += deletes + creates + pruned


def compute_plan(
    spec: BindingsFile, live: LiveState, *, prune: bool = False, refresh_clusters: bool = False
) -> Plan:
    plan = Plan()
    _cluster_changes(spec, live, refresh_clusters, plan)
    _topic_changes(spec, live, plan)
    if spec.worker is not None:
        # Restate normalises the URI it stores (a trailing slash).
        wanted = spec.worker.uri.rstrip("/")
        missing = sorted(
            f"{b.service}/{b.handler}"
            for b in spec.bindings
            if f"{b.service}/{b.handler}" not in live.handlers
        )
        if not any((d.uri or "").rstrip("/") == wanted for d in live.deployments):
            plan.changes.append(RegisterDeployment(spec.worker.uri))
        elif missing:
            # The worker serves handlers Restate has not discovered yet: register again.
            reason = f"refresh: Restate does not know {', '.join(missing)}"
            plan.changes.append(RegisterDeployment(spec.worker.uri, reason))
        else:
            plan.unchanged.append(f"deployment {spec.worker.uri}: registered")
    _subscription_changes(spec, live, prune, plan)
    for name in sorted(set(live.clusters) - set(spec.clusters)):
        if prune:
            plan.changes.append(DeleteCluster(name))
        else:
            plan.notes.append(f"kafka cluster {name} is not declared in the file; kept (--prune)")
    return plan


async def plan_live(
    spec: BindingsFile,
    admin: AdminClient,
    *,
    prune: bool = False,
    refresh_clusters: bool = False,
    only: str | None = None,
    topic_admin: TopicAdminFactory = TopicAdmin,
) -> Plan:
    """The plan against what runs now; with `only`, just the changes of that binding (pause,
    resume and unblock touch no other binding)."""
    live = await fetch_live(spec, admin, topic_admin)
    plan = compute_plan(spec, live, prune=prune, refresh_clusters=refresh_clusters)
    if only is not None:
        plan.changes = [c for c in plan.changes if getattr(c, "binding", None) == only]
    return plan
