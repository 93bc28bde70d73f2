"""The worker's CPU per record for per-record consumer delivery's sends, without Restate or
Kafka: records dispatched into the delivery's key lanes and posted through its ingress client,
on uvloop as in the worker, to a stand-in ingress (a separate process answering every POST
with Restate's 202 at once, 100 keys, each key's records one after another as Restate
sees them). Measured: this process's main-thread CPU (time.thread_time: the event loop, the
system calls of its writes and reads included) per record, over passes.

BENCH_ANSWER_DELAY=0.004 holds each answer a random 0-4 ms, so answers arrive one by one (as
Restate's do), each waking the loop, rather than many per loop iteration.

Compare two versions of the code with PYTHONPATH (each run prints its own figure; run them
alternately, several times, and compare the minimum):

    PYTHONPATH=. .venv/bin/python -m benchmarks.record_send_cost [--records 5000] [--passes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import signal
import socket
import textwrap
import time
from pathlib import Path

import uvloop

from connectors.group_consumer import PolledRecord
from restate_stream.batch import BatchDelivery
from restate_stream.batch.ingress_client import IngressClient
from restate_stream.bindings import parse_bindings

_BODY = b'{"invocationId":"inv_1kQKa2W0xMOE5nMchUwUFYjpMQWRqiRvRl","status":"Accepted"}'
ACCEPTED = (
    b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(_BODY)}\r\n\r\n".encode()
    + _BODY
)


DELAY = float(os.environ.get("BENCH_ANSWER_DELAY", "0"))  # seconds, at most, before an answer


class _Ingress(asyncio.Protocol):
    """Answers each request (head and Content-Length body) with 202 as soon as it is read."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            start = head.index(b"content-length:") + len(b"content-length:")
            length = int(head[start : head.find(b"\r\n", start)])
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            assert self.transport is not None
            if DELAY:  # answers spread out, as Restate's come (each its own wake-up)
                asyncio.get_running_loop().call_later(
                    random.uniform(0, DELAY), self.transport.write, ACCEPTED
                )
            else:
                self.transport.write(ACCEPTED)


def _serve(sock: socket.socket) -> None:
    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_Ingress, sock=sock)
        await server.serve_forever()

    uvloop.run(serve())


def _records(records: int, keys: int) -> list[PolledRecord]:
    return [
        PolledRecord(
            "bench", i % 4, i, 1_700_000_000_000, f"key-{i % keys}".encode(), b'{"seq":1}', ()
        )
        for i in range(records)
    ]


async def _pass(url: str, records: list[PolledRecord]) -> float:
    """Main-thread CPU seconds to send `records` through a fresh delivery's lanes."""
    (binding,) = parse_bindings(
        textwrap.dedent("""\
            kafka: {clusters: {local: {bootstrap.servers: "127.0.0.1:9"}}}
            bindings:
              - {name: counter, topic: bench, handler: Counter/count, delivery: consumer}
            """),
        Path("bench.yaml"),
        {},
    ).bindings
    delivery = BatchDelivery(binding, {}, url)
    client = IngressClient(url, connections=delivery.max_concurrent_sends)
    delivery._client = client
    delivery._loop = asyncio.get_running_loop()
    delivery._dispatch(records[:1])  # connections are opened before the span
    while delivery.delivered < 1:
        await asyncio.sleep(0.001)
    start = time.thread_time()
    delivery._dispatch(records[1:])
    while delivery.delivered < len(records):
        await asyncio.sleep(0.005)
    spent = time.thread_time() - start
    await client.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(sock,))
    server.start()
    try:
        records = _records(args.records, args.keys)
        spent = [uvloop.run(_pass(url, records)) for _ in range(args.passes)]
    finally:
        os.kill(server.pid or 0, signal.SIGTERM)
        server.join()
    per_record = sorted(s * 1e6 / (args.records - 1) for s in spent)
    print(
        f"{os.environ.get('PYTHONPATH', '.')}: min {per_record[0]:.1f} µs/record, "
        f"median {per_record[len(per_record) // 2]:.1f} (load {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
