"""Dead letters of a binding: list them, and redrive them through the binding's handler.

Redrive goes through Restate's ingress, not Kafka: `POST {ingress}/{Service}/{key}/{handler}/send`
with the original value bytes and the `kafka.*` headers a subscription would have sent (Restate
forwards ingress request headers as invocation headers, so the bound handler sees the record's
original coordinates), plus an idempotency key naming the dead letter
(`redrive/<binding>/<dlq partition>/<dlq offset>/<failed_at>`): Restate runs each dead letter
at most once however often redrive runs, for as long as it keeps idempotency results (24h by
default), and answers `PreviouslyAccepted` to a repeat. Attaching
to the invocation then waits for the handler. A record that fails again is dead-lettered again
by the handler; it is recognised on the dead-letter topic by its source coordinates and the
missing subscription id (an ingress call has none).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx

from connectors.consume import (
    ConsumedRecord,
    TopicNotFoundError,
    end_offsets,
    read_topic,
)
from restate_stream.bindings import Binding, BindingsFile
from restate_stream.errors import RestateStreamError
from restate_stream.runtime.bound import dead_letter_json

_MESSAGE_WIDTH = 60


class DlqError(RestateStreamError, RuntimeError):
    """A problem with a complete message for people (printed without a traceback)."""


@dataclass(frozen=True)
class DeadLetter:
    topic: str  # the dead-letter topic
    partition: int
    offset: int
    record: dict[str, Any] | None  # None: the Kafka record is not a dead-letter record
    problem: str | None = None

    @property
    def position(self) -> str:
        return f"dlq[{self.partition}]@{self.offset}"

    @property
    def binding(self) -> str | None:
        return None if self.record is None else self.record.get("binding")

    @property
    def key(self) -> str | None:
        return None if self.record is None else self.record.get("key")

    @property
    def source(self) -> dict[str, Any]:
        source = (self.record or {}).get("source")
        return source if isinstance(source, dict) else {}

    @property
    def source_coordinates(self) -> tuple[str, int, int]:
        s = self.source
        return (str(s.get("topic", "")), int(s.get("partition", -1)), int(s.get("offset", -1)))

    @property
    def from_redrive(self) -> bool:
        """Dead-lettered by a redriven invocation: an ingress call carries no subscription id."""
        return self.record is not None and self.source.get("subscription_id") is None

    def value_bytes(self) -> bytes:
        record = self.record or {}
        if record.get("value") is not None:
            return str(record["value"]).encode("utf-8")
        return base64.b64decode(record.get("value_base64") or "")

    def to_json(self) -> dict[str, Any]:
        where = {"dlq": {"topic": self.topic, "partition": self.partition, "offset": self.offset}}
        if self.record is None:
            return {**where, "problem": self.problem}
        return {**where, **self.record}


def parse_dead_letter(record: ConsumedRecord) -> DeadLetter:
    try:
        parsed = dead_letter_json(record.value or b"")
        if not isinstance(parsed.get("source"), dict) or "error" not in parsed:
            raise ValueError("no source or error field")
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        problem = f"not a restate-stream dead-letter record: {exc}"
        return DeadLetter(record.topic, record.partition, record.offset, None, problem)
    return DeadLetter(record.topic, record.partition, record.offset, parsed)


def _one_line(text: Any, width: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def find_binding(spec: BindingsFile, name: str) -> Binding:
    for binding in spec.bindings:
        if binding.name == name:
            if binding.dead_letter is None:
                raise DlqError(f"{spec.path}: binding {name} sets no dead_letter topic")
            return binding
    names = ", ".join(b.name for b in spec.bindings) or "none"
    raise DlqError(f"{spec.path}: no binding named {name!r} (bindings: {names})")


def of_binding(letters: Iterable[DeadLetter], name: str) -> tuple[list[DeadLetter], int]:
    """The binding's dead letters (and unreadable records); how many belong to other bindings,
    which may share the topic."""
    mine, others = [], 0
    for letter in letters:
        if letter.record is None or letter.binding == name:
            mine.append(letter)
        else:
            others += 1
    return mine, others


# --- redrive: the request ---------------------------------------------------------------------


class NotRedrivable(RestateStreamError, ValueError):
    pass


@dataclass(frozen=True)
class RedriveRequest:
    letter: DeadLetter
    url: str
    headers: dict[str, str]
    body: bytes


def idempotency_key(binding: Binding, letter: DeadLetter) -> str:
    # failed_at tells apart letters at the same offset of a recreated dead-letter topic.
    failed_at = (letter.record or {}).get("failed_at", "")
    return f"redrive/{binding.name}/{letter.partition}/{letter.offset}/{failed_at}"


def _millis(iso: str | None) -> str | None:
    if not iso:
        return None
    try:
        return str(round(datetime.fromisoformat(iso).timestamp() * 1000))
    except ValueError:
        return None


def redrive_request(binding: Binding, ingress_url: str, letter: DeadLetter) -> RedriveRequest:
    """The ingress call that hands `letter` to the binding's handler as its subscription would."""
    if letter.record is None:
        raise NotRedrivable(letter.problem or "not a dead-letter record")
    key = letter.key
    service, handler = quote(binding.service, safe=""), quote(binding.handler, safe="")
    if binding.keyed:
        if key is None:
            raise NotRedrivable("the record has no key, and the handler is keyed")
        target = f"{service}/{quote(key, safe='')}/{handler}"
    else:
        target = f"{service}/{handler}"
    topic, partition, offset = letter.source_coordinates
    headers = {
        "content-type": "application/octet-stream",
        "idempotency-key": idempotency_key(binding, letter),
        "kafka.topic": topic,
        "kafka.partition": str(partition),
        "kafka.offset": str(offset),
        # Not read by the framework; tells the handler (and its logs) where the record came from.
        "restate-stream.redrive-of": f"{letter.topic}/{letter.partition}/{letter.offset}",
    }
    if (millis := _millis(letter.source.get("timestamp"))) is not None:
        headers["kafka.timestamp"] = millis
    if key is not None:
        headers["kafka.key"] = base64.b64encode(key.encode("utf-8")).decode()
    url = f"{ingress_url.rstrip('/')}/{target}/send"
    return RedriveRequest(letter, url, headers, letter.value_bytes())


