"""What every format is: a Codec, and the errors a codec raises.

DecodeError carries a reason fit for a dead-letter record; EncodeError a reason for the caller.
"""

from __future__ import annotations

from typing import Any, Protocol

from restate_stream.errors import RecordFormatError


class DecodeError(RecordFormatError, ValueError):
    pass


class EncodeError(RecordFormatError, ValueError):
    pass


class Codec(Protocol):
    def decode(self, data: bytes) -> Any: ...

    def encode(self, value: Any) -> bytes: ...
