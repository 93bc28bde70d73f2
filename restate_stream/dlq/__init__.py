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

Records `dlq` does not trust (dlq/trust.py: a source topic not the binding's, key fields that
disagree, a Resolution of another record, and with a signing key anything unsigned or signed
with another key) take no part in this: `dlq list` flags them, `dlq redrive` reports each as
skipped with why, and none resolves a letter.

`dlq list` shows one entry per source record with its history (letters, attempts, latest
cause and failed_at). `dlq redrive` sends, for each unresolved source record, its latest
letter only: earlier letters are superseded, so redriving again never multiplies letters.

The letter goes through Restate's ingress with the SDK's client (`Client.generic_call`: the
original value bytes to `Service/key/handler`), with the `kafka.*` headers its subscription
would have sent (`KafkaCoordinates.to_headers`, so the handler sees the record's original
coordinates), the `restate-stream.redrive-of` header naming the letter, and an idempotency key
naming the letter (`redrive/<binding>/<dlq partition>/<dlq offset>/<failed_at>`): Restate runs
each letter at most once within the handler's idempotency retention (bind sets 1 day), and a
repeated call attaches to the first instead. The call returns once the handler has finished;
the outcome is then read from the dead-letter topic (a Resolution: resolved; a letter redriven
from it: failed again). The letters of one key are called one after another in source order,
keys side by side. The client is built around our own httpx client rather than with
`restate.create_client`, which keeps httpx's 5-second default timeout while a redriven handler
may retry for longer; the object key is escaped here, as the SDK puts it in the path as is.
"""

from restate_stream.dlq.listing import (
    DlqError,
    Entry,
    Listing,
    SourceHistory,
    StoredLetter,
    StoredResolution,
    Unreadable,
    by_source_record,
    find_binding,
    load_listing,
    parse_entry,
    read_entries,
)
from restate_stream.dlq.redrive import (
    SUCCESSFUL,
    NotRedrivable,
    Outcome,
    RedriveRequest,
    RedriveResult,
    call_all,
    idempotency_key,
    plan_redrive,
    redrive_request,
    run_redrive,
    settle,
)

__all__ = [
    "SUCCESSFUL",
    "DlqError",
    "Entry",
    "Listing",
    "NotRedrivable",
    "Outcome",
    "RedriveRequest",
    "RedriveResult",
    "SourceHistory",
    "StoredLetter",
    "StoredResolution",
    "Unreadable",
    "by_source_record",
    "call_all",
    "find_binding",
    "idempotency_key",
    "load_listing",
    "parse_entry",
    "plan_redrive",
    "read_entries",
    "redrive_request",
    "run_redrive",
    "settle",
]
