"""What metrics and tracing cost on the unbatched path: the same bound counter drained through
a Restate subscription by a worker without telemetry (the baseline), with /metrics, with
/metrics plus OpenTelemetry traces of every invocation (spans for it, its decode and handler)
exported over OTLP/HTTP to a local sink, and the same with 10% and 1% of traces sampled.

One fresh local stack; each round starts a worker per candidate (rotating who goes first),
registers it (the newest deployment takes the invocations), drains the topic through a new
subscription into `BenchBoundCounter/count` (benchmarks/apps.py) and stops it. Rates as
e2e_throughput measures them; medians and ratios to the baseline.

    .venv/bin/python -m benchmarks.telemetry_cost [--records 20000] [--keys 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks.common import group_cpu_seconds, machine, produce_keyed
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


class _OtlpSink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and counts their bytes: a collector that keeps nothing."""

    received = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        _OtlpSink.received += len(self.rfile.read(length))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def worker_for(candidate: str, home: Path, bindings: Path, otlp: str, r: int) -> WorkerProcess:
    env: dict[str, str] = {}
    if "traces" in candidate:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "OTEL_SERVICE_NAME": "bench-worker"}
    if "%" in candidate:  # head sampling, as high volumes would run it
        ratio = str(float(candidate.split()[2].rstrip("%")) / 100)
        env |= {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": ratio}
    return WorkerProcess(
        "benchmarks.apps:app",
        home / f"worker-{candidate.replace(' ', '')}-{r}.log",
        cwd=REPO_ROOT,
        bindings=bindings,
        env=env,
        metrics_port=free_ports(1)[0] if candidate != "no telemetry" else None,
    )


async def run(records: int, keys: int, partitions: int, rounds: int) -> None:
    load_start = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="rs-bench-telemetry-"))
    sink = ThreadingHTTPServer((LOOPBACK, 0), _OtlpSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    otlp = f"http://{LOOPBACK}:{sink.server_address[1]}"
    rates: dict[str, list[float]] = {c: [] for c in CANDIDATES}
    worker_cpu: dict[str, list[float]] = {c: [] for c in CANDIDATES}
    total_cpu: dict[str, list[float]] = {c: [] for c in CANDIDATES}  # worker + restate-server
    try:
        with LocalStack(home, StackPorts.free()) as stack:
            topic = "bench-telemetry"
            produce_keyed(stack.bootstrap_servers, topic, records, keys, partitions)
            bindings = home / "bindings.yaml"
            bindings.write_text(batch_bindings(stack, topic, [], 0))  # wraps the bound counter
            async with AdminClient(stack.admin_url) as admin:
                await admin.create_kafka_cluster(
                    "bench", {"bootstrap.servers": stack.bootstrap_servers}
                )
                for r in range(1, rounds + 1):
                    shift = (r - 1) % len(CANDIDATES)
                    for candidate in CANDIDATES[shift:] + CANDIDATES[:shift]:
                        worker = worker_for(candidate, home, bindings, otlp, r)
                        worker.start()
                        try:
                            assert worker.process is not None and stack.restate.process
                            groups = worker.process.pid, stack.restate.process.pid
                            await admin.register_deployment(worker.uri, force=True)
                            before = [group_cpu_seconds(g) for g in groups]
                            rate = await restate_rate(admin, "bench", topic, records, SINK)
                            spent = [group_cpu_seconds(g) - before[i] for i, g in enumerate(groups)]
                        finally:
                            worker.stop()
                        rates[candidate].append(rate)
                        worker_cpu[candidate].append(spent[0] * 1000 / records)
                        total_cpu[candidate].append(sum(spent) * 1000 / records)
                        print(
                            f"round {r}: {candidate:<20} {rate:>8,.0f} records/s, worker CPU s "
                            f"per 1,000: {worker_cpu[candidate][-1]:.2f}, with restate-server "
                            f"{total_cpu[candidate][-1]:.2f} "
                            f"(load {os.getloadavg()[0]:.2f})",
                            flush=True,
                        )
                counts = await admin.query(
                    "SELECT value_utf8 FROM state WHERE service_name = 'BenchBoundCounter'"
                )
    finally:
        sink.shutdown()
    total = sum(int(row["value_utf8"]) for row in counts)
    print()
    print(machine())
    print(f"records: {records}, keys: {keys}, partitions: {partitions}, rounds: {rounds}")
    print(f"load average at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f} (1 min)")
    base = statistics.median(rates["no telemetry"])
    base_cpu = statistics.median(total_cpu["no telemetry"])
    for candidate in CANDIDATES:
        median = statistics.median(rates[candidate])
        cpu = statistics.median(total_cpu[candidate])
        print(
            f"{candidate:<20} (median) {median:>8,.0f} records/s = {median / base:.3f} x no "
            f"telemetry; CPU s per 1,000, worker: {statistics.median(worker_cpu[candidate]):.2f}, "
            f"with restate-server: {cpu:.2f} = {cpu / base_cpu:.3f} x"
        )
    print(f"OTLP bytes received by the sink: {_OtlpSink.received:,}")
    expected = records * rounds * len(CANDIDATES)
    if total != expected:
        raise SystemExit(f"state check failed: {total} increments, expected {expected}")
    drains = rounds * len(CANDIDATES)
    print(f"state check: {total} increments = {records} records x {drains} drains")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.records, args.keys, args.partitions, args.rounds))


if __name__ == "__main__":
    main()
