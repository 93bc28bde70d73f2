"""What `dlq` refuses from a dead-letter topic (whoever writes it chooses what a redrive hands
the handler): forged source topics, disagreeing key fields, resolutions of another record,
and with a signing key, anything unsigned or signed with another key; and what a worker with
the key refuses: a redrive call without its signature (a batched binding's high-water stays)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import restate

from connectors.consume import ConsumedRecord
from restate_stream.batch import WireRecord, encode_batch, high_water_state
from restate_stream.bindings import Binding, parse_bindings
from restate_stream.cli.dlq import render_listing
from restate_stream.dlq import (
    RedriveRequest,
    RedriveResult,
    StoredLetter,
    StoredResolution,
    by_source_record,
    parse_entry,
    plan_redrive,
)
from restate_stream.runtime.bound import bind
from restate_stream.runtime.dead_letter import (
    DEAD_LETTER_TYPE,
    REDRIVE_OF_HEADER,
    RESOLVED_TYPE,
    DeadLetter,
    LetterRef,
    Resolution,
)
from restate_stream.runtime.event import KafkaCoordinates, KafkaEvent
from restate_stream.runtime.formats import cloudevent
from restate_stream.runtime.letter_signing import (
    KEY_ENV,
    PREVIOUS_KEY_ENV,
    REDRIVE_SIGNATURE_HEADER,
    LetterKeys,
    SigningKeyError,
)
from restate_stream.testing import MemoryContext, MemoryPublisher, bindings_yaml, invoke

KEY = "a signing key of 32 characters!!"
OTHER = LetterKeys(b"somebody else's key, not ours")
SIGNING = LetterKeys(KEY.encode())
OFF = LetterKeys()
BINDING = Binding("orders", "orders", "local", "Orders", "handle", dead_letter="orders.dlq")


def letter(
    offset: int = 42, key: bytes | None = b"acct-7", topic: str = "orders", value: bytes = b"{}"
) -> DeadLetter:
    coords = KafkaCoordinates(topic, 0, offset, None, key, None)
    return DeadLetter.of("orders", coords, value, "TerminalError", "rejected", 1)


def on_topic(
    data: dict[str, Any],
    at: int,
    *,
    kind: str = DEAD_LETTER_TYPE,
    kafka_key: bytes | None = b"acct-7",
    keys: LetterKeys = OFF,
) -> StoredLetter | StoredResolution:
    """The record as it sits on the dead-letter topic, read back with `keys` (SIGNING: the
    reader has the key)."""
    value = cloudevent(f"id-{at}", kind, "restate-stream", "now", data)
    entry = parse_entry(ConsumedRecord("orders.dlq", 0, at, kafka_key, value, 1), keys)
    assert isinstance(entry, StoredLetter | StoredResolution)
    return entry


def skipped(items: list[RedriveRequest | RedriveResult]) -> dict[int, str]:
    return {i.letter.at.offset: i.detail for i in items if isinstance(i, RedriveResult)}


# --- without a signing key: what the records themselves give away -----------------------------


def test_a_letter_from_another_source_topic_is_refused_and_reported_not_sent() -> None:
    forged = on_topic(letter(topic="payments").to_json(), at=5)
    real = on_topic(letter(offset=43).to_json(), at=6)
    listing = by_source_record([forged, real], "orders", "orders.dlq", source_topic="orders")
    assert [h.latest.at.offset for h in listing.records] == [6]
    items = plan_redrive(BINDING, listing, OFF)
    assert [i.letter.at.offset for i in items if isinstance(i, RedriveRequest)] == [6]
    assert skipped(items) == {
        5: "refused: its source topic 'payments' is not the binding's topic 'orders'"
    }
    shown = render_listing(listing)
    assert 'dlq[0]@5  payments[0]@42  key="acct-7"  REFUSED letter: its source topic' in shown
    assert "1 refused (not redriven, resolving nothing)" in shown


@pytest.mark.parametrize(
    ("data", "kafka_key", "why"),
    [
        (letter().to_json(), b"acct-8", "its Kafka record has key b'acct-8', but the letter's"),
        (letter().to_json(), None, "its Kafka record has no key, but the letter's key is 'acct-7'"),
        (
            {**letter().to_json(), "key_base64": "YWNjdC03"},
            b"acct-7",
            "its key_base64 is set although",
        ),
        (letter(key=b"\xff").to_json() | {"key": "x"}, b"x", "its key and key_base64 name diff"),
        ({**letter().to_json(), "key_base64": "%%"}, b"acct-7", "its key_base64 is not base64"),
    ],
)
def test_a_letter_whose_key_fields_disagree_is_refused(
    data: dict[str, Any], kafka_key: bytes | None, why: str
) -> None:
    entry = on_topic(data, at=5, kafka_key=kafka_key)
    assert entry.distrust is not None and entry.distrust.startswith(why)
    listing = by_source_record([entry], "orders", "orders.dlq", "orders")
    assert listing.records == [] and skipped(plan_redrive(BINDING, listing, OFF))[5].startswith(
        f"refused: {why}"
    )


def test_a_non_utf8_key_agrees_with_its_text_or_raw_kafka_key() -> None:
    data = letter(key=b"\xffk").to_json()
    for kafka_key in (b"\xffk", "\ufffdk".encode()):  # unblock's, the bound handler's
        assert on_topic(data, at=5, kafka_key=kafka_key).distrust is None


def test_a_resolution_of_another_source_record_does_not_hide_the_letter() -> None:
    real = on_topic(letter().to_json(), at=5)
    ref = LetterRef(topic="orders.dlq", partition=0, offset=5)
    other = KafkaCoordinates("orders", 0, 99, None, b"acct-7", None)
    forged = Resolution.of("orders", other, ref).to_json()
    resolution = on_topic(forged, at=6, kind=RESOLVED_TYPE)
    listing = by_source_record([real, resolution], "orders", "orders.dlq", "orders")
    assert [h.resolved for h in listing.records] == [False]
    assert [r.at.offset for r in listing.refused] == [6]
    assert "it resolves orders.dlq[0]@5, a letter of another source record or key" in str(
        listing.refused[0].distrust
    )


# --- with a signing key ------------------------------------------------------------------------


def test_a_signed_letter_is_trusted_and_a_changed_one_is_not() -> None:
    signed = SIGNING.signed(letter().to_json(), DEAD_LETTER_TYPE)
    assert on_topic(signed, at=5, keys=SIGNING).distrust is None
    assert on_topic(signed, at=5, keys=OFF).distrust is None  # no key: nothing to check
    changed = {**signed, "value": '{"amount": 1000000}'}
    assert on_topic(changed, at=5, keys=SIGNING).distrust == (
        "bad signature: not written with the signing key, or changed since"
    )
    # A letter's signature does not make it a resolution.
    assert SIGNING.distrust(signed, RESOLVED_TYPE) is not None


def test_unsigned_and_foreign_letters_are_refused_while_signing_is_on() -> None:
    real = on_topic(SIGNING.signed(letter().to_json(), DEAD_LETTER_TYPE), at=5, keys=SIGNING)
    # Same source record, a later failure: unsigned, it would have been the one redriven.
    later = letter().model_copy(update={"failed_at": letter().failed_at.replace(year=2100)})
    unsigned = on_topic(later.to_json(), at=6, keys=SIGNING)
    foreign = on_topic(OTHER.signed(letter(offset=50).to_json(), DEAD_LETTER_TYPE), 7, keys=SIGNING)
    listing = by_source_record([real, unsigned, foreign], "orders", "orders.dlq", "orders")
    items = plan_redrive(BINDING, listing, SIGNING)
    [request] = [i for i in items if isinstance(i, RedriveRequest)]
    assert request.letter.at.offset == 5, "the forged letter does not supersede the real one"
    assert skipped(items) == {
        6: f"refused: unsigned, and signing is on (${KEY_ENV} is set)",
        7: "refused: bad signature: not written with the signing key, or changed since",
    }


def test_an_unsigned_resolution_hides_nothing_while_signing_is_on() -> None:
    real = on_topic(SIGNING.signed(letter().to_json(), DEAD_LETTER_TYPE), at=5, keys=SIGNING)
    coords = KafkaCoordinates("orders", 0, 42, None, b"acct-7", None)
    ref = LetterRef(topic="orders.dlq", partition=0, offset=5)
    forged = on_topic(
        Resolution.of("orders", coords, ref).to_json(), at=6, kind=RESOLVED_TYPE, keys=SIGNING
    )
    listing = by_source_record([real, forged], "orders", "orders.dlq", "orders")
    assert listing.unresolved == listing.records and len(listing.records) == 1
    signed = SIGNING.signed(Resolution.of("orders", coords, ref).to_json(), RESOLVED_TYPE)
    resolved = on_topic(signed, at=7, kind=RESOLVED_TYPE, keys=SIGNING)
    assert by_source_record([real, resolved], "orders", "orders.dlq", "orders").unresolved == []


def test_the_previous_key_still_verifies_after_a_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    old = "the key before the rotation..."
    signed_before = LetterKeys(old.encode()).signed(letter().to_json(), DEAD_LETTER_TYPE)
    monkeypatch.setenv(KEY_ENV, KEY)
    assert on_topic(signed_before, at=5, keys=LetterKeys.from_env()).distrust is not None
    monkeypatch.setenv(PREVIOUS_KEY_ENV, old)
    assert on_topic(signed_before, at=5, keys=LetterKeys.from_env()).distrust is None


def test_a_short_key_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "hunter2")
    with pytest.raises(SigningKeyError) as refused:
        LetterKeys.from_env()
    assert f"${KEY_ENV} is 7 characters long" in str(refused.value)
    assert "hunter2" not in str(refused.value) and "hunter2" not in repr(LetterKeys(b"hunter2"))


# --- the worker: signs what it writes, runs a redrive only with its signature -----------------

ITEMS = """\
kafka:
  clusters:
    local: {bootstrap.servers: "127.0.0.1:9092"}
