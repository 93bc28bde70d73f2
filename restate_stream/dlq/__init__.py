"""Dead letters of a binding, one entry per source record: list them, and redrive them.

A source record (the topic/partition/offset the binding read) may have several dead letters:
the one its subscription wrote, and one more for each redrive that failed again. The
dead-letter topic alone tells the story (runtime/dead_letter.py): a letter written by a
redriven invocation names the letter it was redriven from (`redrive_of`), and a redriven
invocation that went through the handler without a new letter writes a Resolution naming
that letter. So, per source record:

- its history is its letters in order of `failed_at` (ties: dead-letter topic position);
- it is resolved when its latest letter has a Resolution. A later letter (the record failed
  again, or was consumed again) makes it unresolved again.

`dlq list` shows one entry per source record with its history (letters, attempts, latest
cause and failed_at). `dlq redrive` sends, for each unresolved source record, its latest
letter only: earlier letters are superseded, so redriving again never multiplies letters.

The letter goes through Restate's ingress with the SDK's client (`Client.generic_call`: the
original value bytes to `Service/key/handler`), with the `kafka.*` headers its subscription
would have sent (`KafkaCoordinates.to_headers`, so the handler sees the record's original
coordinates), the `restate-stream.redrive-of` header naming the letter, and an idempotency key
naming the letter (`redrive/<binding>/<dlq partition>/<dlq offset>/<failed_at>`): Restate runs
each letter at most once within the handler's idempotency retention (bind sets 30 days), and a
repeated call attaches to the first instead. The call returns once the handler has finished;
the outcome is then read from the dead-letter topic (a Resolution: resolved; a letter redriven
from it: failed again). The letters of one key are called one after another in source order,
keys side by side. The client is built around our own httpx client rather than with
`restate.create_client`, which keeps httpx's 5-second default timeout while a redriven handler
may retry for longer; the object key is escaped here, as the SDK puts it in the path as is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx
from restate.client import Client
from restate.client_types import HttpError

from connectors.consume import (
    ConsumedRecord,
    TopicNotFoundError,
    end_offsets,
    read_topic,
)
from restate_stream.bindings import Binding, BindingsFile
from restate_stream.errors import RestateStreamError
from restate_stream.runtime.dead_letter import (
    REDRIVE_OF_HEADER,
    DeadLetter,
    LetterRef,
    NotADeadLetterError,
    Resolution,
    SourceRecord,
    parse_record,
)

_MESSAGE_WIDTH = 60
_CONCURRENT_KEYS = 32


class DlqError(RestateStreamError, RuntimeError):
    """A problem with a complete message for people (printed without a traceback)."""


# --- the records of a dead-letter topic --------------------------------------------------------


@dataclass(frozen=True)
class StoredLetter:
    at: LetterRef  # where on the dead-letter topic
    letter: DeadLetter

    @property
    def position(self) -> str:
        return f"dlq[{self.at.partition}]@{self.at.offset}"

    def to_json(self) -> dict[str, Any]:
        return {"dlq": self.at.model_dump(), **self.letter.to_json()}


@dataclass(frozen=True)
class StoredResolution:
    at: LetterRef
    resolution: Resolution


@dataclass(frozen=True)
class Unreadable:
    at: LetterRef
    problem: str

    @property
    def position(self) -> str:
        return f"dlq[{self.at.partition}]@{self.at.offset}"


Entry = StoredLetter | StoredResolution | Unreadable


def parse_entry(record: ConsumedRecord) -> Entry:
    at = LetterRef(topic=record.topic, partition=record.partition, offset=record.offset)
    try:
        parsed = parse_record(record.value or b"")
    except NotADeadLetterError as exc:
        return Unreadable(at, f"not a restate-stream dead-letter record: {exc}")
    if isinstance(parsed, Resolution):
        return StoredResolution(at, parsed)
    return StoredLetter(at, parsed)


# --- one entry per source record ---------------------------------------------------------------


@dataclass
class SourceHistory:
    """A source record's dead letters, oldest first, and the Resolution of the latest one."""

    binding: str
    letters: list[StoredLetter]
    resolution: StoredResolution | None = None

    @property
    def latest(self) -> StoredLetter:
        return self.letters[-1]

    @property
    def source(self) -> SourceRecord:
        return self.letters[0].letter.source

    @property
    def key(self) -> str | None:
        return self.latest.letter.key

    @property
    def resolved(self) -> bool:
        return self.resolution is not None

    @property
    def attempts(self) -> int:
        return sum(s.letter.attempts for s in self.letters)

    def to_json(self) -> dict[str, Any]:
        latest = self.latest.letter
        return {
            "binding": self.binding,
            "source": self.source.model_dump(mode="json"),
            "key": self.key,
            "resolved": self.resolved,
            "letter_count": len(self.letters),
            "attempts": self.attempts,
            "latest": {
                "dlq": self.latest.at.model_dump(),
                "error": latest.error.model_dump(),
                "failed_at": latest.failed_at.isoformat(),
            },
            "history": [s.to_json() for s in self.letters],
        }


