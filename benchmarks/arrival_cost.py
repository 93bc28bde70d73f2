"""restate-server CPU per invocation by how sends arrive: the same sends posted in bursts
(every key's at once, as the minimal bridge posts a poll's) or spread out (one every
`--spread` seconds, as completions release a paced delivery's), for restate-stream's batch
body and handler (BenchBatchCounter) and the minimal bridge's (MinimalBridgeCounter).

Issue 24: e2e_throughput's batched rows cost restate-server about twice the bridge's CPU per
1,000 records. The journals of one invocation of each are alike (Input, two GetEagerState,
two SetState, Output); this separates what arrives from how it arrives. Rounds alternate
the kinds; ratios from paired rounds count (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from benchmarks.common import group_cpu_seconds, remove_scratch
from benchmarks.e2e_throughput import REPO_ROOT, BenchBindings, Variant, counted
from benchmarks.minimal_bridge import SERVICE as BRIDGE_SERVICE
from restate_stream.batch.wire import WireRecord, encode_batch
from restate_stream.control.admin import AdminClient
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack, StackPorts

OURS_SERVICE = "BenchBatchCounter"


def values(first: int, count: int) -> list[bytes]:
    return [json.dumps({"seq": first + i}).encode() for i in range(count)]


def ours_body(key: str, first: int, count: int) -> bytes:
    records = [
        WireRecord("bench", 0, first + i, 1_796_597_056_916, key.encode(), value)
        for i, value in enumerate(values(first, count))
    ]
    return encode_batch(records, json_values=True)


def bridge_body(first: int, count: int) -> bytes:
    items = (
        b'{"p":0,"o":%d,"v":%s}' % (first + i, value)
        for i, value in enumerate(values(first, count))
    )
    return b"[" + b",".join(items) + b"]"


def sends(kind: str, tag: str, keys: int, waves: int, per: int) -> list[tuple[str, bytes]]:
    """(path, body) of every send, wave by wave: each wave one send per key."""
    out = []
    for wave in range(waves):
        for k in range(keys):
            key, first = f"{tag}key-{k}", wave * per
            if kind == "ours":
                out.append((f"{OURS_SERVICE}/{key}/count_0/send", ours_body(key, first, per)))
            else:
                out.append((f"{BRIDGE_SERVICE}/{key}/count/send", bridge_body(first, per)))
    return out


async def post_all(
    http: aiohttp.ClientSession,
    url: str,
    requests: list[tuple[str, bytes]],
    keys: int,
    spread: float,
) -> None:
    async def post(path: str, body: bytes) -> None:
        headers = {"content-type": "application/json", "idempotency-key": uuid.uuid4().hex}
        async with http.post(f"{url}/{path}", data=body, headers=headers) as response:
            response.raise_for_status()

    if spread <= 0:
        for wave in range(0, len(requests), keys):
            await asyncio.gather(*(post(p, b) for p, b in requests[wave : wave + keys]))
        return
    tasks = []
    for path, body in requests:
        tasks.append(asyncio.create_task(post(path, body)))
        await asyncio.sleep(spread)
    await asyncio.gather(*tasks)


async def run(keys: int, waves: int, per: int, rounds: int, spreads: list[float]) -> None:
    home = Path(tempfile.mkdtemp(prefix="rs-bench-"))
    with LocalStack(home, StackPorts.free()) as stack:
        bindings = BenchBindings(home / "bindings.yaml", stack, "bench", [Variant(per)], 1)
        bindings.write()  # makes the worker wrap BenchBatchCounter/count_0
        worker = WorkerProcess(
            "benchmarks.apps:app", home / "worker.log", cwd=REPO_ROOT, bindings=bindings.path
        )
        worker.start()
        assert stack.restate.process is not None
        restate = stack.restate.process.pid
        try:
            async with AdminClient(stack.admin_url) as admin, aiohttp.ClientSession() as http:
                await admin.register_deployment(worker.uri)
                for r in range(rounds):
                    kinds = ["ours", "bridge"] if r % 2 == 0 else ["bridge", "ours"]
                    for spread in spreads:
                        for kind in kinds:
                            service = OURS_SERVICE if kind == "ours" else BRIDGE_SERVICE
                            tag = f"{r}-{spread}-"
                            requests = sends(kind, tag, keys, waves, per)
                            before = await counted(admin, service)
                            cpu, start = group_cpu_seconds(restate), time.perf_counter()
                            await post_all(http, stack.ingress_url, requests, keys, spread)
                            while await counted(admin, service) - before < len(requests) * per:
                                await asyncio.sleep(0.2)
                            cpu = group_cpu_seconds(restate) - cpu
                            print(
                                f"round {r}: {kind:<6} spread {spread * 1000:4.0f} ms: "
                                f"{1000 * cpu / len(requests):.2f} ms restate-server CPU per "
                                f"invocation ({len(requests)} sends of {len(requests[0][1]):,} B,"
                                f" {time.perf_counter() - start:.2f} s; "
                                f"load {os.getloadavg()[0]:.2f})",
                                flush=True,
                            )
        finally:
            worker.stop()
    remove_scratch(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--waves", type=int, default=3, help="sends per key")
    parser.add_argument("--records-per-send", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--spreads", default="0,0.008", help="comma-separated seconds between sends; 0: bursts"
    )
    args = parser.parse_args()
    spreads = [float(s) for s in args.spreads.split(",")]
    asyncio.run(run(args.keys, args.waves, args.records_per_send, args.rounds, spreads))


if __name__ == "__main__":
    main()
