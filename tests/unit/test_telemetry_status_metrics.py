"""`restate-stream metrics` without engines: a status becomes gauges; a part that could not
be read has no series and an error gauge; a failed read still answers the scrape, saying so."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from connectors.admin import PartitionLag
from restate_stream.control.status import BindingStatus
from restate_stream.telemetry.status_metrics import PARTS, STATUS_METRICS, status_registry


def scrape(read: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(status_registry(read)).decode()  # type: ignore[arg-type]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_status_becomes_lag_state_invocations_and_dead_letter_gauges() -> None:
    status = BindingStatus(
        "orders", "kafka://local/orders", "service://Orders/on_order", "g", "active", ["sub_1"],
        lag=[PartitionLag(0, 10, 14, 4), PartitionLag(1, None, 3, 3)],
        invocations={"succeeded": 40, "backing-off": 1},
        stuck_keys=[{"key": "acct-9", "status": "backing-off"}],
        dead_letter_topic="orders.dlq", dead_letters=2, dead_letters_resolved=5,
    )  # fmt: skip
    got = scrape(lambda: [status])
    assert got[("restate_stream_status_up", ())] == 1
    lag = "restate_stream_consumer_lag"
    assert got[(lag, (("binding", "orders"), ("partition", "0"), ("topic", "orders")))] == 4
    assert got[(lag, (("binding", "orders"), ("partition", "1"), ("topic", "orders")))] == 3
    assert got[("restate_stream_binding_state", (("binding", "orders"), ("state", "active")))] == 1
    assert got[("restate_stream_binding_state", (("binding", "orders"), ("state", "paused")))] == 0
    backing_off = (("binding", "orders"), ("status", "backing-off"))
    assert got[("restate_stream_invocations", backing_off)] == 1
    assert got[("restate_stream_stuck_keys", (("binding", "orders"),))] == 1
    unresolved = (("binding", "orders"), ("resolved", "false"))
    assert got[("restate_stream_dead_letters", unresolved)] == 2
    assert got[("restate_stream_dead_letters", (("binding", "orders"), ("resolved", "true")))] == 5
    for part in PARTS:
        assert got[("restate_stream_status_errors", (("binding", "orders"), ("part", part)))] == 0
    assert {name for name, _ in got} == set(STATUS_METRICS), "the documented gauges, all of them"


def test_parts_that_could_not_be_read_have_no_series_and_an_error_gauge() -> None:
    unknown = BindingStatus(
        "orders", "kafka://local/orders", "service://Orders/on_order", "g", "active", ["sub_1"],
        lag_error="KafkaException: broker down",
        invocations_error="500: node lookup for partition 0 failed",
        blocked_error="the consumer group's lag could not be read",
        dead_letter_topic="orders.dlq",
    )  # fmt: skip
    known = BindingStatus(
        "refunds", "kafka://local/refunds", "service://Refunds/on_refund", "g2", "active",
        ["sub_2"], invocations={"succeeded": 3},
    )  # fmt: skip
    got = scrape(lambda: [unknown, known])
    assert got[("restate_stream_status_up", ())] == 1, "the read itself went through"
    errors = {
        (dict(labels)["binding"], dict(labels)["part"]): value
        for (name, labels), value in got.items()
        if name == "restate_stream_status_errors"
    }
    assert errors == {
        **{("orders", part): 1 for part in PARTS},
        **{("refunds", part): 0 for part in PARTS},
    }
    orders = [(name, labels) for name, labels in got if ("binding", "orders") in labels]
    assert {name for name, _ in orders} == {
        "restate_stream_consumer_lag_known",
        "restate_stream_binding_state",
        "restate_stream_status_errors",
    }, "no invocations, stuck keys, blocked partitions or dead letters that read as 0"
    assert got[("restate_stream_consumer_lag_known", (("binding", "orders"),))] == 0
    assert got[("restate_stream_stuck_keys", (("binding", "refunds"),))] == 0
    assert (
        got[("restate_stream_invocations", (("binding", "refunds"), ("status", "succeeded")))] == 3
    )


def test_a_failed_status_read_answers_with_up_zero() -> None:
    def read() -> list[BindingStatus]:
        raise ConnectionError("admin API unreachable")

    got = scrape(read)
    assert got == {("restate_stream_status_up", ()): 0}