# --- redrive: running it ----------------------------------------------------------------------

Outcome = Literal["ok", "failed again", "already redriven", "pending", "error", "skipped"]
SUCCESSFUL: frozenset[str] = frozenset({"ok", "already redriven"})


@dataclass
class RedriveResult:
    letter: DeadLetter
    outcome: Outcome
    detail: str = ""
    invocation_id: str | None = None
    # For "already redriven": the dead letter that earlier redrive left, if it failed again.
    earlier_failure: DeadLetter | None = field(default=None, repr=False)


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
        message = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return f"{response.status_code} {message or response.text[:200]}".strip()


async def send_all(
    http: httpx.AsyncClient,
    ingress_url: str,
    requests: list[RedriveRequest | RedriveResult],
    timeout: float,
) -> list[RedriveResult]:
    """Send in dead-letter order (one key's letters keep their order), then wait for each."""
    results: list[RedriveResult] = []
    # A key whose letter could not be sent: its later letters wait for the next redrive, so
    # they cannot overtake it.
    held: set[str | None] = set()
    for item in requests:
        if isinstance(item, RedriveResult):
            results.append(item)
            continue
        key = item.letter.key
        if key in held:
            why = "an earlier dead letter of this key was not sent; redrive again"
            results.append(RedriveResult(item.letter, "skipped", why))
            continue
        try:
            response = await http.post(item.url, content=item.body, headers=item.headers)
        except httpx.ConnectError as exc:
            sent = sum(r.invocation_id is not None for r in results)
            raise DlqError(
                f"Restate ingress at {ingress_url} refused the connection ({exc}); "
                f"{sent} of {len(requests)} sent. Redrive again once it is up: it is idempotent"
            ) from exc
        except httpx.HTTPError as exc:
            held.add(key)
            results.append(RedriveResult(item.letter, "error", f"{type(exc).__name__}: {exc}"))
            continue
        if not response.is_success:
            held.add(key)
            results.append(RedriveResult(item.letter, "error", _reason(response)))
            continue
        body = response.json()
        already = body.get("status") == "PreviouslyAccepted"
        outcome: Outcome = "already redriven" if already else "ok"
        results.append(RedriveResult(item.letter, outcome, invocation_id=body["invocationId"]))
    deadline = time.monotonic() + timeout
    for result in results:
        if result.invocation_id is None:
            continue
        url = f"{ingress_url.rstrip('/')}/restate/invocation/{result.invocation_id}/attach"
        try:
            wait = max(deadline - time.monotonic(), 0.5)
            response = await http.get(url, timeout=wait)
        except httpx.TimeoutException:
            result.outcome = "pending"
            result.detail = "not completed within --timeout (Restate may be retrying it)"
            continue
        except httpx.HTTPError as exc:
            result.outcome, result.detail = "error", f"{type(exc).__name__}: {exc}"
            continue
        if response.status_code != 200:
            result.outcome, result.detail = "error", f"the invocation failed: {_reason(response)}"
    return results


