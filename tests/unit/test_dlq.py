"""Dead letters without engines: parsing, rendering, the redrive request, settling outcomes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.consume import ConsumedRecord
from restate_stream.bindings import Binding, parse_bindings
from restate_stream.cli.dlq import render_line, render_request, render_result, summary
from restate_stream.dlq import (
    DeadLetter,
    DlqError,
    NotRedrivable,
    RedriveResult,
    find_binding,
    of_binding,
    parse_dead_letter,
    redrive_request,
    settle,
)
from restate_stream.runtime.bound import dead_letter_record
from restate_stream.runtime.event import KafkaCoordinates
from restate_stream.runtime.formats import cloudevent

BINDING = Binding("orders", "orders", "local", "Orders", "handle", dead_letter="orders.dlq")
INGRESS = "http://127.0.0.1:8080/"
TIMESTAMP = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def letter(
    offset: int,
    *,
    key: bytes | None = b"acct/7 \xc3\xa9",
    raw: bytes = b'{"id": 7}',
    source_offset: int = 42,
    subscription: str | None = "sub_1",
    message: str = "order 7 rejected",
    binding: Binding = BINDING,
) -> DeadLetter:
    """A dead letter as the bound handler writes it (inside its CloudEvents envelope)."""
    coords = KafkaCoordinates("orders", 3, source_offset, TIMESTAMP, key, subscription)
    record = dead_letter_record(binding, coords, raw, "TerminalError", message, 1)
    value = cloudevent("id-1", "restate-stream.dead-letter", "restate-stream", "now", record)
    consumed = ConsumedRecord("orders.dlq", 0, offset, key, value, 1)
    return parse_dead_letter(consumed)


def test_parse_reads_the_envelope_and_keeps_dlq_coordinates() -> None:
    dead = letter(5)
    assert (dead.topic, dead.partition, dead.offset, dead.position) == (
        "orders.dlq",
        0,
        5,
        "dlq[0]@5",
    )
    assert dead.binding == "orders" and dead.source_coordinates == ("orders", 3, 42)
    assert not dead.from_redrive
    assert dead.value_bytes() == b'{"id": 7}'
    as_json = dead.to_json()
    assert as_json["dlq"] == {"topic": "orders.dlq", "partition": 0, "offset": 5}
    assert as_json["error"] == {"type": "TerminalError", "message": "order 7 rejected"}


def test_non_utf8_values_come_back_from_base64() -> None:
    assert letter(1, raw=b"\xff\x00binary").value_bytes() == b"\xff\x00binary"


@pytest.mark.parametrize("value", [b"not json", b"[1, 2]", b'{"binding": "x"}', b"\xff"])
def test_records_that_are_not_dead_letters_are_reported_not_raised(value: bytes) -> None:
    dead = parse_dead_letter(ConsumedRecord("t.dlq", 1, 9, None, value, None))
    assert dead.record is None and dead.problem
    assert "not a restate-stream dead-letter record" in render_line(dead)
    assert dead.to_json() == {
        "dlq": {"topic": "t.dlq", "partition": 1, "offset": 9},
        "problem": dead.problem,
    }


def test_render_line_has_every_column_and_truncates_the_message() -> None:
    line = render_line(letter(5, message="boom\n" + "x" * 200))
    columns = line.strip().split("  ")
    assert columns[:4] == ["dlq[0]@5", "orders[3]@42", 'key="acct/7 é"', "TerminalError"]
    message = json.loads(columns[4])
    assert message.startswith("boom x") and message.endswith("…") and len(message) == 60
    assert columns[5] == "attempts=1" and columns[6].startswith("20") and len(columns) == 7
    assert render_line(letter(6, subscription=None)).endswith("(from a redrive)")
    assert "key=-" in render_line(letter(7, key=None))


def test_redrive_request_is_what_the_subscription_would_have_sent() -> None:
    request = redrive_request(BINDING, INGRESS, letter(5))
    assert request.letter.record is not None
    key = f"redrive/orders/0/5/{request.letter.record['failed_at']}"
    assert request.url == "http://127.0.0.1:8080/Orders/acct%2F7%20%C3%A9/handle/send"
    assert request.body == b'{"id": 7}'
    assert request.headers == {
        "content-type": "application/octet-stream",
        "idempotency-key": key,
        "kafka.topic": "orders",
        "kafka.partition": "3",
        "kafka.offset": "42",
        "kafka.timestamp": str(int(TIMESTAMP.timestamp() * 1000)),
        "kafka.key": base64.b64encode("acct/7 é".encode()).decode(),
        "restate-stream.redrive-of": "orders.dlq/0/5",
    }
    # The handler reads the headers back into the original coordinates.
    coords = KafkaCoordinates.from_headers(request.headers)
    assert (coords.topic, coords.partition, coords.offset) == ("orders", 3, 42)
    assert coords.timestamp == TIMESTAMP and coords.key == "acct/7 é".encode()
    assert f"idempotency-key: {key}" in render_request(request)


def test_binary_values_are_sent_as_their_original_bytes() -> None:
    assert redrive_request(BINDING, INGRESS, letter(1, raw=b"\xff\x01")).body == b"\xff\x01"


def test_unkeyed_bindings_call_the_service_and_keyed_ones_need_a_key() -> None:
    service = Binding("s", "t", "local", "Svc", "run", keyed=False, dead_letter="t.dlq")
    request = redrive_request(service, INGRESS, letter(2, key=None, binding=service))
    assert (
        request.url == "http://127.0.0.1:8080/Svc/run/send" and "kafka.key" not in request.headers
    )
    with pytest.raises(NotRedrivable, match="no key"):
        redrive_request(BINDING, INGRESS, letter(3, key=None))
    garbage = parse_dead_letter(ConsumedRecord("t.dlq", 0, 4, None, b"nope", None))
    with pytest.raises(NotRedrivable):
        redrive_request(BINDING, INGRESS, garbage)


def test_find_binding_and_filtering_by_binding() -> None:
    spec = parse_bindings(
        """\
