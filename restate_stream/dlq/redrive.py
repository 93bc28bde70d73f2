"""Redrive: each unresolved source record's latest letter, through the handler once more.

See the package docstring for how the call is made and how its outcome is read back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

import httpx
from restate import HttpError

from connectors.consume import TopicNotFoundError, end_offsets
from restate_stream._util.text import one_line
from restate_stream.batch.objects import batch_object_key
from restate_stream.batch.wire import WireRecord, encode_batch
from restate_stream.bindings import Binding, BindingsFile
from restate_stream.dlq.listing import (
    DlqError,
    Listing,
    SourceHistory,
    StoredLetter,
    StoredResolution,
    by_source_record,
    read_entries,
)
from restate_stream.errors import DeadLetterError
from restate_stream.runtime._sdk import Client
from restate_stream.runtime.bound import TOMBSTONE_ERROR
from restate_stream.runtime.dead_letter import REDRIVE_OF_HEADER, SourceRecord
from restate_stream.runtime.event import object_key_for
from restate_stream.runtime.letter_signing import REDRIVE_SIGNATURE_HEADER, LetterKeys

_CONCURRENT_KEYS = 32  # keys redriven side by side
MESSAGE_WIDTH = 60  # an error message in a one-line summary


# --- redrive: the call -------------------------------------------------------------------------


class NotRedrivable(DeadLetterError, ValueError):
    pass


@dataclass(frozen=True)
class RedriveRequest:
    history: SourceHistory
    service: str
    handler: str
    key: str | None  # the object key, escaped for the URL path
    idempotency_key: str
    headers: dict[str, str]
    body: bytes

    @property
    def letter(self) -> StoredLetter:
        return self.history.latest

    @property
    def path(self) -> str:
        key = "" if self.key is None else f"/{self.key}"
        return f"{self.service}{key}/{self.handler}"


def idempotency_key(binding: Binding, stored: StoredLetter) -> str:
    # failed_at tells apart letters at the same offset of a recreated dead-letter topic.
    failed_at = stored.letter.failed_at.isoformat()
    return f"redrive/{binding.name}/{stored.at.partition}/{stored.at.offset}/{failed_at}"


def redrive_request(
    binding: Binding, history: SourceHistory, keys: LetterKeys | None = None
) -> RedriveRequest:
    """The call that hands the record's latest letter to the handler as its subscription did,
    signed when `keys` sign (a worker with the key runs a redrive only with its signature)."""
    request = _request(binding, history)
    signature = (keys or LetterKeys()).redrive_signature(
        binding.name, request.headers[REDRIVE_OF_HEADER], request.headers, request.body
    )
    if signature is not None:
        request.headers[REDRIVE_SIGNATURE_HEADER] = signature
    return request


def _request(binding: Binding, history: SourceHistory) -> RedriveRequest:
    stored = history.latest
    letter = stored.letter
    if binding.batch is not None:
        return _batch_request(binding, history)
    if binding.keyed and letter.key is None:
        raise NotRedrivable("the record has no key, and the handler is keyed")
    # An ingress call has no subscription id; the redrive-of header names the letter.
    coordinates = dataclasses.replace(letter.coordinates(), subscription_id=None)
    # The object the record went to: the consumer gives a key that is not UTF-8 a `b64:` one.
    object_key = object_key_for(coordinates.key) if binding.own_consumer else letter.key
    headers = {
        "content-type": "application/octet-stream",
        **coordinates.to_headers(),
        REDRIVE_OF_HEADER: stored.at.header(),
    }
    return RedriveRequest(
        history,
        quote(binding.service, safe=""),
        quote(binding.handler, safe=""),
        quote(object_key, safe="") if binding.keyed and object_key is not None else None,
        idempotency_key(binding, stored),
        headers,
        letter.value_bytes(),
    )


def _batch_request(binding: Binding, history: SourceHistory) -> RedriveRequest:
    """A batched binding's record goes back as a one-record batch to the object its delivery
    sent it to (the raw key's object key, "" for a keyless record, or with `per: partition`
    its source partition's); the redrive-of header makes
    the handler take it although it is at or below the object's high-water offset. The
    record's Kafka headers are not in the letter, so the handler sees none. A tombstone
    (its first letter says so; a letter keeps a null value as "") goes back as null."""
    stored = history.latest
    letter = stored.letter
    coordinates = letter.coordinates()
    value: bytes | None = letter.value_bytes()
    if not value and history.letters[0].letter.error.type == TOMBSTONE_ERROR:
        value = None
    timestamp = coordinates.timestamp
    assert binding.batch is not None
    object_key = batch_object_key(
        binding.batch.per, coordinates.topic, coordinates.partition, coordinates.key
    )
    record = WireRecord(
        coordinates.topic,
        coordinates.partition,
        coordinates.offset,
        None if timestamp is None else int(timestamp.timestamp() * 1000),
        coordinates.key,
        value,
    )
    return RedriveRequest(
        history,
        quote(binding.service, safe=""),
        quote(binding.handler, safe=""),
        quote(object_key, safe=""),
        idempotency_key(binding, stored),
        {"content-type": "application/json", REDRIVE_OF_HEADER: stored.at.header()},
        encode_batch([record], json_values=binding.format == "json"),
    )


# --- redrive: running it -----------------------------------------------------------------------

Outcome = Literal["resolved", "failed again", "done", "pending", "error", "skipped"]
SUCCESSFUL: frozenset[str] = frozenset({"resolved", "done"})
_OUTCOMES: tuple[Outcome, ...] = ("resolved", "failed again", "done", "pending", "error", "skipped")


@dataclass
class RedriveResult:
    history: SourceHistory
    outcome: Outcome
    detail: str = ""
    sent: bool = False  # the call reached Restate (its outcome is read back from the topic)
    new_letter: StoredLetter | None = field(default=None, repr=False)

    @property
    def letter(self) -> StoredLetter:
        return self.history.latest


def _reason(exc: HttpError) -> str:
    try:
        body = json.loads(exc.body or "")
        message = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return f"{exc.status_code} {message or (exc.body or exc.message)[:200]}".strip()


async def call_all(
    client: Client,
    ingress_url: str,
    items: Sequence[RedriveRequest | RedriveResult],
    timeout: float,
) -> list[RedriveResult]:
    """Call the handler for every request: one key's in order, one at a time (a letter that
    did not go through holds the key's later ones for the next redrive); keys side by side."""
    results: dict[int, RedriveResult] = {}
    by_key: dict[str | None, list[tuple[int, RedriveRequest]]] = {}
    for index, item in enumerate(items):
        if isinstance(item, RedriveResult):
            results[index] = item
        else:
            by_key.setdefault(item.history.key, []).append((index, item))
    room = asyncio.Semaphore(_CONCURRENT_KEYS)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    refused: list[BaseException] = []

    async def one(request: RedriveRequest) -> RedriveResult:
        try:
            await asyncio.wait_for(
                client.generic_call(
                    request.service,
                    request.handler,
                    request.body,
                    key=request.key,
                    idempotency_key=request.idempotency_key,
                    headers=request.headers,
                ),
                timeout=max(deadline - loop.time(), 0.5),
            )
        except TimeoutError:
            why = "not completed within --timeout (Restate may be retrying it)"
            return RedriveResult(request.history, "pending", why, sent=True)
        except HttpError as exc:
            return RedriveResult(request.history, "error", _reason(exc))
        except httpx.ConnectError as exc:
            refused.append(exc)
            return RedriveResult(request.history, "error", f"connection refused: {exc}")
        except httpx.HTTPError as exc:
            return RedriveResult(request.history, "error", f"{type(exc).__name__}: {exc}")
        return RedriveResult(request.history, "done", sent=True)

    async def key_in_order(requests: list[tuple[int, RedriveRequest]]) -> None:
        async with room:
            held = False
            for index, request in requests:
                if held:
                    why = "an earlier dead letter of this key did not go through; redrive again"
                    results[index] = RedriveResult(request.history, "skipped", why)
                    continue
                results[index] = result = await one(request)
                held = result.outcome != "done"

    await asyncio.gather(*(key_in_order(requests) for requests in by_key.values()))
    if refused and not any(r.sent for r in results.values()):
        raise DlqError(
            f"Restate ingress at {ingress_url} refused the connection ({refused[0]}); nothing "
            "sent. Redrive again once it is up: it is idempotent"
        )
    return [results[i] for i in range(len(items))]


def settle(results: list[RedriveResult], after: Listing) -> list[RedriveResult]:
    """Each call that finished: resolved (a Resolution of its letter) or failed again (a new
    letter redriven from it), read from the dead-letter topic after the calls."""
    by_source = {h.source.coordinates: h for h in after.records}
    for result in results:
        if result.outcome != "done":
            continue
        sent_at = result.letter.at
        now = by_source.get(result.history.source.coordinates)
        if now is None:
            continue
        again = next((s for s in now.letters if s.letter.redrive_of == sent_at), None)
        if again is not None:
            result.outcome, result.new_letter = "failed again", again
            error = again.letter.error
            message = one_line(error.message, MESSAGE_WIDTH)
            result.detail = f"now {again.position}: {error.type}: {message}"
        elif now.resolution is not None and now.latest.at == sent_at:
            result.outcome = "resolved"
        else:
            result.detail = "completed, but no resolution record (is the worker older?)"
    return results


def plan_redrive(
    binding: Binding, listing: Listing, keys: LetterKeys | None = None
) -> list[RedriveRequest | RedriveResult]:
    """For each unresolved source record, in source order (a key's records keep their order),
    the call for its latest letter, or why it cannot be sent; then each refused letter
    (dlq/trust.py) with why, so none goes unreported. `keys` default to the environment's."""
    keys = LetterKeys.from_env() if keys is None else keys
    pending = sorted(listing.unresolved, key=lambda h: h.source.coordinates)
    items: list[RedriveRequest | RedriveResult] = []
    for history in pending:
        try:
            items.append(redrive_request(binding, history, keys))
        except NotRedrivable as exc:
            items.append(RedriveResult(history, "skipped", str(exc)))
    for refused in listing.refused:
        if isinstance(refused, StoredLetter):
            history = SourceHistory(binding.name, [refused])
            items.append(RedriveResult(history, "skipped", f"refused: {refused.distrust}"))
    return items


def run_redrive(
    spec: BindingsFile,
    binding: Binding,
    timeout: float,
    *,
    only: Collection[tuple[str, int, int]] | None = None,
) -> list[RedriveResult]:
    """Redrive the binding's unresolved source records (with `only`, those of them at these
    source coordinates: the dashboard's "redrive one"); the results, settled."""
    assert binding.dead_letter is not None
    entries = read_entries(spec, binding)
    listing = by_source_record(entries, binding.name, binding.dead_letter, binding.topic)
    if only is not None:
        listing.records = [h for h in listing.records if h.source.coordinates in only]
        listing.refused = [r for r in listing.refused if _source_of(r).coordinates in only]
    items = plan_redrive(binding, listing)
    if not items:
        return []
    try:
        before = end_offsets(spec.clusters[binding.cluster].properties, binding.dead_letter)
    except (ConnectionError, TopicNotFoundError) as exc:
        raise DlqError(f"Kafka cluster {binding.cluster}: {exc}") from exc
    ingress = spec.restate.ingress_url

    async def call() -> list[RedriveResult]:
        # The overall deadline is call_all's; this only keeps httpx from cutting calls short.
        limits = httpx.Timeout(10.0, read=timeout + 10.0)
        async with httpx.AsyncClient(base_url=ingress, timeout=limits) as http:
            return await call_all(Client(http), ingress, items, timeout)

    results = asyncio.run(call())
    entries += read_entries(spec, binding, start=before)
    after = by_source_record(entries, binding.name, binding.dead_letter, binding.topic)
    return settle(results, after)


def _source_of(entry: StoredLetter | StoredResolution) -> SourceRecord:
    return entry.resolution.source if isinstance(entry, StoredResolution) else entry.letter.source
