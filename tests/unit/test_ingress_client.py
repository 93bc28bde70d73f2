"""The consumer's lean ingress client against a tiny HTTP/1.1 server on loopback: the request
as written, keep-alive reuse, a connection closed while idle, and failures naming the URL."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from restate_stream._util.ports import free_ports
from restate_stream.batch import ingress_client
from restate_stream.batch.ingress_client import (
    MAX_RESPONSE,
    Answer,
    IngressClient,
    IngressSendError,
    _Connection,
    _parse_head,
)

ACCEPTED = b'HTTP/1.1 202 Accepted\r\ncontent-length: 21\r\n\r\n{"status":"Accepted"}'

Answerer = Callable[[int, bytes], bytes | None]  # (request number, request) -> answer; None: close


@asynccontextmanager
async def server(answer: Answerer) -> AsyncIterator[tuple[str, list[bytes], list[int]]]:
    """(base URL, requests received, connection number of each request)."""
    received: list[bytes] = []
    connections: list[int] = []
    opened = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal opened
        opened += 1
        this = opened
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                received.append(head + await reader.readexactly(length))
                connections.append(this)
                reply = answer(len(received), received[-1])
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the client closed the connection
        finally:
            writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    async with srv:
        yield f"http://127.0.0.1:{port}/prefix", received, connections


async def test_a_send_is_one_post_and_the_connection_is_kept_alive() -> None:
    async with server(lambda n, r: ACCEPTED) as (url, received, connections):
        client = IngressClient(url, connections=2)
        for _ in range(3):
            answer = await client.post("S/k%2F1/h/send", b"body", {"kafka.offset": "7"})
            assert (answer.status, answer.text()) == (202, '{"status":"Accepted"}')
        await client.close()
    head, _, body = received[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /prefix/S/k%2F1/h/send HTTP/1.1"
    assert {"Content-Length: 4", f"Host: {url.split('/')[2]}", "kafka.offset: 7"} <= set(lines)
    assert body == b"body"
    assert connections == [1, 1, 1], "a new connection per send"


async def test_an_answer_arriving_in_pieces_is_read_whole() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            await reader.readuntil(b"\r\n\r\n")
            for i in range(len(ACCEPTED)):  # a byte at a time: header block and body split
                writer.write(ACCEPTED[i : i + 1])
                await writer.drain()
        writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with srv:
        client = IngressClient(f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}", connections=1)
        for _ in range(2):  # the second on the same connection: nothing of the first is left
            answer = await client.post("a", b"", {})
            assert (answer.status, answer.text()) == (202, '{"status":"Accepted"}')
        await client.close()


async def test_a_connection_closed_while_idle_is_replaced_without_an_error() -> None:
    # The server answers the first request, then closes when the second arrives (as an idle
    # timeout would): the client sends it again on a fresh connection.
    async with server(lambda n, r: None if n == 2 else ACCEPTED) as (url, received, connections):
        client = IngressClient(url, connections=1)
        assert (await client.post("a", b"1", {})).status == 202
        assert (await client.post("a", b"2", {})).status == 202
        await client.close()
    assert connections == [1, 1, 2]
    assert [r.rpartition(b"\r\n\r\n")[2] for r in received] == [b"1", b"2", b"2"]


async def test_a_refusal_is_an_answer_and_failures_name_the_url() -> None:
    refused = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy"
    async with server(lambda n, r: refused) as (url, _, _):
        client = IngressClient(url, connections=1)
        answer = await client.post("a", b"", {})
        assert (answer.status, answer.text()) == (503, "busy")
        with pytest.raises(IngressSendError, match=f"POST {url}/a: header 'x' holds a line"):
            await client.post("a", b"", {"x": "1\r\nevil: 1"})
        await client.close()
    huge = f"HTTP/1.1 200 OK\r\ncontent-length: {MAX_RESPONSE + 1}\r\n\r\n".encode()
    async with server(lambda n, r: huge) as (url, _, _):
        with pytest.raises(IngressSendError, match=f"POST {url}/a: an answer of 65537 bytes"):
            await IngressClient(url, connections=1).post("a", b"", {})
    async with server(lambda n, r: b"") as (url, _, _):  # never answers
        with pytest.raises(IngressSendError, match=f"POST {url}/a: no answer within 0.2s"):
            await IngressClient(url, connections=1, timeout=0.2).post("a", b"", {})
    (port,) = free_ports(1)
    with pytest.raises(IngressSendError, match=f"POST http://127.0.0.1:{port}/a: .*Connect"):
        await IngressClient(f"http://127.0.0.1:{port}", connections=1).post("a", b"", {})


def test_the_client_runs_on_uvloop_as_in_the_worker() -> None:
    """The worker's loop is uvloop, whose transports are not asyncio.Transport instances."""
    import uvloop

    async def two_sends() -> list[int]:
        async with server(lambda n, r: ACCEPTED) as (url, _, connections):
            client = IngressClient(url, connections=1)
            for _ in range(2):
                assert (await client.post("a", b"", {})).status == 202
            await client.close()
        return connections

    assert uvloop.run(two_sends()) == [1, 1]


