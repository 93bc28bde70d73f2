"""Status per binding: its subscription, consumer lag (Kafka), invocations (Restate SQL) and
dead letters (per source record, not yet resolved: restate_stream.dlq)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

from connectors import PartitionLag
from restate_stream.batch.sends import RECORD_IDEMPOTENCY_PREFIX
from restate_stream.bindings import Binding, BindingsFile
from restate_stream.control.admin import (
    AdminApiError,
    AdminClient,
    AdminUnavailableError,
    sql_literal,
)
from restate_stream.control.blocked import BlockedPartition, find_blocked
from restate_stream.control.plan import TopicAdminFactory, binding_key, by_binding_key
from restate_stream.dlq import Entry, by_source_record, read_entries
from restate_stream.errors import describe

# Invocation states in which a key's later records wait: the binding is stuck on that key.
STUCK_STATES = ("backing-off", "paused")
# A batched `per: key` binding makes an invocation per key per send. Over this many keys its
# sends carry few records each (about one at 10,000 keys and 2,000 records/s), and Restate's
# cost per invocation (a millisecond or two of CPU on restate-server and the worker, whatever
# its size) bounds the records/s: measured, 10,000 keys kept up with under 900 records/s on 2
# cores, where 100 keys or `per: partition` kept up with 6,000.
MANY_KEYS = 1_000


@dataclass
class BindingStatus:
    name: str
    source: str
    sink: str
    group: str
    # "active" | "paused" | "missing" (declared, no subscription: run apply) | "batched" |
    # "consumer" (per-record, delivered by the worker's own consumer)
    state: str
    subscription_ids: list[str] = field(default_factory=list)
    lag: list[PartitionLag] = field(default_factory=list)
    lag_error: str | None = None
    invocations: dict[str, int] = field(default_factory=dict)
    stuck_keys: list[dict[str, Any]] = field(default_factory=list)
    # Restate could not answer the invocations query (a cluster moving partitions off a dead
    # node answers 500 "node lookup for partition N failed" for a few seconds), or the node
    # stopped answering after the subscriptions were read (it died while answering).
    invocations_error: str | None = None
    dead_letter_topic: str | None = None
    # Source records of this binding with dead letters: not yet resolved, and resolved by a
    # redrive (restate_stream.dlq); None while the topic cannot be read.
    dead_letters: int | None = None
    dead_letters_resolved: int | None = None
    # Partitions Restate's subscription cannot get past (`restate-stream unblock` moves on).
    blocked: list[BlockedPartition] = field(default_factory=list)
    blocked_error: str | None = None
    # Why the binding may fall behind, from what status measured (lag, invocations).
    warnings: list[str] = field(default_factory=list)

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.lag)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_lag"] = self.total_lag
        return data


def _invocations_of(binding: Binding, sub_ids: list[str]) -> str | None:
    """The SQL condition selecting the binding's invocations in sys_invocation; None: none.

    A subscription's invocations carry its id. Those of a binding delivered by the worker's
    consumer are ingress sends, which carry none: they are told by their target and their
    idempotency key (`rs-batch-...` or `rs-record/<group>/...` from the delivery,
    `redrive/<binding>/...` from `dlq redrive`), so calls of the same handler made otherwise
    are not counted.
    """
    if not binding.own_consumer:
        if not sub_ids:
            return None
        return f"invoked_by_subscription_id IN ({', '.join(sql_literal(s) for s in sub_ids)})"
    # Prefixes, not LIKE patterns: a group or binding name may hold `_` or `%`, which LIKE
    # reads as wildcards (`orders_eu` would also count `ordersXeu`'s sends).
    redrives = sql_literal(f"redrive/{binding.name}/")
    # A keyed per-record binding's target may keep a high-water, and then its sends carry no
    # key (batch/sends.py): counted as the handler's ingress calls. Restate 1.7 gives such a
    # call an idempotency key of its own (a ULID) in sys_invocation, so it is found by
    # invoked_by, not by a missing key; it keeps the completed ones for the handler's retention.
    keyless = ""
    if binding.batch is not None:
        sends = "'rs-batch-'"
    else:
        sends = sql_literal(f"{RECORD_IDEMPOTENCY_PREFIX}{binding.consumer_group}/")
        if binding.keyed:
            keyless = " OR invoked_by = 'ingress'"
    return (
        f"target_service_name = {sql_literal(binding.service)} "
        f"AND target_handler_name = {sql_literal(binding.handler)} "
        f"AND (starts_with(idempotency_key, {sends}) "
        f"OR starts_with(idempotency_key, {redrives}){keyless})"
    )


async def _invocations(admin: AdminClient, where: str | None) -> tuple[dict[str, int], list[Any]]:
    if where is None:
        return {}, []
    rows = await admin.query(
        f"SELECT status, completion_result, count(*) AS n FROM sys_invocation WHERE {where} "
        "GROUP BY status, completion_result"
    )
    counts: dict[str, int] = {}
    for row in rows:
        state = row["status"]
        if state == "completed":
            state = "failed" if row.get("completion_result") == "failure" else "succeeded"
        counts[state] = counts.get(state, 0) + int(row["n"])
    states = ", ".join(sql_literal(s) for s in STUCK_STATES)
    stuck = await admin.query(
        "SELECT target_service_key AS key, status, retry_count, last_failure, id "
        f"FROM sys_invocation WHERE {where} AND status IN ({states}) "
        "ORDER BY target_service_key LIMIT 50"
    )
    return counts, stuck


async def binding_statuses(
    spec: BindingsFile, admin: AdminClient, topic_admin: TopicAdminFactory
) -> list[BindingStatus]:
    subscriptions = by_binding_key(await admin.list_subscriptions())
    clients = {name: topic_admin(c.properties) for name, c in spec.clusters.items()}
    entries: dict[tuple[str, str], list[Entry] | None] = {}  # bindings may share a topic
    result = []
    # Set once the admin API stops answering after the listing above: the later bindings show
    # the same reason instead of each retrying a dead node for the whole startup_timeout.
    unavailable: str | None = None
    for b in spec.bindings:
        group = b.consumer_group
        subs = [s.id for s in subscriptions.get(binding_key(b), [])]
        if b.paused:
            state = "paused"
        elif b.own_consumer:  # delivered by the worker's own consumer: no subscription
            state = "batched" if b.batch is not None else "consumer"
        else:
            state = "active" if subs else "missing"
        status = BindingStatus(b.name, b.source, b.sink, group, state, subs)
        try:
            status.lag = await asyncio.to_thread(clients[b.cluster].group_lag, group, b.topic)
        except Exception as exc:  # shown next to the binding; the others still report
            status.lag_error = describe(exc)
            if subs:  # blocked partitions are found from the lag: unknown too, not none
                status.blocked_error = "the consumer group's lag could not be read"
        if subs and status.total_lag > 0:
            properties = spec.clusters[b.cluster].properties
            try:
                status.blocked = await asyncio.to_thread(find_blocked, b, properties, status.lag)
            except Exception as exc:  # shown next to the binding, like the lag
                status.blocked_error = describe(exc)
        selection = _invocations_of(b, subs)
        try:
            if unavailable is not None and selection is not None:  # None: nothing to ask
                raise AdminUnavailableError(unavailable)
            status.invocations, status.stuck_keys = await _invocations(admin, selection)
        except AdminApiError as exc:
            if exc.status < 500:  # our query was wrong: a bug, not a state to show
                raise
            # Shown next to the binding, like the lag; the subscriptions were read.
            status.invocations_error = f"{exc.status}: {' '.join(exc.message.split())}"
        except AdminUnavailableError as exc:  # the node went away after the listing
            unavailable = status.invocations_error = " ".join(str(exc).split())
        if selection is not None and status.invocations_error is None:
            warning = await _key_cardinality_warning(admin, b, selection, status.total_lag)
            if warning is not None:
                status.warnings.append(warning)
        if b.dead_letter is not None:
            status.dead_letter_topic = b.dead_letter
            where = (b.cluster, b.dead_letter)
            if where not in entries:
                entries[where] = await _entries(spec, b)
            read = entries[where]
            if read is not None:
                listing = by_source_record(read, b.name, b.dead_letter, b.topic)
                status.dead_letters = len(listing.unresolved)
                status.dead_letters_resolved = len(listing.records) - status.dead_letters
        result.append(status)
    return result


async def _key_cardinality_warning(
    admin: AdminClient, binding: Binding, where: str, lag: int
) -> str | None:
    """A batched `per: key` binding more than a batch behind, over MANY_KEYS keys: what the
    lag is likely from and what batches across keys instead."""
    batch = binding.batch
    if batch is None or batch.per != "key" or lag <= batch.max_records:
        return None
    try:
        rows = await admin.query(
            f"SELECT count(DISTINCT target_service_key) AS n FROM sys_invocation WHERE {where}"
        )
    except (AdminApiError, AdminUnavailableError):
        return None  # only a hint: the invocations above were read, the rest shows
    keys = int(rows[0]["n"]) if rows else 0
    if keys < MANY_KEYS:
        return None
    return (
        f"{binding.name}: {lag:,} records behind with per: key over {keys:,} keys (its "
        f"invocations Restate keeps): each key is an invocation per send and with this many "
        f"keys a send carries few records, so Restate's cost per invocation bounds the rate; "
        f"per: partition (or a coarser key) batches records of many keys in one invocation"
    )


async def _entries(spec: BindingsFile, binding: Binding) -> list[Entry] | None:
    """The dead-letter topic's records; None while it cannot be read (apply creates it)."""
    try:
        return await asyncio.to_thread(read_entries, spec, binding, timeout=10.0)
    except Exception:  # shown as unknown next to the binding; the others still report
        return None
