"""The consumer's lean ingress client against a tiny HTTP/1.1 server on loopback: the request
as written, keep-alive reuse, a connection closed while idle, and failures naming the URL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from restate_stream._util.ports import free_ports
from restate_stream.batch.ingress_client import MAX_RESPONSE, IngressClient, IngressSendError

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
