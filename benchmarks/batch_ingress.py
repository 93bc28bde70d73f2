"""Micro-benchmark: N one-way sends with batch bodies straight to Restate ingress.

Isolates Restate's ingress + the object-side batch handler from the Kafka consumer:
records/s until every send is accepted (202) and until every record is counted in state,
with and without idempotency keys, HTTP/1.1 or h2, at a given send concurrency.

    .venv/bin/python -m benchmarks.batch_ingress [--sends 2000] [--records-per-send 50]
        [--keys 100] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from benchmarks.common import group_cpu_seconds, remove_scratch
from benchmarks.e2e_throughput import REPO_ROOT, Variant, batch_bindings, counted
from restate_stream.batch.wire import WireRecord, encode_batch
from restate_stream.control.admin import AdminClient
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack, StackPorts

PIDS: dict[str, int] = {}


async def one_run(
    ingress: str,
    admin: AdminClient,
    handler: str,
    sends: int,
    per_send: int,
    keys: int,
    concurrency: int,
    idem: bool,
    http2: bool,
) -> tuple[float, float, float]:
    before = await counted(admin, "BenchBatchCounter")
    cpu0 = {name: group_cpu_seconds(pid) for name, pid in PIDS.items()}
    self0 = time.process_time()
    bodies: list[tuple[str, bytes, dict[str, str]]] = []
    offset = 0
    for i in range(sends):
        key = f"key-{i % keys}"
        recs = [
            WireRecord(
                f"t{handler}",
                i % keys,
                offset + j,
                0,
                key.encode(),
                json.dumps({"seq": j}).encode(),
            )
            for j in range(per_send)
        ]
        offset += per_send
        headers = {"content-type": "application/json"}
        if idem:
            headers["idempotency-key"] = uuid.uuid4().hex
        bodies.append((f"/BenchBatchCounter/{key}/{handler}/send", encode_batch(recs), headers))
    # Per-key FIFO (as the delivery does): a key's sends go one after another, keys in
    # parallel up to `concurrency`; out-of-order sends would be dropped by the high-water.
    per_key: dict[str, list[tuple[str, bytes, dict[str, str]]]] = {}
    for url, body, headers in bodies:
        per_key.setdefault(url, []).append((url, body, headers))
    latencies: list[float] = []
    slots = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=ingress, limits=limits, http2=http2, http1=not http2, timeout=60
    ) as client:

        async def chain(items: list[tuple[str, bytes, dict[str, str]]]) -> None:
            for url, body, headers in items:
                async with slots:
                    t = time.perf_counter()
                    r = await client.post(url, content=body, headers=headers)
                    latencies.append(time.perf_counter() - t)
                assert r.status_code in (200, 202), r.text

        start = time.perf_counter()
        await asyncio.gather(*(chain(items) for items in per_key.values()))
        accepted = time.perf_counter() - start
    total = sends * per_send
    while (await counted(admin, "BenchBatchCounter")) - before < total:
        await asyncio.sleep(0.1)
    done = time.perf_counter() - start
    latencies.sort()
    cpu = {name: group_cpu_seconds(pid) - cpu0[name] for name, pid in PIDS.items()}
    cpu["client"] = time.process_time() - self0
    print("    cpu s: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()), flush=True)
    return accepted, done, latencies[len(latencies) // 2]


async def run(sends: int, per_send: int, keys: int, concurrency: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="rs-bench-ingress-"))
    with LocalStack(home, StackPorts.free()) as stack:
        bindings_path = home / "bindings.yaml"
        bindings_path.write_text(batch_bindings(stack, "unused", [Variant(1)], 16))
        worker = WorkerProcess(
            "benchmarks.apps:app", home / "worker.log", cwd=REPO_ROOT, bindings=bindings_path
        )
        worker.start()
        try:
            async with AdminClient(stack.admin_url) as admin:
                await admin.register_deployment(worker.uri)
                assert stack.restate.process is not None and worker.process is not None
                PIDS["restate"] = stack.restate.process.pid
                PIDS["worker"] = worker.process.pid
                print(
                    f"worker pid {worker.process.pid if hasattr(worker.process, 'pid') else '?'}",
                    flush=True,
                )
                for n, (idem, http2, conc) in enumerate(
                    [
                        (True, False, 64),
                        (True, False, 16),
                        (True, True, 16),
                        (False, True, 16),
                        (True, False, 4),
                    ]
                ):
                    acc, done, p50 = await one_run(
                        stack.ingress_url,
                        admin,
                        f"count_{n}",
                        sends,
                        per_send,
                        keys,
                        conc,
                        idem,
                        http2,
                    )
                    total = sends * per_send
                    print(
                        f"idem={idem!s:5} h2={http2!s:5} conc={conc:3}: all 202 in {acc:6.2f}s "
                        f"({sends / acc:7.0f} sends/s, p50 {p50 * 1000:6.1f} ms), counted in "
                        f"{done:6.2f}s = {total / done:8.0f} records/s",
                        flush=True,
                    )
        finally:
            worker.stop()
    remove_scratch(home)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sends", type=int, default=2000)
    p.add_argument("--records-per-send", type=int, default=50)
    p.add_argument("--keys", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=64)
    a = p.parse_args()
    asyncio.run(run(a.sends, a.records_per_send, a.keys, a.concurrency))


if __name__ == "__main__":
    main()
