"""A lean HTTP/1.1 keep-alive client for the consumer's ingress sends.

One send is one small POST whose answer (202 and a short JSON body) is all that is read. A
general client's per-request machinery (aiohttp: request and response objects, tracing
hooks, cookie jar, connector bookkeeping) cost the worker more CPU per record than the send
itself (py-spy, e2e_throughput --per-record-only); here a request is one buffer written on a
kept-alive connection and the answer is parsed from its header block and Content-Length.
Restate's ingress (hyper) keeps HTTP/1.1 connections alive.

Bounded: an answer's header block and body are each at most MAX_RESPONSE bytes; connecting
takes at most `timeout` seconds, and so does the answer once the request was written.
Failures raise IngressSendError naming the URL; a kept-alive connection the server closed
while idle is retried once on a fresh one before anything was read from it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from restate_stream.errors import WorkerError

MAX_RESPONSE = 64 * 1024


class IngressSendError(WorkerError):
    """A send got no HTTP answer (connection refused or lost, timeout, malformed answer);
    the delivery logs it and sends again."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _StaleConnection(Exception):
    """A reused connection closed before its answer began: safe to retry on a fresh one."""


class _Connection(asyncio.Protocol):
    """One kept-alive connection, one request at a time: the answer is parsed as its bytes
    arrive and handed to the waiting post through one future (a protocol rather than asyncio
    streams: a StreamReader's readuntil and readexactly, and a timeout context per request,
    were much of the client's CPU per send)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = True
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        # The answer's status, and where its body ends in `_buffer`, once its header block was
        # parsed (once per answer, however many chunks its body arrives in).
        self._status = 0
        self._body_start = self._body_end = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport instances, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def exchange(self, request: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None and self._waiter is None
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.abort()  # bytes nobody asked for: this connection's framing is lost
            return
        if self._body_end < 0 and not self._read_head():
            return
        buffer, body_end = self._buffer, self._body_end
        if len(buffer) < body_end:
            return
        if len(buffer) > body_end:
            self.keep_alive = False  # more than one answer: not to be reused
        answer = Answer(self._status, bytes(buffer[self._body_start : body_end]))
        buffer.clear()
        self._body_end = -1
        self._waiter = None
        waiter.set_result(answer)

    def _read_head(self) -> bool:
        """Reads the header block if it is all there (True); fails the request if it is bad."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_RESPONSE:
                self._fail(ValueError(f"an answer's header block over {MAX_RESPONSE} bytes"))
            return False
        try:
            self._status, length, self.keep_alive = _parse_head(bytes(self._buffer[: end + 4]))
        except ValueError as exc:
            self._fail(exc)
            return False
        self._body_start = end + 4
        self._body_end = end + 4 + length
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            if not self._buffer:
                waiter.set_exception(_StaleConnection())
            else:
                waiter.set_exception(ConnectionError("closed in the middle of the answer"))

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    def expire(self, timeout: float) -> None:
        """The request's time is up: it fails, and the connection with it."""
        self._fail(TimeoutError(timeout))

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class IngressClient:
    def __init__(self, base_url: str, *, connections: int, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"ingress URL {base_url!r}: expected http://host[:port][/path]")
        self.base_url = base_url.rstrip("/")
        self._host = parts.hostname
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._port = parts.port or (443 if self._tls else 80)
        self._prefix = parts.path
        host = parts.netloc.rsplit("@", 1)[-1]  # never a user:password in the Host header
        self._head = f"Host: {host}\r\n".encode("latin-1")
        self._idle: list[_Connection] = []
        self._max_idle = connections
        self.timeout = timeout

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """POST `body` to `{base_url}/{path}`; the answer, whatever its status."""
        url = f"{self.base_url}/{path}"
        try:
            request = self._request(path, body, headers)
            while self._idle:
                connection = self._idle.pop()
                if connection.closed:
                    continue
                try:
                    return await self._exchange(connection, request)
                except _StaleConnection:
                    continue
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self.timeout):
                _, connection = await loop.create_connection(
                    _Connection, self._host, self._port, ssl=self._tls
                )
            try:
                return await self._exchange(connection, request)
            except _StaleConnection:
                raise ConnectionError("closed before the answer began") from None
        except TimeoutError:
            raise IngressSendError(f"POST {url}: no answer within {self.timeout:g}s") from None
        except ValueError as exc:  # a request that cannot be written, an answer not read
            raise IngressSendError(f"POST {url}: {exc}") from None
        except OSError as exc:
            raise IngressSendError(f"POST {url}: {type(exc).__name__}: {exc}") from exc

    def _request(self, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        lines = [f"POST {self._prefix}/{path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}\r\n")
        return b"".join((lines[0].encode(), self._head, "".join(lines[1:]).encode(), b"\r\n", body))

    async def _exchange(self, connection: _Connection, request: bytes) -> Answer:
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(self.timeout, connection.expire, self.timeout)
        try:
            answer = await connection.exchange(request)
        except BaseException:
            connection.abort()
            raise
        finally:
            deadline.cancel()
        if connection.keep_alive and len(self._idle) < self._max_idle:
            self._idle.append(connection)
        else:
            connection.abort()
        return answer

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            if connection.transport is not None:
                connection.transport.close()


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, Content-Length, keep-alive) of an answer's header block (ending in a blank
    line). On bytes, finding the few fields read rather than splitting every line: this runs
    once per send."""
    if len(head) > MAX_RESPONSE:
        raise ValueError(f"an answer's header block of {len(head)} bytes")
    if not head.startswith(b"HTTP/1.") or head[8:9] != b" " or not head[9:12].isdigit():
        status_line = head.partition(b"\r\n")[0].decode("latin-1")
        raise ValueError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
    fields = head.lower()
    if (encoding := _field(fields, b"transfer-encoding")) is not None:
        raise ValueError(f"a {encoding.decode('latin-1')} answer (only Content-Length is read)")
    length_field = _field(fields, b"content-length") or b"0"
    if not length_field.isdigit():
        raise ValueError(f"an answer's Content-Length {length_field.decode('latin-1')!r}")
    length = int(length_field)
    if length > MAX_RESPONSE:
        raise ValueError(f"an answer of {length} bytes (at most {MAX_RESPONSE} are read)")
    connection = _field(fields, b"connection")
    keep_alive = head[5:8] == b"1.1" if connection is None else connection == b"keep-alive"
    return int(head[9:12]), length, keep_alive


def _field(fields: bytes, name: bytes) -> bytes | None:
    """The value of the last `name` line of a lowercased header block, stripped, or None."""
    start = fields.rfind(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    return fields[start : fields.find(b"\r\n", start)].strip()