@dataclass
class Listing:
    binding: str
    topic: str
    records: list[SourceHistory]
    unreadable: list[Unreadable] = field(default_factory=list)
    others: int = 0  # records of other bindings sharing the topic

    @property
    def unresolved(self) -> list[SourceHistory]:
        return [r for r in self.records if not r.resolved]

    @property
    def letter_count(self) -> int:
        return sum(len(r.letters) for r in self.records)


def by_source_record(entries: Iterable[Entry], binding: str, topic: str = "") -> Listing:
    """The binding's dead letters per source record (in order of their first letter)."""
    histories: dict[tuple[str, int, int], SourceHistory] = {}
    resolutions: dict[LetterRef, StoredResolution] = {}
    unreadable: list[Unreadable] = []
    others = 0
    for entry in entries:
        if isinstance(entry, Unreadable):
            unreadable.append(entry)
        elif isinstance(entry, StoredResolution):
            if entry.resolution.binding == binding:
                resolutions[entry.resolution.redrive_of] = entry
            else:
                others += 1
        elif entry.letter.binding != binding:
            others += 1
        else:
            coordinates = entry.letter.source.coordinates
            histories.setdefault(coordinates, SourceHistory(binding, [])).letters.append(entry)
    for history in histories.values():
        history.letters.sort(key=lambda s: (s.letter.failed_at, s.at.partition, s.at.offset))
        history.resolution = resolutions.get(history.latest.at)
    records = sorted(histories.values(), key=lambda h: h.letters[0].letter.failed_at)
    return Listing(binding, topic, records, unreadable, others)


# --- reading -----------------------------------------------------------------------------------


def find_binding(spec: BindingsFile, name: str) -> Binding:
    for binding in spec.bindings:
        if binding.name == name:
            if binding.dead_letter is None:
                raise DlqError(f"{spec.path}: binding {name} sets no dead_letter topic")
            return binding
    names = ", ".join(b.name for b in spec.bindings) or "none"
    raise DlqError(f"{spec.path}: no binding named {name!r} (bindings: {names})")


def read_entries(
    spec: BindingsFile,
    binding: Binding,
    *,
    start: Mapping[int, int] | None = None,
    limit: int | None = None,
    timeout: float = 30.0,
) -> list[Entry]:
    assert binding.dead_letter is not None  # find_binding checked
    properties = spec.clusters[binding.cluster].properties
    try:
        records = read_topic(
            properties, binding.dead_letter, start=start, limit=limit, timeout=timeout
        )
    except TopicNotFoundError as exc:
        raise DlqError(
            f"the dead-letter topic {binding.dead_letter!r} of binding {binding.name} does not "
            f"exist on Kafka cluster {binding.cluster} (apply creates it)"
        ) from exc
    except (ConnectionError, TimeoutError) as exc:
        raise DlqError(f"Kafka cluster {binding.cluster}: {exc}") from exc
    return [parse_entry(r) for r in records]


def load_listing(spec: BindingsFile, binding: Binding, *, limit: int | None = None) -> Listing:
    assert binding.dead_letter is not None
    return by_source_record(
        read_entries(spec, binding, limit=limit), binding.name, binding.dead_letter
    )


# --- rendering (for the command line) ----------------------------------------------------------


