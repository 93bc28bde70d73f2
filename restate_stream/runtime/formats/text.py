"""The plain formats: raw bytes and UTF-8 text."""

from __future__ import annotations

from typing import Any

from restate_stream.runtime.formats.base import DecodeError, EncodeError


class BytesCodec:
    def decode(self, data: bytes) -> bytes:
        return data

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, bytes | bytearray):
            raise EncodeError(f"format bytes: expected bytes, got {type(value).__name__}")
        return bytes(value)


class StringCodec:
    def decode(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"not UTF-8 text: {exc}") from exc

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise EncodeError(f"format string: expected str, got {type(value).__name__}")
        return value.encode("utf-8")
