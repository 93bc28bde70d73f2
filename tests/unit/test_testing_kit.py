"""The in-memory kit: bound handlers run with the production wrapper, no engines. Each test
here runs in milliseconds; the food-ordering ones use the example's own bindings.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import restate
from pydantic import BaseModel

from examples.food_ordering import delivery_manager, driver_twin
from restate_stream.bindings import parse_bindings
from restate_stream.runtime.event import KafkaEvent
from restate_stream.runtime.formats import cloudevent
from restate_stream.runtime.publisher import Outgoing, Publisher
from restate_stream.testing import BindingsKit, KitError, KitRecord, bindings_yaml

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "food_ordering" / "bindings.yaml"
# driver-updates has two bindings in the example (the twins', the driver-speed window's):
# a delivery names the one it is for.
TWINS = "driver-locations"


def fix(seq: int, driver: str = "d1") -> dict[str, Any]:
    return {"driver_id": driver, "seq": seq, "x": 1.0 * seq, "y": 2.0}


def envelope(event_id: str, value: dict[str, Any]) -> bytes:
    return cloudevent(event_id, "driver.location", "phone", "2026-11-30T00:00:00Z", value)


# --- the food-ordering twin, through the example's bindings file --------------------------------


async def test_the_driver_speed_window_averages_the_fixes_speeds_per_hop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPEED_WINDOW", "10s")
    monkeypatch.setenv("SPEED_ADVANCE", "5s")
    kit = BindingsKit.load(EXAMPLE, [driver_twin.twin])
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for second, speed in [(1, 1.0), (6, 0.5), (7, 0.0)]:
        value = fix(second) | {"speed_km_s": speed}
        at = t0 + timedelta(seconds=second)
        await kit.deliver("driver-updates", value, key="d1", timestamp=at, binding="driver-speed")
    start = int(t0.timestamp() * 1000)

    def means() -> list[tuple[int, float]]:
        return sorted((r.value["start"], r.value["value"]) for r in kit.published("driver-speeds"))

    # [-5s, 5s) holds the first fix; the last, at 7s, is past its end + 2s of grace: closed.
    assert means() == [(start - 5000, 1.0)]
    await kit.fire_timers()  # [0s, 10s) holds all three, [5s, 15s) the last two
    assert means() == [(start - 5000, 1.0), (start, 0.5), (start + 5000, 0.25)]


async def test_a_location_is_applied_to_its_drivers_twin() -> None:
    kit = BindingsKit.load(EXAMPLE, [driver_twin.twin])
    first = await kit.deliver("driver-updates", fix(1), key="d1", binding=TWINS)
    second = await kit.deliver("driver-updates", fix(2), key="d1", binding=TWINS)
    assert (first.decision, second.decision) == ("applied", "applied")
    state = kit.state("driver-digital-twin", "d1")
    assert state["seen_seqs"] == [1, 2]
    assert state["last_kafka_offset"] == 1
    assert state["location"] == fix(2) | {"speed_km_s": 0.0}  # the phone's, when it drove
    assert kit.state("driver-digital-twin", "d2") == {}
    assert first.calls == [] and first.dead_letters == []


async def test_a_twin_on_a_job_tells_the_delivery_where_it_is() -> None:
    kit = BindingsKit.load(EXAMPLE, [driver_twin.twin])
    await kit.deliver("driver-updates", fix(1), key="d1", binding=TWINS)
    job = {"order_id": "o-7", "region": "r", "restaurant": "x", "pickup": {}, "dropoff": {}}
    kit._objects[("driver-digital-twin", "d1")].state["job"] = job
    delivery = await kit.deliver("driver-updates", fix(2), key="d1", binding=TWINS)
    (call,) = delivery.calls
    assert (call.service, call.handler) == (delivery_manager.manager.name, "driver_moved")
    assert (call.key, call.send, call.arg) == ("o-7", True, {"x": 2.0, "y": 2.0})


async def test_a_poison_location_is_a_dead_letter_naming_its_offset_and_the_next_applies() -> None:
    kit = BindingsKit.load(EXAMPLE, [driver_twin.twin])
    bad = await kit.deliver("driver-updates", raw=b"{not json", key="d1", binding=TWINS)
    good = await kit.deliver("driver-updates", fix(1), key="d1", binding=TWINS)
    assert bad.decision == "dead-lettered"
    (letter,) = bad.dead_letters
    assert letter.error.type == "DecodeError" and "invalid JSON" in letter.error.message
    assert (letter.source.topic, letter.source.offset) == ("driver-updates", 0)
    assert letter.value_bytes() == b"{not json"
    assert kit.dead_letters("driver-updates.dlq") == [letter]
    assert good.decision == "applied"
    assert kit.state("driver-digital-twin", "d1")["seen_seqs"] == [1]


async def test_a_republished_fix_is_deduplicated_by_its_event_id() -> None:
    kit = BindingsKit.load(EXAMPLE, [driver_twin.twin])
    once = await kit.deliver(
        "driver-updates", raw=envelope("ev-1", fix(1)), key="d1", binding=TWINS
    )
    again = await kit.deliver(
        "driver-updates", raw=envelope("ev-1", fix(1)), key="d1", binding=TWINS
    )
    other = await kit.deliver(
        "driver-updates", raw=envelope("ev-2", fix(2)), key="d1", binding=TWINS
    )
    assert [once.decision, again.decision, other.decision] == [
        "applied",
        "deduplicated",
        "applied",
    ]
    assert kit.state("driver-digital-twin", "d1")["seen_seqs"] == [1, 2]


# --- dead-letter decisions -----------------------------------------------------------------------


class Order(BaseModel):
    id: str
    amount: int


orders = restate.VirtualObject("Orders")
failures: dict[str, int] = {}


@orders.handler()
async def on_order(ctx: restate.ObjectContext, event: KafkaEvent[Order]) -> None:
    order = event.value
    if order.amount < 0:
        raise restate.TerminalError(f"order {order.id}: negative amount")
    if order.id.startswith("flaky") and failures.get(order.id, 0) < 2:
        failures[order.id] = failures.get(order.id, 0) + 1
        ctx.set("half-written", True)  # undone: the attempt failed
        raise ConnectionError("payment service unavailable")
    if order.id.startswith("down"):
        raise ConnectionError("payment service unavailable")
    total: int = await ctx.get("total") or 0
    ctx.set("total", total + order.amount)


def orders_kit(retry: dict[str, Any] | None = None) -> BindingsKit:
    text = bindings_yaml(
        clusters={"local": "127.0.0.1:9"},
        worker={"app": "app:app"},
        bindings=[
            {
                "name": "orders",
                "topic": "orders",
                "handler": "Orders/on_order",
                "dead_letter": "orders.dlq",
                "retry": retry or {"max_attempts": 3, "initial_interval": "10ms"},
            }
        ],
    )
    return BindingsKit(parse_bindings(text, Path("bindings.yaml"), {}), [orders])


async def test_a_terminal_error_dead_letters_the_record_with_the_message() -> None:
    kit = orders_kit()
    refused = await kit.deliver("orders", {"id": "o1", "amount": -5}, key="acct")
    assert refused.decision == "dead-lettered" and refused.attempts == 1
    (outcome,) = refused.outcomes
    assert outcome.cause == "TerminalError" and outcome.message == "order o1: negative amount"
    assert refused.dead_letters[0].error.type == "TerminalError"
    assert kit.state("Orders", "acct") == {}


async def test_a_retryable_error_is_retried_and_its_attempts_leave_no_state_behind() -> None:
    kit = orders_kit()
    delivery = await kit.deliver("orders", {"id": "flaky-1", "amount": 7}, key="acct")
    assert (delivery.decision, delivery.attempts) == ("applied", 3)
    assert kit.state("Orders", "acct") == {"total": 7}


async def test_retries_run_out_into_a_dead_letter_and_the_key_moves_on() -> None:
    kit = orders_kit()
    down = await kit.deliver("orders", {"id": "down-1", "amount": 1}, key="acct")
    after = await kit.deliver("orders", {"id": "o2", "amount": 2}, key="acct")
    assert (down.decision, down.attempts) == ("dead-lettered", 3)
    (letter,) = down.dead_letters
    assert letter.error.type == "RetriesExhausted"
    assert letter.error.message == "ConnectionError: payment service unavailable"
    assert after.decision == "applied" and kit.state("Orders", "acct") == {"total": 2}


async def test_without_max_attempts_the_kit_stops_retrying_and_says_so() -> None:
    kit = orders_kit(retry={"initial_interval": "10ms"})
    kit.max_attempts = 4
    down = await kit.deliver("orders", {"id": "down-2", "amount": 1}, key="acct")
    assert (down.decision, down.attempts) == ("retrying", 4)
    assert isinstance(down.error, ConnectionError) and down.dead_letters == []


async def test_a_tombstone_the_type_does_not_admit_is_a_dead_letter() -> None:
    kit = orders_kit()
    gone = await kit.deliver("orders", key="acct", tombstone=True)
    assert gone.decision == "dead-lettered"
    assert gone.dead_letters[0].error.type == "Tombstone"


async def test_an_unknown_topic_is_refused_naming_what_the_file_binds() -> None:
    kit = orders_kit()
    with pytest.raises(KitError, match="topic 'payments': expected exactly one active binding"):
        await kit.deliver("payments", {})


# --- batches -------------------------------------------------------------------------------------


clicks = restate.VirtualObject("Clicks")


class Click(BaseModel):
    page: str


@clicks.handler()
async def on_clicks(ctx: restate.ObjectContext, events: list[KafkaEvent[Click]]) -> None:
    pages: list[str] = await ctx.get("pages") or []
    ctx.set("pages", pages + [e.value.page for e in events])


def clicks_kit(per: str) -> BindingsKit:
    text = bindings_yaml(
        clusters={"local": "127.0.0.1:9"},
        worker={"app": "app:app"},
        bindings=[
            {
                "name": "clicks",
                "topic": "clicks",
                "handler": "Clicks/on_clicks",
                "dead_letter": "clicks.dlq",
                "batch": {"max_records": 100, "per": per},
            }
        ],
    )
    return BindingsKit(parse_bindings(text, Path("bindings.yaml"), {}), [clicks])


async def test_a_batch_applies_its_good_records_and_dead_letters_the_poison_one() -> None:
    kit = clicks_kit("key")
    records = [
        KitRecord({"page": "/a"}, key="u1"),
        KitRecord(raw=b"\x00", key="u1"),
        KitRecord({"page": "/b"}, key="u2"),
        KitRecord({"page": "/c"}, key="u1"),
    ]
    u1, u2 = await kit.deliver_batch("clicks", records)
    assert (u1.object_key, u1.decisions) == ("u1", ["dead-lettered", "applied", "applied"])
    assert u1.dead_letters[0].source.offset == 1
    assert kit.state("Clicks", "u1")["pages"] == ["/a", "/c"]
    assert (u2.object_key, u2.decision) == ("u2", "applied")


async def test_a_batch_delivered_again_is_dropped_below_the_high_water() -> None:
    kit = clicks_kit("partition")
    first = [KitRecord({"page": "/a"}, key="u1"), KitRecord({"page": "/b"}, key="u2")]
    (delivery,) = await kit.deliver_batch("clicks", first)
    assert delivery.object_key == "clicks/0" and delivery.decision == "applied"
    again = [*(KitRecord(r.value, r.key, offset=i) for i, r in enumerate(first))]
    (redelivery,) = await kit.deliver_batch("clicks", [*again, KitRecord({"page": "/c"})])
    assert redelivery.decisions == ["redelivered", "redelivered", "applied"]
    assert kit.state("Clicks", "clicks/0")["pages"] == ["/a", "/b", "/c"]


# --- a handler's own Publisher: published to the kit, never to a broker -------------------------

# What a user's app module holds: a publisher built from the bindings file's cluster. Its
# bootstrap address answers nothing, so a real produce could only time out.
own_publisher = Publisher(
    {"bootstrap.servers": "127.0.0.1:9", "message.timeout.ms": "1000"}, max_attempts=1
)
relay = restate.VirtualObject("Relay")


@relay.handler()
async def forward(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    await own_publisher.publish(ctx, "orders.out", event.key, event.value)
    await own_publisher.publish_many(
        ctx, [Outgoing("orders.audit", event.key, {"seen": event.value["id"]})]
    )


@pytest.mark.timeout(30)
async def test_a_handlers_own_publisher_publishes_to_the_kit() -> None:
    text = bindings_yaml(
        clusters={"local": "127.0.0.1:9"},
        bindings=[{"name": "relay", "topic": "orders", "handler": "Relay/forward"}],
    )
    kit = BindingsKit(parse_bindings(text, Path("bindings.yaml"), {}), [relay])
    delivery = await kit.deliver("orders", {"id": "o1"}, key="acct")
    assert delivery.decision == "applied", delivery.error
    assert [(s.topic, s.key, s.value) for s in delivery.published] == [
        ("orders.out", "acct", {"id": "o1"}),
        ("orders.audit", "acct", {"seen": "o1"}),
    ]
    assert kit.published("orders.out") == delivery.published[:1]


@dataclass(frozen=True)
class Fix:
    driver_id: str
    seq: int


tracker = restate.VirtualObject("Tracker")


@tracker.handler()
async def track(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
    # As examples/food_ordering/mobile_app.py publishes its Location: a dataclass.
    await own_publisher.publish(ctx, "fixes", event.key, Fix(event.value["id"], 1))


@pytest.mark.timeout(30)
async def test_a_dataclass_published_by_the_handler_is_recorded_as_its_json() -> None:
    text = bindings_yaml(
        clusters={"local": "127.0.0.1:9"},
        bindings=[{"name": "track", "topic": "orders", "handler": "Tracker/track"}],
    )
    kit = BindingsKit(parse_bindings(text, Path("bindings.yaml"), {}), [tracker])
    delivery = await kit.deliver("orders", {"id": "d1"}, key="d1")
    assert delivery.decision == "applied", delivery.error
    assert [s.value for s in delivery.published] == [{"driver_id": "d1", "seq": 1}]