def _one_line(text: Any, width: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _key(key: str | None) -> str:
    return "key=-" if key is None else f"key={json.dumps(key, ensure_ascii=False)}"


def render_history(history: SourceHistory) -> str:
    latest = history.latest.letter
    return "  ".join(
        [
            history.source.describe(),
            _key(history.key),
            f"letters={len(history.letters)}",
            f"attempts={history.attempts}",
            latest.error.type,
            json.dumps(_one_line(latest.error.message, _MESSAGE_WIDTH), ensure_ascii=False),
            latest.failed_at.isoformat(),
            f"latest={history.latest.position}",
            "resolved" if history.resolved else "unresolved",
        ]
    )


def render_listing(listing: Listing) -> str:
    lines = [render_history(h) for h in listing.records]
    lines += [f"{u.position:>12}  ({u.problem})" for u in listing.unreadable]
    unresolved = len(listing.unresolved)
    note = f"; {listing.others} of other bindings not shown" if listing.others else ""
    lines.append(
        f"{len(listing.records)} source record(s) with dead letters of binding "
        f"{listing.binding} on {listing.topic}: {unresolved} unresolved, "
        f"{len(listing.records) - unresolved} resolved ({listing.letter_count} letter(s){note})"
    )
    return "\n".join(lines)


# --- redrive: the call -------------------------------------------------------------------------


class NotRedrivable(RestateStreamError, ValueError):
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


def redrive_request(binding: Binding, history: SourceHistory) -> RedriveRequest:
    """The call that hands the record's latest letter to the handler as its subscription did."""
    stored = history.latest
    letter = stored.letter
    if binding.keyed and letter.key is None:
        raise NotRedrivable("the record has no key, and the handler is keyed")
    # An ingress call has no subscription id; the redrive-of header names the letter.
    coordinates = dataclasses.replace(letter.coordinates(), subscription_id=None)
    headers = {
        "content-type": "application/octet-stream",
        **coordinates.to_headers(),
        REDRIVE_OF_HEADER: stored.at.header(),
    }
    return RedriveRequest(
        history,
        quote(binding.service, safe=""),
        quote(binding.handler, safe=""),
        quote(letter.key, safe="") if binding.keyed and letter.key is not None else None,
        idempotency_key(binding, stored),
        headers,
        letter.value_bytes(),
    )


def render_request(request: RedriveRequest, ingress_url: str) -> str:
    body = request.body.decode("utf-8", "replace")
    url = f"{ingress_url.rstrip('/')}/{request.path}"
    lines = [f"{request.letter.position:>12}  POST {url}"]
    indent = " " * 14
    lines.append(f"{indent}idempotency-key: {request.idempotency_key}")
    lines += [f"{indent}{name}: {value}" for name, value in request.headers.items()]
    lines.append(f"{indent}body ({len(request.body)} bytes): {_one_line(body, 100)}")
    return "\n".join(lines)


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
            message = _one_line(error.message, _MESSAGE_WIDTH)
            result.detail = f"now {again.position}: {error.type}: {message}"
        elif now.resolution is not None and now.latest.at == sent_at:
            result.outcome = "resolved"
        else:
            result.detail = "completed, but no resolution record (is the worker older?)"
    return results


def render_result(result: RedriveResult) -> str:
    where = f"{result.letter.position:>12}  {result.history.source.describe()}"
    detail = f": {result.detail}" if result.detail else ""
    return f"{where}  {_key(result.history.key)}  {result.outcome}{detail}"


def summary(binding: Binding, results: list[RedriveResult]) -> str:
    counts = {o: sum(r.outcome == o for r in results) for o in _OUTCOMES}
    shown = ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n)
    return f"redrive {binding.name}: {len(results)} source record(s): {shown or 'nothing to do'}"


def plan_redrive(binding: Binding, listing: Listing) -> list[RedriveRequest | RedriveResult]:
    """For each unresolved source record, in source order (a key's records keep their order),
    the call for its latest letter, or why it cannot be sent."""
    pending = sorted(listing.unresolved, key=lambda h: h.source.coordinates)
    items: list[RedriveRequest | RedriveResult] = []
    for history in pending:
        try:
            items.append(redrive_request(binding, history))
        except NotRedrivable as exc:
            items.append(RedriveResult(history, "skipped", str(exc)))
    return items


def run_redrive(spec: BindingsFile, binding: Binding, timeout: float) -> list[RedriveResult]:
    """Redrive the binding's unresolved source records; the results, settled."""
    assert binding.dead_letter is not None
    entries = read_entries(spec, binding)
    items = plan_redrive(binding, by_source_record(entries, binding.name, binding.dead_letter))
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
    return settle(results, by_source_record(entries, binding.name, binding.dead_letter))


# --- the commands ------------------------------------------------------------------------------


def list_dead_letters(spec: BindingsFile, name: str, *, limit: int | None, as_json: bool) -> int:
    binding = find_binding(spec, name)
    listing = load_listing(spec, binding, limit=limit)
    if as_json:
        shown = [h.to_json() for h in listing.records]
        shown += [{"dlq": u.at.model_dump(), "problem": u.problem} for u in listing.unreadable]
        print(json.dumps(shown, indent=2, ensure_ascii=False))
        return 0
    print(render_listing(listing))
    return 0


def redrive(spec: BindingsFile, name: str, *, dry_run: bool, timeout: float) -> int:
    """Exit status 0 when every unresolved source record is now resolved."""
    binding = find_binding(spec, name)
    ingress = spec.restate.ingress_url
    if dry_run:
        assert binding.dead_letter is not None
        items = plan_redrive(binding, load_listing(spec, binding))
        for item in items:
            if isinstance(item, RedriveRequest):
                print(render_request(item, ingress))
            else:
                print(f"{item.letter.position:>12}  skipped: {item.detail}")
        sendable = sum(isinstance(i, RedriveRequest) for i in items)
        print(f"dry run: {sendable} of {len(items)} unresolved source record(s) would be sent")
        return 0
    print(f"redriving the unresolved dead letters of {name} through {ingress}", file=sys.stderr)
    results = run_redrive(spec, binding, timeout)
    for result in results:
        print(render_result(result))
    print(summary(binding, results))
    return 0 if all(r.outcome in SUCCESSFUL for r in results) else 1
