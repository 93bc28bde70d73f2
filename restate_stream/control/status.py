"""Status per binding: its subscription, consumer lag (Kafka) and invocations (Restate SQL)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

from connectors import PartitionLag
from connectors.consume import end_offsets
from restate_stream.bindings import BindingsFile
from restate_stream.control.admin import AdminClient, sql_literal
from restate_stream.control.plan import TopicAdminFactory, binding_key, by_binding_key

# Invocation states in which a key's later records wait: the binding is stuck on that key.
STUCK_STATES = ("backing-off", "paused")


@dataclass
class BindingStatus:
    name: str
    source: str
    sink: str
    group: str
    # "active" | "paused" | "missing" (declared, no subscription: run apply) | "batched"
    state: str
    subscription_ids: list[str] = field(default_factory=list)
    lag: list[PartitionLag] = field(default_factory=list)
    lag_error: str | None = None
    invocations: dict[str, int] = field(default_factory=dict)
    stuck_keys: list[dict[str, Any]] = field(default_factory=list)
    dead_letter_topic: str | None = None
    # Records written to the dead-letter topic so far (all bindings sharing it).
    dead_letters: int | None = None

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.lag)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_lag"] = self.total_lag
        return data


async def _invocations(admin: AdminClient, sub_ids: list[str]) -> tuple[dict[str, int], list[Any]]:
    if not sub_ids:
        return {}, []
    where = f"invoked_by_subscription_id IN ({', '.join(sql_literal(s) for s in sub_ids)})"
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
    dead_letters: dict[tuple[str, str], int | None] = {}  # bindings may share a topic
    result = []
    for b in spec.bindings:
        group = b.consumer_group
        subs = [s.id for s in subscriptions.get(binding_key(b), [])]
        if b.paused:
            state = "paused"
        elif b.batch is not None:
            state = "batched"  # delivered by the worker's own consumer: no subscription
        else:
            state = "active" if subs else "missing"
        status = BindingStatus(b.name, b.source, b.sink, group, state, subs)
        try:
            status.lag = await asyncio.to_thread(clients[b.cluster].group_lag, group, b.topic)
        except Exception as exc:  # shown next to the binding; the others still report
            status.lag_error = f"{type(exc).__name__}: {exc}"
        status.invocations, status.stuck_keys = await _invocations(admin, subs)
        if b.dead_letter is not None:
            status.dead_letter_topic = b.dead_letter
            where = (b.cluster, b.dead_letter)
            if where not in dead_letters:
                dead_letters[where] = await _written(spec.clusters[b.cluster].properties, where[1])
            status.dead_letters = dead_letters[where]
        result.append(status)
    return result


async def _written(properties: dict[str, str], topic: str) -> int | None:
    """Records written to `topic` so far; None while it does not exist (apply creates it)."""
    try:
        return sum((await asyncio.to_thread(end_offsets, properties, topic)).values())
    except Exception:
        return None


def render(statuses: list[BindingStatus]) -> str:
    lines = []
    for s in statuses:
        lines.append(f"{s.name}  [{s.state}]  {s.source} -> {s.sink}")
        subs = ", ".join(s.subscription_ids) or "none"
        lines.append(f"  subscription: {subs}   group: {s.group}")
        if s.lag_error:
            lines.append(f"  lag: unknown ({s.lag_error})")
        else:
            per_partition = "  ".join(
                f"p{p.partition}={p.lag}" + ("" if p.committed is not None else "(no commit)")
                for p in s.lag
            )
            lines.append(f"  lag: {s.total_lag}   {per_partition}")
        counts = ", ".join(f"{k} {v}" for k, v in sorted(s.invocations.items())) or "none"
        lines.append(f"  invocations: {counts}")
        if s.dead_letter_topic is not None:
            written = "?" if s.dead_letters is None else str(s.dead_letters)
            lines.append(f"  dead letters: {written} on {s.dead_letter_topic}")
        for stuck in s.stuck_keys:
            failure = stuck.get("last_failure") or ""
            lines.append(
                f"  stuck key {stuck['key']!r}: {stuck['status']} after "
                f"{stuck.get('retry_count') or 0} retries {failure}".rstrip()
            )
    return "\n".join(lines) if lines else "No bindings declared."
