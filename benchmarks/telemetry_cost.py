"""What metrics and tracing cost on the unbatched path: the same bound counter drained through
a Restate subscription by a worker without telemetry (the baseline), with /metrics, with
/metrics plus OpenTelemetry traces of every invocation (spans for it, its decode and handler)
exported over OTLP/HTTP to a local sink, and the same with 10% and 1% of traces sampled.

Each round drains the topic once per candidate (rotating who goes first), each drain on a
fresh local stack: a worker, a subscription into `BenchBoundCounter/count`
(benchmarks/apps.py), the rate as e2e_throughput measures it and the CPU of the worker and of
restate-server per record (steadier than rates on a shared machine); medians and ratios to
the baseline.

    .venv/bin/python -m benchmarks.telemetry_cost [--records 20000] [--keys 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

from benchmarks.common import OtlpSink, group_cpu_seconds, machine, produce_keyed, remove_scratch
from benchmarks.e2e_throughput import batch_bindings, restate_rate
from restate_stream._util.ports import LOOPBACK, free_ports
from restate_stream.control.admin import AdminClient
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack, StackPorts

REPO_ROOT = Path(__file__).resolve().parents[1]
SINK = "service://BenchBoundCounter/count"
CANDIDATES = (
    "no telemetry",
    "metrics",
    "metrics + traces",
    "metrics + 10% traces",
    "metrics + 1% traces",
)


def worker_for(candidate: str, home: Path, bindings: Path, otlp: str) -> WorkerProcess:
    env: dict[str, str] = {}
    if "traces" in candidate:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "OTEL_SERVICE_NAME": "bench-worker"}
    if "%" in candidate:  # head sampling, as high volumes would run it
        ratio = str(float(candidate.split()[2].rstrip("%")) / 100)
        env |= {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": ratio}
    return WorkerProcess(
        "benchmarks.apps:app",
        home / "worker.log",
        cwd=REPO_ROOT,
        bindings=bindings,
        env=env,
        metrics_port=free_ports(1)[0] if candidate != "no telemetry" else None,
    )


@dataclass
class Drain:
    rate: float  # records/s
    worker_cpu: float  # CPU s per 1,000 records: the worker's process group
    total_cpu: float  # the same, worker and restate-server together


async def drain(
    candidate: str, home: Path, otlp: str, records: int, keys: int, partitions: int
) -> Drain:
    """One drain on a stack of its own: a long-lived server gets dearer per invocation as
    its store fills (restate-server's CPU per record rose ~1.7x over 10 drains of 10,000),
    which would favour whoever drains first."""
    with LocalStack(home, StackPorts.free()) as stack:
        topic = "bench-telemetry"
        produce_keyed(stack.bootstrap_servers, topic, records, keys, partitions)
        bindings = home / "bindings.yaml"
        bindings.write_text(batch_bindings(stack, topic, [], 0))  # wraps the bound counter
        async with AdminClient(stack.admin_url) as admin:
            await admin.create_kafka_cluster(
                "bench", {"bootstrap.servers": stack.bootstrap_servers}
            )
            worker = worker_for(candidate, home, bindings, otlp)
            worker.start()
            try:
                assert worker.process is not None and stack.restate.process is not None
                groups = worker.process.pid, stack.restate.process.pid
                await admin.register_deployment(worker.uri, force=True)
                before = [group_cpu_seconds(g) for g in groups]
                rate = await restate_rate(admin, "bench", topic, records, SINK)
                spent = [group_cpu_seconds(g) - before[i] for i, g in enumerate(groups)]
            finally:
                worker.stop()
            counts = await admin.query(
                "SELECT value_utf8 FROM state WHERE service_name = 'BenchBoundCounter'"
            )
    total = sum(int(row["value_utf8"]) for row in counts)
    if total != records:
        raise SystemExit(f"{candidate}: state check failed: {total} increments, expected {records}")
    return Drain(rate, spent[0] * 1000 / records, sum(spent) * 1000 / records)


async def run(
    records: int, keys: int, partitions: int, rounds: int, candidates: tuple[str, ...]
) -> None:
    load_start = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="rs-bench-telemetry-"))
    sink = ThreadingHTTPServer((LOOPBACK, 0), OtlpSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    otlp = f"http://{LOOPBACK}:{sink.server_address[1]}"
    drains: dict[str, list[Drain]] = {c: [] for c in candidates}
    try:
        for r in range(1, rounds + 1):
            shift = (r - 1) % len(candidates)
            for candidate in candidates[shift:] + candidates[:shift]:
                where = home / f"{r}-{candidate.replace(' ', '').replace('%', 'pc')}"
                done = await drain(candidate, where, otlp, records, keys, partitions)
                drains[candidate].append(done)
                print(
                    f"round {r}: {candidate:<20} {done.rate:>8,.0f} records/s, CPU s per 1,000: "
                    f"worker {done.worker_cpu:.2f}, with restate-server {done.total_cpu:.2f} "
                    f"(load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
    finally:
        sink.shutdown()
    print()
    print(machine())
    print(f"records: {records}, keys: {keys}, partitions: {partitions}, rounds: {rounds}")
    print(f"load average at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f} (1 min)")

    def medians(candidate: str) -> Drain:
        done = drains[candidate]
        return Drain(
            statistics.median(d.rate for d in done),
            statistics.median(d.worker_cpu for d in done),
            statistics.median(d.total_cpu for d in done),
        )

    base = medians(candidates[0])
    for candidate in candidates:
        m = medians(candidate)
        print(
            f"{candidate:<20} (median) {m.rate:>8,.0f} records/s = {m.rate / base.rate:.3f} x "
            f"{candidates[0]}; CPU s per 1,000: worker {m.worker_cpu:.2f}, with restate-server "
            f"{m.total_cpu:.2f} = {m.total_cpu / base.total_cpu:.3f} x"
        )
    print(f"OTLP bytes received by the sink: {OtlpSink.received:,}")
    print(f"state check: every drain counted its {records} records exactly")
    remove_scratch(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--candidates",
        default=",".join(CANDIDATES),
        help="comma-separated, the first is the baseline (default: all)",
    )
    args = parser.parse_args()
    candidates = tuple(c.strip() for c in args.candidates.split(","))
    if unknown := set(candidates) - set(CANDIDATES):
        parser.error(f"unknown candidates {sorted(unknown)}; known: {', '.join(CANDIDATES)}")
    asyncio.run(run(args.records, args.keys, args.partitions, args.rounds, candidates))


if __name__ == "__main__":
    main()
