"""Dead letters without engines: the model on the wire, grouping per source record, which
letters a redrive sends, the redrive call, settling outcomes."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from restate import TerminalError
from restate.client import Client

from connectors.consume import ConsumedRecord
from restate_stream.bindings import Binding, parse_bindings
from restate_stream.cli.dlq import render_listing, render_request, render_result, summary
from restate_stream.dlq import (
    DlqError,
    Entry,
    NotRedrivable,
    RedriveRequest,
    RedriveResult,
    StoredLetter,
    StoredResolution,
    Unreadable,
    by_source_record,
    call_all,
    find_binding,
    parse_entry,
    plan_redrive,
    redrive_request,
    settle,
)
from restate_stream.runtime.bound import RecordBoundHandler
from restate_stream.runtime.dead_letter import (
    DEAD_LETTER_TYPE,
    REDRIVE_OF_HEADER,
    RESOLVED_TYPE,
    DeadLetter,
    LetterRef,
    NotADeadLetterError,
    Resolution,
    parse_record,
)
from restate_stream.runtime.event import KafkaCoordinates
from restate_stream.runtime.formats import JsonCodec, cloudevent
from restate_stream.runtime.publisher import Published, Publisher
from restate_stream.testing import bindings_yaml

BINDING = Binding("orders", "orders", "local", "Orders", "handle", dead_letter="orders.dlq")
INGRESS = "http://127.0.0.1:8080/"
TIMESTAMP = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
KEY = "acct/7 é"


def coords(
    source_offset: int = 42, key: str | None = KEY, subscription: str | None = "sub_1"
) -> KafkaCoordinates:
    raw_key = None if key is None else key.encode()
    return KafkaCoordinates("orders", 3, source_offset, TIMESTAMP, raw_key, subscription)


def kafka_key(key: str | None) -> bytes | None:
    """The Kafka key the bound handler gives a dead letter: the record key as text."""
    return None if key is None else key.encode()


def stored(
    offset: int,
    *,
    source_offset: int = 42,
    key: str | None = KEY,
    raw: bytes = b'{"id": 7}',
    message: str = "order 7 rejected",
    redrive_of: int | None = None,
    binding: str = "orders",
    minutes: int = 0,
) -> StoredLetter:
    """A dead letter at dlq[0]@offset, as the bound handler writes and the reader reads it."""
    ref = (
        None
        if redrive_of is None
        else LetterRef(topic="orders.dlq", partition=0, offset=redrive_of)
    )
    letter = DeadLetter.of(
        binding, coords(source_offset, key), raw, "TerminalError", message, 1, ref
    )
    letter = letter.model_copy(update={"failed_at": TIMESTAMP + timedelta(minutes=minutes)})
    value = cloudevent("id", DEAD_LETTER_TYPE, "restate-stream", "now", letter.to_json())
    entry = parse_entry(ConsumedRecord("orders.dlq", 0, offset, kafka_key(key), value, 1))
    assert isinstance(entry, StoredLetter)
    return entry


def resolution(offset: int, of: int, *, source_offset: int = 42) -> StoredResolution:
    ref = LetterRef(topic="orders.dlq", partition=0, offset=of)
    marker = Resolution.of("orders", coords(source_offset, subscription=None), ref)
    value = cloudevent("id", RESOLVED_TYPE, "restate-stream", "now", marker.to_json())
    entry = parse_entry(ConsumedRecord("orders.dlq", 0, offset, kafka_key(KEY), value, 1))
    assert isinstance(entry, StoredResolution)
    return entry


# --- the model ---------------------------------------------------------------------------------

# A letter exactly as earlier versions wrote it: it must stay readable, and written the same.
EARLIER = {
    "binding": "orders",
    "source": {
        "topic": "orders",
        "partition": 3,
        "offset": 42,
        "timestamp": "2026-01-02T03:04:05.678000+00:00",
        "subscription_id": "sub_1",
    },
    "key": KEY,
    "value": None,
    "value_base64": "/wA=",
    "error": {"type": "DecodeError", "message": "invalid JSON"},
    "attempts": 1,
    "failed_at": "2026-01-02T03:05:00.123456+00:00",
}


def test_the_wire_json_of_earlier_versions_round_trips_unchanged() -> None:
    envelope = cloudevent("id", DEAD_LETTER_TYPE, "s", "now", EARLIER)
    letter = parse_record(envelope)
    assert isinstance(letter, DeadLetter)
    assert letter.to_json() == EARLIER
    assert json.dumps(letter.to_json()) == json.dumps(EARLIER), "same fields, same order"
    assert letter.value_bytes() == b"\xff\x00" and letter.redrive_of is None
    assert letter.coordinates() == coords()


def test_written_letters_round_trip_and_name_their_redrive() -> None:
    ref = LetterRef(topic="orders.dlq", partition=1, offset=9)
    written = DeadLetter.of("orders", coords(), b'{"id": 7}', "TerminalError", "no", 2, ref)
    data = written.to_json()
    assert data["value"] == '{"id": 7}' and data["value_base64"] is None
    assert data["redrive_of"] == {"topic": "orders.dlq", "partition": 1, "offset": 9}
    assert data["source"]["timestamp"] == TIMESTAMP.isoformat()
    assert parse_record(cloudevent("i", DEAD_LETTER_TYPE, "s", "n", data)) == written
    marker = Resolution.of("orders", coords(), ref)
    assert parse_record(cloudevent("i", RESOLVED_TYPE, "s", "n", marker.to_json())) == marker


def test_letter_refs_travel_as_one_header() -> None:
    ref = LetterRef(topic="orders.dlq", partition=1, offset=9)
    assert ref.header() == "orders.dlq/1/9" and LetterRef.from_header("orders.dlq/1/9") == ref
    for bad in (None, "", "orders.dlq", "orders.dlq/x/9", "/1/9"):
        assert LetterRef.from_header(bad) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b'{"binding": "x"}', "source: Field required"),
        (b"\xff", "not JSON"),
    ],
)
def test_records_that_are_not_dead_letters_say_what_is_wrong(value: bytes, problem: str) -> None:
    with pytest.raises(NotADeadLetterError, match=problem):
        parse_record(value)
    entry = parse_entry(ConsumedRecord("t.dlq", 1, 9, None, value, None))
    assert isinstance(entry, Unreadable) and problem in entry.problem


# --- one entry per source record ---------------------------------------------------------------


def test_letters_group_per_source_record_with_their_history() -> None:
    entries: list[Entry] = [
        stored(0, source_offset=10, message="first"),
        stored(1, source_offset=11),
        stored(2, source_offset=10, redrive_of=0, minutes=1, message="second"),
        stored(3, source_offset=11, redrive_of=1, minutes=1),
        stored(4, source_offset=10, redrive_of=2, minutes=2, message="third"),
        stored(5, source_offset=11, redrive_of=3, minutes=2),
        stored(6, source_offset=12, binding="payments"),
        Unreadable(LetterRef(topic="orders.dlq", partition=0, offset=7), "garbage"),
    ]
    listing = by_source_record(entries, "orders", "orders.dlq")
    assert [h.source.offset for h in listing.records] == [10, 11]
    first = listing.records[0]
    assert [s.at.offset for s in first.letters] == [0, 2, 4] and first.attempts == 3
    assert first.latest.letter.error.message == "third" and not first.resolved
    assert listing.others == 1 and len(listing.unreadable) == 1 and listing.letter_count == 6
    text = render_listing(listing)
    assert 'orders[3]@10  key="acct/7 é"  letters=3  attempts=3  TerminalError' in text
    assert text.endswith(
        "2 source record(s) with dead letters of binding orders on orders.dlq: 2 unresolved, "
        "0 resolved (6 letter(s); 1 of other bindings not shown)"
    )
    as_json = first.to_json()
    assert as_json["letter_count"] == 3 and as_json["resolved"] is False
    assert as_json["latest"]["dlq"] == {"topic": "orders.dlq", "partition": 0, "offset": 4}
    assert [h["dlq"]["offset"] for h in as_json["history"]] == [0, 2, 4]


def test_only_the_latest_letter_of_each_unresolved_record_is_redriven() -> None:
    entries: list[Entry] = [
        stored(0, source_offset=10),
        stored(1, source_offset=11),
        stored(2, source_offset=12),
        stored(3, source_offset=10, redrive_of=0, minutes=1),
        resolution(4, of=1, source_offset=11),  # 11's latest letter went through
        resolution(5, of=2, source_offset=12),
        stored(6, source_offset=12, minutes=2),  # consumed again and failed: unresolved again
    ]
    listing = by_source_record(entries, "orders", "orders.dlq")
    assert [(h.source.offset, h.resolved) for h in listing.records] == [
        (10, False),
        (11, True),
        (12, False),
    ]
    items = plan_redrive(BINDING, listing)
    assert all(isinstance(i, RedriveRequest) for i in items)
    assert [i.letter.at.offset for i in items] == [3, 6]
    # Resolving those leaves nothing to send.
    resolved = [resolution(7, of=3, source_offset=10), resolution(8, of=6, source_offset=12)]
    done = by_source_record([*entries, *resolved], "orders")
    assert done.unresolved == [] and plan_redrive(BINDING, done) == []


def test_redrive_request_is_what_the_subscription_would_have_sent() -> None:
    listing = by_source_record([stored(5)], "orders")
    request = redrive_request(BINDING, listing.records[0])
    failed_at = request.letter.letter.failed_at.isoformat()
    assert request.idempotency_key == f"redrive/orders/0/5/{failed_at}"
    assert request.path == "Orders/acct%2F7%20%C3%A9/handle"
    assert request.body == b'{"id": 7}'
    assert request.headers == {
        "content-type": "application/octet-stream",
        "kafka.topic": "orders",
        "kafka.partition": "3",
        "kafka.offset": "42",
        "kafka.timestamp": str(int(TIMESTAMP.timestamp() * 1000)),
        "kafka.key": base64.b64encode(KEY.encode()).decode(),
        "restate-stream.redrive-of": "orders.dlq/0/5",
    }
    # The handler reads the headers back into the original coordinates (no subscription).
    assert KafkaCoordinates.from_headers(request.headers) == coords(subscription=None)
    shown = render_request(request, INGRESS)
    assert "POST http://127.0.0.1:8080/Orders/acct%2F7%20%C3%A9/handle" in shown
    assert f"idempotency-key: redrive/orders/0/5/{failed_at}" in shown


def test_coordinates_and_headers_round_trip_both_ways() -> None:
    for c in (coords(), coords(key=None, subscription=None)):
        assert KafkaCoordinates.from_headers(c.to_headers()) == c


def test_unkeyed_bindings_call_the_service_and_keyed_ones_need_a_key() -> None:
    service = Binding("s", "t", "local", "Svc", "run", keyed=False, dead_letter="t.dlq")
    [history] = by_source_record([stored(2, key=None)], "orders").records
    request = redrive_request(service, history)
    assert request.path == "Svc/run" and "kafka.key" not in request.headers
    with pytest.raises(NotRedrivable, match="no key"):
        redrive_request(BINDING, history)
    [skipped] = plan_redrive(BINDING, by_source_record([stored(2, key=None)], "orders"))
    assert isinstance(skipped, RedriveResult) and skipped.outcome == "skipped"


def test_find_binding() -> None:
    text = bindings_yaml(
        clusters={"local": "k:9092"},
        bindings=[
            {
                "name": "orders",
                "topic": "orders",
                "handler": "Orders/handle",
                "dead_letter": "shared.dlq",
            },
            {"name": "plain", "topic": "other", "handler": "Orders/other"},
        ],
    )
    spec = parse_bindings(text, Path("b.yaml"), {})
    assert find_binding(spec, "orders").dead_letter == "shared.dlq"
    with pytest.raises(DlqError, match="sets no dead_letter"):
        find_binding(spec, "plain")
    with pytest.raises(DlqError, match=r"no binding named 'order' \(bindings: orders, plain\)"):
        find_binding(spec, "order")


# --- outcomes ----------------------------------------------------------------------------------


def test_settle_reads_outcomes_from_the_topic() -> None:
    before: list[Entry] = [stored(0, source_offset=10), stored(1, source_offset=11)]
    items = plan_redrive(BINDING, by_source_record(before, "orders"))
    results = [RedriveResult(i.history, "done", sent=True) for i in items]
    after = [
        *before,
        stored(2, source_offset=10, redrive_of=0, minutes=1, message="still bad"),
        resolution(3, of=1, source_offset=11),
    ]
    settle(results, by_source_record(after, "orders"))
    assert [r.outcome for r in results] == ["failed again", "resolved"]
    assert results[0].detail == "now dlq[0]@2: TerminalError: still bad"
    assert render_result(results[0]).endswith(
        'orders[3]@10  key="acct/7 é"  failed again: now dlq[0]@2: TerminalError: still bad'
    )
    assert summary(BINDING, results) == (
        "redrive orders: 2 source record(s): 1 resolved, 1 failed again"
    )
    assert summary(BINDING, []) == "redrive orders: 0 source record(s): nothing to do"


async def test_a_key_whose_letter_did_not_go_through_holds_its_later_letters() -> None:
    sent: list[tuple[str, str | None]] = []
    paths: set[bytes] = set()

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append((request.headers["kafka.offset"], request.headers.get("idempotency-key")))
        paths.add(request.url.raw_path)
        if request.headers["kafka.offset"] == "1":
            return httpx.Response(500, json={"message": "boom"})
        return httpx.Response(200, content=b"")

    listing = by_source_record(
        [
            stored(10, source_offset=1),
            stored(11, source_offset=2),
            stored(12, source_offset=3, key="other"),
        ],
        "orders",
    )
    items = plan_redrive(BINDING, listing)
    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport, base_url=INGRESS) as http:
        results = await call_all(Client(http), INGRESS, items, timeout=5)
    assert [r.outcome for r in results] == ["error", "skipped", "done"]
    assert results[0].detail == "500 boom"
    assert [offset for offset, _ in sent] == ["1", "3"], "the held key's later letter waits"
    assert all(key and key.startswith("redrive/orders/0/") for _, key in sent)
    assert paths == {b"/Orders/acct%2F7%20%C3%A9/handle", b"/Orders/other/handle"}


# --- the writer: what a redriven invocation leaves on the dead-letter topic --------------------


class _Request:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers, self.id = headers, "inv_1"


class _Ctx:
    def __init__(self, headers: dict[str, str]) -> None:
        self._request = _Request(headers)

    def request(self) -> _Request:
        return self._request


class _Publisher(Publisher):
    def __init__(self, refuse: str | None = None) -> None:
        super().__init__({})
        self.sent: list[tuple[str, str | None, Any, str | None]] = []
        self.contexts: list[Any] = []
        self.refuse = refuse  # refuse records of this event type for good

    async def publish(
        self, ctx: Any, topic: str, key: str | None, value: Any, **options: Any
    ) -> Published:
        if options.get("event_type") == self.refuse:
            raise TerminalError("record too large")
        self.contexts.append(ctx)
        self.sent.append((topic, key, value, options.get("event_type")))
        return Published("id", topic, 0, len(self.sent) - 1)


@pytest.mark.parametrize("redriven", [False, True])
async def test_the_bound_handler_names_the_redriven_letter_in_what_it_writes(
    redriven: bool,
) -> None:
    async def handle(ctx: Any, value: dict[str, Any]) -> None:
        if value.get("poison"):
            raise TerminalError("poison")

    headers = coords(subscription=None if redriven else "sub_1").to_headers()
    if redriven:
        headers[REDRIVE_OF_HEADER] = "orders.dlq/0/5"
    publisher = _Publisher()
    bound = RecordBoundHandler(BINDING, handle, JsonCodec(), publisher, wants_event=False)
    ctx: Any = _Ctx(headers)
    await bound(ctx, b'{"poison": true}')
    await bound(ctx, b'{"poison": false}')
    ref = LetterRef(topic="orders.dlq", partition=0, offset=5) if redriven else None
    [(topic, key, letter, kind), *rest] = publisher.sent
    assert (topic, key, kind) == ("orders.dlq", KEY, DEAD_LETTER_TYPE)
    assert DeadLetter.from_json(letter).redrive_of == ref
    if not redriven:
        assert rest == [], "a subscription's successful record leaves nothing"
        return
    [(topic, key, marker, kind)] = rest
    assert (topic, key, kind) == ("orders.dlq", KEY, RESOLVED_TYPE)
    assert Resolution.model_validate(marker).redrive_of == ref


async def test_a_resolution_is_published_in_the_invocation_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handle(ctx: Any, value: dict[str, Any]) -> None:
        return None

    headers = coords(subscription=None).to_headers()
    headers[REDRIVE_OF_HEADER] = "orders.dlq/0/5"
    publisher = _Publisher()
    bound = RecordBoundHandler(BINDING, handle, JsonCodec(), publisher, wants_event=False)
    ctx: Any = _Ctx(headers)
    with caplog.at_level(logging.INFO, logger="restate_stream.runtime.bound"):
        await bound(ctx, b'{"ok": true}')
    assert publisher.contexts == [ctx], "journaled in the redriven invocation"
    assert f"redrive of orders.dlq[0]@5 resolved {coords().describe()}" in caplog.text


async def test_a_resolution_the_topic_refuses_retries_the_invocation() -> None:
    async def handle(ctx: Any, value: dict[str, Any]) -> None:
        return None

    headers = coords(subscription=None).to_headers()
    headers[REDRIVE_OF_HEADER] = "orders.dlq/0/5"
    publisher = _Publisher(refuse=RESOLVED_TYPE)
    bound = RecordBoundHandler(BINDING, handle, JsonCodec(), publisher, wants_event=False)
    with pytest.raises(RuntimeError) as raised:
        await bound(_Ctx(headers), b'{"ok": true}')
    assert not isinstance(raised.value, TerminalError)
    assert str(raised.value) == (
        "recording the redrive of orders.dlq[0]@5 on 'orders.dlq' failed: record too large"
    )