# --- the answer's parser, fed chunk by chunk ----------------------------------------------


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True


def _connection() -> tuple[_Connection, _Transport]:
    connection, transport = _Connection(), _Transport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    return connection, transport


async def test_an_answer_split_anywhere_is_parsed_once_and_the_next_one_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    heads: list[bytes] = []

    def counting(head: bytes) -> tuple[int, int, bool]:
        heads.append(head)
        return _parse_head(head)

    monkeypatch.setattr(ingress_client, "_parse_head", counting)
    connection, transport = _connection()
    # The blank line ending the header block split between chunks, the body in three.
    first = connection.exchange(b"request 1")
    for chunk in (ACCEPTED[:40], ACCEPTED[40:44], ACCEPTED[44:50], ACCEPTED[50:60], ACCEPTED[60:]):
        assert not first.done()
        connection.data_received(chunk)
    assert first.result() == Answer(202, b'{"status":"Accepted"}')
    assert len(heads) == 1, "the header block is parsed once, not once per chunk"
    # The next answer on the connection: another status and length, nothing of the first kept.
    refused = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
    second = connection.exchange(b"request 2")
    connection.data_received(refused[:-2])
    assert not second.done()
    connection.data_received(refused[-2:])
    assert second.result() == Answer(503, b"busy")
    assert connection.keep_alive and not transport.aborted
    assert transport.written == [b"request 1", b"request 2"]


async def test_bytes_past_the_answer_or_unasked_for_end_the_connection() -> None:
    connection, transport = _connection()
    answer = connection.exchange(b"request")
    connection.data_received(ACCEPTED + ACCEPTED[:10])  # a second answer nobody asked for
    assert answer.result().status == 202
    assert not connection.keep_alive, "its framing is lost: not to be reused"
    connection, transport = _connection()
    connection.data_received(ACCEPTED)
    assert transport.aborted and connection.closed


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ("HTTP/1.1 202 Accepted\r\ncontent-length: 21\r\n\r\n", (202, 21, True)),
        ("HTTP/1.1 200 OK\r\nContent-Type: x\r\nCONTENT-LENGTH:  7 \r\n\r\n", (200, 7, True)),
        ("HTTP/1.1 204 No Content\r\n\r\n", (204, 0, True)),
        ("HTTP/1.1 202 Accepted\r\nconnection: close\r\n\r\n", (202, 0, False)),
        ("HTTP/1.0 202 Accepted\r\ncontent-length: 2\r\n\r\n", (202, 2, False)),
        ("HTTP/1.0 202 Accepted\r\nConnection: Keep-Alive\r\n\r\n", (202, 0, True)),
        # A field whose value names another field is not that field.
        ("HTTP/1.1 202 Accepted\r\nx-note: content-length: 9\r\ncontent-length: 1\r\n\r\n",
         (202, 1, True)),
    ],
)  # fmt: skip
def test_the_header_block_gives_status_length_and_keep_alive(
    head: str, expected: tuple[int, int, bool]
) -> None:
    assert _parse_head(head.encode()) == expected


@pytest.mark.parametrize(
    ("head", "problem"),
    [
        ("HTTP/2 200\r\n\r\n", "not an HTTP/1.x answer: 'HTTP/2 200'"),
        ("HTTP/1.1 2x2 Odd\r\n\r\n", "not an HTTP/1.x answer: 'HTTP/1.1 2x2 Odd'"),
        ("SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x answer"),
        ("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", "a chunked answer"),
        ("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", "Content-Length '-1'"),
        ("HTTP/1.1 200 OK\r\ncontent-length: ten\r\n\r\n", "Content-Length 'ten'"),
        (f"HTTP/1.1 200 OK\r\ncontent-length: {MAX_RESPONSE + 1}\r\n\r\n", "an answer of 65537"),
    ],
)
def test_a_header_block_not_read_says_why(head: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        _parse_head(head.encode())