def settle(
    results: list[RedriveResult], every: list[DeadLetter], new: list[DeadLetter]
) -> list[RedriveResult]:
    """Mark redriven records that were dead-lettered again (found among `new` letters), and
    point already-redriven ones at the letter their earlier redrive left (among `every`)."""
    unclaimed = [n for n in new if n.from_redrive]
    for result in results:
        if result.outcome != "ok":
            continue
        coordinates = result.letter.source_coordinates
        again = next((n for n in unclaimed if n.source_coordinates == coordinates), None)
        if again is not None:
            unclaimed.remove(again)
            error = (again.record or {}).get("error") or {}
            result.outcome = "failed again"
            result.detail = (
                f"now {again.position}: {error.get('type')}: "
                f"{_one_line(error.get('message', ''), _MESSAGE_WIDTH)}"
            )
    for result in results:
        if result.outcome != "already redriven":
            continue
        letter = result.letter
        result.earlier_failure = next(
            (
                e
                for e in every
                if e.from_redrive
                and e.source_coordinates == letter.source_coordinates
                and e.binding == letter.binding
                and (e.partition, e.offset) > (letter.partition, letter.offset)
            ),
            None,
        )
        if result.earlier_failure is not None:
            result.detail = f"it failed again then: now {result.earlier_failure.position}"
    return results


# --- the commands -----------------------------------------------------------------------------


def _kafka(spec: BindingsFile, binding: Binding) -> dict[str, str]:
    return spec.clusters[binding.cluster].properties


def read_letters(
    spec: BindingsFile,
    binding: Binding,
    *,
    start: Mapping[int, int] | None = None,
    limit: int | None = None,
    timeout: float = 30.0,
) -> list[DeadLetter]:
    assert binding.dead_letter is not None  # find_binding checked
    try:
        records = read_topic(
            _kafka(spec, binding), binding.dead_letter, start=start, limit=limit, timeout=timeout
        )
    except TopicNotFoundError as exc:
        raise DlqError(
            f"the dead-letter topic {binding.dead_letter!r} of binding {binding.name} does not "
            f"exist on Kafka cluster {binding.cluster} (apply creates it)"
        ) from exc
    except (ConnectionError, TimeoutError) as exc:
        raise DlqError(f"Kafka cluster {binding.cluster}: {exc}") from exc
    return [parse_dead_letter(r) for r in records]


@dataclass(frozen=True)
class Listing:
    """A binding's dead letters (and unreadable records of its topic), oldest first."""

    binding: Binding
    letters: list[DeadLetter]
    others: int  # records of other bindings sharing the dead-letter topic


def list_dead_letters(spec: BindingsFile, name: str, *, limit: int | None) -> Listing:
    binding = find_binding(spec, name)
    letters, others = of_binding(read_letters(spec, binding, limit=limit), name)
    return Listing(binding, letters, others)


@dataclass(frozen=True)
class RedriveReport:
    binding: Binding
    ingress_url: str
    # What was (or, in a dry run, would be) sent; a RedriveResult for a letter not sendable.
    items: list[RedriveRequest | RedriveResult]
    results: list[RedriveResult] | None  # None for a dry run

    @property
    def ok(self) -> bool:
        """Every dead letter is now handled (ok or already redriven); a dry run is ok."""
        return self.results is None or all(r.outcome in SUCCESSFUL for r in self.results)


def redrive(
    spec: BindingsFile,
    name: str,
    *,
    dry_run: bool,
    timeout: float,
    progress: Callable[[str], None] | None = None,
) -> RedriveReport:
    binding = find_binding(spec, name)
    letters, _ = of_binding(read_letters(spec, binding), name)
    ingress = spec.restate.ingress_url
    items: list[RedriveRequest | RedriveResult] = []
    for letter in letters:
        try:
            items.append(redrive_request(binding, ingress, letter))
        except NotRedrivable as exc:
            items.append(RedriveResult(letter, "skipped", str(exc)))
    if dry_run:
        return RedriveReport(binding, ingress, items, None)
    assert binding.dead_letter is not None
    try:
        before = end_offsets(_kafka(spec, binding), binding.dead_letter)
    except (ConnectionError, TopicNotFoundError) as exc:
        raise DlqError(f"Kafka cluster {binding.cluster}: {exc}") from exc
    if progress is not None:
        progress(f"redriving {len(items)} dead letter(s) of {name} through {ingress}")

    async def send() -> list[RedriveResult]:
        async with httpx.AsyncClient(timeout=30.0) as http:
            return await send_all(http, ingress, items, timeout)

    results = asyncio.run(send())
    new, _ = of_binding(read_letters(spec, binding, start=before), name)
    return RedriveReport(binding, ingress, items, settle(results, letters, new))