bindings:
  - name: items
    topic: items
    handler: Items/on_items
    dead_letter: items.dlq
    batch: {max_records: 500, max_wait: 50ms}
"""


async def test_a_batched_redrive_without_its_signature_passes_no_high_water(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    obj = restate.VirtualObject("Items")
    seen: list[tuple[int, Any]] = []

    @obj.handler()
    async def on_items(ctx: restate.ObjectContext, events: list[KafkaEvent[Any]]) -> None:
        seen.extend((e.offset, e.value) for e in events)

    publisher = MemoryPublisher()
    bind([obj], parse_bindings(ITEMS, Path("bindings.yaml"), {}), {"local": publisher})
    ctx = MemoryContext("user-1", invocation_id="inv_1")
    record = WireRecord("items", 0, 10, None, b"user-1", b'{"n": 1}')
    await invoke(obj, "on_items", ctx, encode_batch([record]))
    # Forged: record 10 again, with another value, named a redrive of some letter.
    forged = encode_batch([record._replace(value=b'{"n": 666}')])
    header = "items.dlq/0/3"
    ctx.headers = {REDRIVE_OF_HEADER: header}
    with pytest.raises(restate.TerminalError, match=r"refused the redrive of items\.dlq"):
        await invoke(obj, "on_items", ctx, forged)
    ctx.headers[REDRIVE_SIGNATURE_HEADER] = str(
        OTHER.redrive_signature("items", header, {}, forged)
    )
    with pytest.raises(restate.TerminalError, match="bad signature"):
        await invoke(obj, "on_items", ctx, forged)
    assert seen == [(10, {"n": 1})], "the high-water still held"
    assert ctx.state[high_water_state("items")] == {"items/0": 10}
    assert publisher.sent == [], "no resolution written for a letter it never redrove"
    # What `dlq redrive` sends with the key goes through, and is resolved.
    ctx.headers[REDRIVE_SIGNATURE_HEADER] = str(
        SIGNING.redrive_signature("items", header, {}, forged)
    )
    await invoke(obj, "on_items", ctx, forged)
    assert seen[1:] == [(10, {"n": 666})]
    [resolution] = publisher.sent
    assert resolution.event_type == RESOLVED_TYPE
    assert SIGNING.distrust(resolution.value, RESOLVED_TYPE) is None, "the worker signs it"


async def test_the_worker_signs_its_letters_and_refuses_an_unsigned_redrive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    obj = restate.VirtualObject("Orders")

    @obj.handler()
    async def handle(ctx: restate.ObjectContext, event: KafkaEvent[dict[str, Any]]) -> None:
        raise restate.TerminalError("rejected")

    binding = {"name": "orders", "topic": "orders", "handler": "Orders/handle"}
    binding["dead_letter"] = "orders.dlq"
    text = bindings_yaml(clusters={"local": "127.0.0.1:9"}, bindings=[binding])
    publisher = MemoryPublisher()
    bind([obj], parse_bindings(text, Path("bindings.yaml"), {}), {"local": publisher})
    coords = KafkaCoordinates("orders", 0, 42, None, b"acct-7", "sub_1")
    ctx = MemoryContext("acct-7", headers=coords.to_headers(), invocation_id="inv_1")
    await invoke(obj, "handle", ctx, b'{"n": 1}')
    [sent] = publisher.sent
    stored = on_topic(json.loads(json.dumps(sent.value)), at=5, keys=SIGNING)
    assert stored.distrust is None
    ctx.headers[REDRIVE_OF_HEADER] = "orders.dlq/0/5"
    with pytest.raises(restate.TerminalError, match=r"carries no restate-stream\.redrive-sig"):
        await invoke(obj, "handle", ctx, b'{"n": 1}')
    assert len(publisher.sent) == 1


def test_a_resolved_letter_written_again_stays_resolved() -> None:
    """Signing says who wrote a letter, not that it is new: a signed letter copied to the
    topic again (a new event id, a later offset) is the failure already resolved."""
    data = SIGNING.signed(letter().to_json(), DEAD_LETTER_TYPE)
    real = on_topic(data, at=5, keys=SIGNING)
    coords = KafkaCoordinates("orders", 0, 42, None, b"acct-7", None)
    ref = LetterRef(topic="orders.dlq", partition=0, offset=5)
    resolved = SIGNING.signed(Resolution.of("orders", coords, ref).to_json(), RESOLVED_TYPE)
    resolution = on_topic(resolved, at=6, kind=RESOLVED_TYPE, keys=SIGNING)
    replayed = on_topic(data, at=9, keys=SIGNING)
    listing = by_source_record([real, resolution, replayed], "orders", "orders.dlq", "orders")
    assert listing.unresolved == [] and plan_redrive(BINDING, listing, SIGNING) == []