kafka: {clusters: {local: {bootstrap.servers: "k:9092"}}}
bindings:
  - {name: orders, topic: orders, handler: Orders/handle, dead_letter: shared.dlq}
  - {name: plain, topic: other, handler: Orders/other}
""",
        Path("b.yaml"),
        {},
    )
    assert find_binding(spec, "orders").dead_letter == "shared.dlq"
    with pytest.raises(DlqError, match="sets no dead_letter"):
        find_binding(spec, "plain")
    with pytest.raises(DlqError, match=r"no binding named 'order' \(bindings: orders, plain\)"):
        find_binding(spec, "order")
    other = Binding("payments", "p", "local", "P", "h", dead_letter="shared.dlq")
    garbage = parse_dead_letter(ConsumedRecord("shared.dlq", 0, 9, None, b"?", None))
    mine, others = of_binding([letter(1), letter(2, binding=other), garbage], "orders")
    assert [d.offset for d in mine] == [1, 9] and others == 1


def _result(dead: DeadLetter, outcome: Any) -> RedriveResult:
    return RedriveResult(dead, outcome, invocation_id=f"inv_{dead.offset}")


def test_settle_finds_records_that_failed_again_by_their_source() -> None:
    first, second = letter(1, source_offset=10), letter(2, source_offset=11)
    results = [_result(first, "ok"), _result(second, "ok")]
    again = letter(7, source_offset=11, subscription=None, message="still bad")
    unrelated = letter(8, source_offset=10)  # the subscription's own, not a redrive's
    settle(results, [first, second], [unrelated, again])
    assert [r.outcome for r in results] == ["ok", "failed again"]
    assert results[1].detail == "now dlq[0]@7: TerminalError: still bad"
    assert render_result(results[1]).endswith(
        "failed again: now dlq[0]@7: TerminalError: still bad  (inv_2)"
    )


def test_settle_points_already_redriven_letters_at_what_their_redrive_left() -> None:
    original, left = letter(1, source_offset=10), letter(5, source_offset=10, subscription=None)
    results = [_result(original, "already redriven"), _result(left, "ok")]
    settle(results, [original, left], [])
    assert results[0].earlier_failure == left
    assert results[0].detail == "it failed again then: now dlq[0]@5"
    assert results[1].outcome == "ok" and results[1].earlier_failure is None
    assert summary(BINDING, results) == "redrive orders: 2 dead letter(s): 1 ok, 1 already redriven"
    assert summary(BINDING, []) == "redrive orders: 0 dead letter(s): nothing to do"


async def test_a_key_whose_letter_was_not_sent_holds_its_later_letters() -> None:
    import httpx

    from restate_stream.dlq import send_all

    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/attach"):
            return httpx.Response(200)
        sent.append(request.headers["kafka.offset"])
        if request.headers["kafka.offset"] == "1":
            return httpx.Response(500, json={"message": "boom"})
        return httpx.Response(202, json={"invocationId": f"inv_{len(sent)}", "status": "Accepted"})

    requests = [
        redrive_request(BINDING, INGRESS, letter(10, source_offset=1)),
        redrive_request(BINDING, INGRESS, letter(11, source_offset=2)),
        redrive_request(BINDING, INGRESS, letter(12, source_offset=3, key=b"other")),
    ]
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        results = await send_all(http, INGRESS, list(requests), timeout=5)
    assert [r.outcome for r in results] == ["error", "skipped", "ok"]
    assert sent == ["1", "3"], "the held key's later letter was not sent"
