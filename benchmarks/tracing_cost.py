"""What metrics and traces add to the CPU one record costs the worker, without the engines'
noise: records handed to the bound counter through the in-memory kit (the production
wrapper: decoding, outcome events, spans), in a fresh process per candidate (the tracer
provider is global), process CPU time per record.

Candidates: no telemetry (the baseline), metrics (prometheus-client multiprocess files),
traces of every record exported over OTLP/HTTP to a local sink, the same with 10% and 1%
head sampling, and every record with spans made but not exported (no span processor: the
SDK's own cost). The span queue holds every span and is flushed inside the measurement, so
the export's encoding is counted, not dropped. Rounds rotate who goes first; medians.

    .venv/bin/python -m benchmarks.tracing_cost [--records 5000] [--rounds 5]

The end-to-end counterpart (rates through Restate): benchmarks.telemetry_cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from benchmarks.common import OtlpSink, machine

CANDIDATES = (
    "no telemetry",
    "metrics",
    "spans, not exported",
    "traces, every record",
    "traces, 10% sampled",
    "traces, 1% sampled",
)
BINDINGS = """\
kafka: {clusters: {local: {bootstrap.servers: "127.0.0.1:9"}}}
topics: {counts: {cluster: local}}
bindings:
  - {name: counts, topic: counts, handler: BenchBoundCounter/count}
"""


def _set_up(candidate: str, endpoint: str, records: int) -> None:
    if candidate == "metrics":
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="rs-bench-metrics-")
        from restate_stream.telemetry.metrics import install_metrics

        install_metrics()
    if "traces" not in candidate and "spans" not in candidate:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    ratio = {"traces, 10% sampled": 0.1, "traces, 1% sampled": 0.01}.get(candidate, 1.0)
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    if "traces" in candidate:
        exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")
        # Room for every span: a full queue drops spans, which would hide their export cost.
        provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=records * 5))
    trace.set_tracer_provider(provider)


def measure(candidate: str, endpoint: str, records: int) -> float:
    """Runs in its own process: µs of process CPU per record for `candidate`."""
    _set_up(candidate, endpoint, records)
    from opentelemetry import trace

    from benchmarks.apps import bound_counter
    from restate_stream.testing import BindingsKit

    path = Path(tempfile.mkdtemp(prefix="rs-bench-tracing-")) / "bindings.yaml"
    path.write_text(BINDINGS)
    kit = BindingsKit.load(path, [bound_counter])

    async def deliver(first: int, count: int) -> None:
        for i in range(first, first + count):
            await kit.deliver("counts", {"seq": i}, key=f"key-{i % 100}")

    asyncio.run(deliver(0, 500))  # warm-up: imports, first spans
    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", lambda: True)
    flush()
    started = time.process_time()
    asyncio.run(deliver(500, records))
    flush()
    spent = time.process_time() - started
    count = sum(kit.state("BenchBoundCounter", f"key-{k}").get("count", 0) for k in range(100))
    if count != records + 500:
        raise SystemExit(f"{candidate}: {count} increments, expected {records + 500}")
    return spent / records * 1e6


def run(records: int, rounds: int) -> None:
    sink = ThreadingHTTPServer(("127.0.0.1", 0), OtlpSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}"
    load_start = os.getloadavg()[0]
    costs: dict[str, list[float]] = {c: [] for c in CANDIDATES}
    try:
        for r in range(rounds):
            shift = r % len(CANDIDATES)
            for candidate in CANDIDATES[shift:] + CANDIDATES[:shift]:
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.tracing_cost", "--one", candidate,
                     "--endpoint", endpoint, "--records", str(records)],
                    check=True, capture_output=True, text=True,
                ).stdout  # fmt: skip
                costs[candidate].append(float(out.strip().splitlines()[-1]))
                print(f"round {r + 1}: {candidate:<22} {costs[candidate][-1]:7.1f} µs/record")
    finally:
        sink.shutdown()
    print()
    print(machine())
    print(f"records: {records} per candidate and round, rounds: {rounds}")
    print(f"load average at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f} (1 min)")
    base = statistics.median(costs["no telemetry"])
    for candidate in CANDIDATES:
        median = statistics.median(costs[candidate])
        print(
            f"{candidate:<22} (median) {median:7.1f} µs/record = {median / base:.2f}x; "
            f"added {median - base:+7.1f} µs"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--one", choices=CANDIDATES, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(measure(args.one, args.endpoint, args.records))
    else:
        run(args.records, args.rounds)


if __name__ == "__main__":
    main()
