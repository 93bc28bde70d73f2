"""What `restate-stream status` knows, as Prometheus gauges: consumer lag per partition,
binding state, invocations by status, stuck keys, blocked partitions and dead letters, read
fresh at every scrape from the same code as `status` (control/status.py). A part `status`
shows as unknown has no series; restate_stream_status_errors{binding, part} is 1 for it.

Served by `restate-stream metrics` (a small exporter beside the workers: lag is the consumer
group's, not one worker's), so dashboards and alerts use the numbers operators see in
`status`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from restate_stream.bindings import BindingsFile
from restate_stream.control.admin import AdminClient
from restate_stream.control.status import BindingStatus, binding_statuses
from restate_stream.errors import describe

log = logging.getLogger("restate_stream.metrics")

STATES = ("active", "paused", "missing", "batched", "consumer")
# The gauges `restate-stream metrics` serves (docs/operations.md's table, the dashboard).
STATUS_METRICS = (
    "restate_stream_status_up",
    "restate_stream_consumer_lag",
    "restate_stream_consumer_lag_known",
    "restate_stream_binding_state",
    "restate_stream_invocations",
    "restate_stream_stuck_keys",
    "restate_stream_blocked_partitions",
    "restate_stream_dead_letters",
    "restate_stream_status_errors",
)
# The parts of a binding's status read separately, each of which can fail alone (`status`
# shows it as unknown); restate_stream_status_errors has one series per binding and part.
PARTS = ("lag", "invocations", "blocked", "dead_letters")

StatusReader = Callable[[], list[BindingStatus]]


def status_reader(spec: BindingsFile, topic_admin: Any, timeout: float = 10.0) -> StatusReader:
    """Reads every binding's status, as `restate-stream status` does, once per call."""

    async def read() -> list[BindingStatus]:
        async with AdminClient(spec.restate.admin_url, startup_timeout=timeout) as admin:
            return await binding_statuses(spec, admin, topic_admin)

    return lambda: asyncio.run(read())


class StatusCollector(Collector):
    def __init__(self, read: StatusReader) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "restate_stream_status_up", "1 if the last status read succeeded, else 0"
        )
        try:
            statuses = self.read()
        except Exception as exc:  # the scrape still answers, saying what failed
            log.warning("status read failed: %s", describe(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from status_families(statuses)


def status_families(statuses: list[BindingStatus]) -> Iterable[Metric]:
    lag = GaugeMetricFamily(
        "restate_stream_consumer_lag",
        "Records not yet consumed by the binding's group (end offset minus committed offset)",
        labels=["binding", "topic", "partition"],
    )
    lag_known = GaugeMetricFamily(
        "restate_stream_consumer_lag_known", "1 if the lag could be read", labels=["binding"]
    )
    state = GaugeMetricFamily(
        "restate_stream_binding_state",
        "1 for the binding's state on the server (active, paused, missing, batched)",
        labels=["binding", "state"],
    )
    invocations = GaugeMetricFamily(
        "restate_stream_invocations",
        "The binding's invocations known to Restate, by status",
        labels=["binding", "status"],
    )
    stuck = GaugeMetricFamily(
        "restate_stream_stuck_keys",
        "Object keys whose invocation is backing off or paused",
        labels=["binding"],
    )
    blocked = GaugeMetricFamily(
        "restate_stream_blocked_partitions",
        "Partitions Restate's subscription cannot get past (restate-stream unblock)",
        labels=["binding"],
    )
    dead_letters = GaugeMetricFamily(
        "restate_stream_dead_letters",
        "Source records with dead letters on the binding's dead-letter topic",
        labels=["binding", "resolved"],
    )
    errors = GaugeMetricFamily(
        "restate_stream_status_errors",
        "1 if this part of the binding's status could not be read (its series are left out)",
        labels=["binding", "part"],
    )
    for s in statuses:
        failed = _failed_parts(s)
        for part in PARTS:
            errors.add_metric([s.name, part], 1 if part in failed else 0)
        source_topic = s.source.rsplit("/", 1)[-1]
        for p in s.lag:
            lag.add_metric([s.name, source_topic, str(p.partition)], p.lag)
        lag_known.add_metric([s.name], 0 if s.lag_error else 1)
        for name in STATES:
            state.add_metric([s.name, name], 1 if s.state == name else 0)
        # An unknown count is no series, not 0: an alert on stuck keys must not clear while
        # Restate cannot say (restate_stream_status_errors says so instead).
        if "invocations" not in failed:
            for status, count in s.invocations.items():
                invocations.add_metric([s.name, status], count)
            stuck.add_metric([s.name], len(s.stuck_keys))
        if "blocked" not in failed:
            blocked.add_metric([s.name], len(s.blocked))
        if s.dead_letters is not None:
            dead_letters.add_metric([s.name, "false"], s.dead_letters)
            dead_letters.add_metric([s.name, "true"], s.dead_letters_resolved or 0)
    yield from (lag, lag_known, state, invocations, stuck, blocked, dead_letters, errors)


def _failed_parts(s: BindingStatus) -> set[str]:
    failed = {
        "lag": s.lag_error is not None,
        "invocations": s.invocations_error is not None,
        "blocked": s.blocked_error is not None,
        # Read only when the binding has a dead-letter topic; None: it could not be read.
        "dead_letters": s.dead_letter_topic is not None and s.dead_letters is None,
    }
    return {part for part, yes in failed.items() if yes}


def status_registry(read: StatusReader) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StatusCollector(read))
    return registry
