"""Signed dead letters: whoever can write a dead-letter topic could otherwise forge letters.

`dlq redrive` sends a letter's key, value and source coordinates through the handler again,
and a Resolution hides a letter from it; both are read from the dead-letter topic, so anyone
who can produce to that topic chooses what the handler is given and which records count as
done. With a key in RESTATE_STREAM_DLQ_SIGNING_KEY (the same for the worker and for whoever
runs `dlq`), the worker signs every letter and Resolution it writes (HMAC-SHA256 over the
record's kind and its whole JSON, canonically encoded), and `dlq list`/`redrive` refuse
those that are unsigned or whose signature does not match. A redrive call carries a signature
of its own over what it sends (binding, the letter it redrives, body, `kafka.*` headers), and
a worker with the key runs a redrive only with it: the `redrive-of` header, which a batched
binding takes as leave to pass its high-water check, is worth nothing without the key.

Rotation: RESTATE_STREAM_DLQ_SIGNING_KEY_PREVIOUS holds the key before, still accepted when
verifying (letters written before the rotation); new letters are signed with the current key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from restate_stream.errors import ConfigurationError

KEY_ENV = "RESTATE_STREAM_DLQ_SIGNING_KEY"
PREVIOUS_KEY_ENV = "RESTATE_STREAM_DLQ_SIGNING_KEY_PREVIOUS"
SIGNATURE_FIELD = "signature"
REDRIVE_SIGNATURE_HEADER = "restate-stream.redrive-signature"
_VERSION = "hmac-sha256:"
MIN_KEY_LENGTH = 16


class SigningKeyError(ConfigurationError, ValueError):
    pass


def _key(name: str) -> bytes | None:
    text = os.environ.get(name)
    if not text:
        return None
    if len(text) < MIN_KEY_LENGTH:
        # The length only: the key itself is never printed.
        raise SigningKeyError(
            f"${name} is {len(text)} characters long; a dead-letter signing key needs at least "
            f"{MIN_KEY_LENGTH} (for example `openssl rand -hex 32`)"
        )
    return text.encode()


@dataclass(frozen=True, repr=False)  # repr=False: keys never reach a log line
class LetterKeys:
    """The key letters are signed with, and the keys a signature is accepted from."""

    current: bytes | None = None
    previous: bytes | None = None

    @classmethod
    def from_env(cls) -> LetterKeys:
        return cls(_key(KEY_ENV), _key(PREVIOUS_KEY_ENV))

    @property
    def enabled(self) -> bool:
        return self.current is not None

    def _mac(self, key: bytes, message: bytes) -> str:
        return _VERSION + hmac.new(key, message, hashlib.sha256).hexdigest()

    def _sign(self, message: bytes) -> str:
        assert self.current is not None
        return self._mac(self.current, message)

    def _problem(self, message: bytes, signature: Any) -> str | None:
        """None if `signature` is a valid one of `message`, else what is wrong with it."""
        if signature is None:
            return f"unsigned, and signing is on (${KEY_ENV} is set)"
        keys = [k for k in (self.current, self.previous) if k is not None]
        if isinstance(signature, str) and any(
            hmac.compare_digest(self._mac(k, message), signature) for k in keys
        ):
            return None
        return "bad signature: not written with the signing key, or changed since"

    # --- letters and resolutions on the dead-letter topic --------------------------------------

    def signed(self, data: dict[str, Any], kind: str) -> dict[str, Any]:
        """The record's JSON with its signature (unchanged while signing is off)."""
        if not self.enabled:
            return data
        return {**data, SIGNATURE_FIELD: self._sign(_canonical(data, kind))}

    def distrust(self, data: Mapping[str, Any], kind: str) -> str | None:
        """Why a record read back is not to be trusted; None when it is (or signing is off)."""
        if not self.enabled:
            return None
        return self._problem(_canonical(data, kind), data.get(SIGNATURE_FIELD))

    # --- a redrive call ------------------------------------------------------------------------

    def redrive_signature(
        self, binding: str, redrive_of: str, headers: Mapping[str, str], body: bytes
    ) -> str | None:
        if not self.enabled:
            return None
        return self._sign(_redrive_message(binding, redrive_of, headers, body))

    def redrive_distrust(
        self, binding: str, redrive_of: str, headers: Mapping[str, str], body: bytes
    ) -> str | None:
        """Why a redrive invocation is refused; None when its signature holds (or signing is
        off in this worker)."""
        if not self.enabled:
            return None
        message = _redrive_message(binding, redrive_of, headers, body)
        signature = headers.get(REDRIVE_SIGNATURE_HEADER)
        if signature is None:
            return (
                f"the call carries no {REDRIVE_SIGNATURE_HEADER} header, and this worker has "
                f"${KEY_ENV} set: run `dlq redrive` with the same key"
            )
        return self._problem(message, signature)


def _canonical(data: Mapping[str, Any], kind: str) -> bytes:
    fields = {name: value for name, value in data.items() if name != SIGNATURE_FIELD}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{kind}\n{text}".encode()


def _redrive_message(
    binding: str, redrive_of: str, headers: Mapping[str, str], body: bytes
) -> bytes:
    kafka = sorted((n.lower(), v) for n, v in headers.items() if n.lower().startswith("kafka."))
    parts = {
        "binding": binding,
        "redrive_of": redrive_of,
        "kafka_headers": kafka,
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    return b"redrive\n" + json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
