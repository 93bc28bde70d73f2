"""restate-server's memory and disk under sustained per-record consumer delivery.

A binding with `delivery: consumer` sends each record through Restate's ingress: to an
exclusive object handler (the default target here, `--target object`) without an idempotency
key, since the object's high-water drops a re-sent record; to a target without a high-water
(`--target shared`: a shared handler; services and unkeyed bindings alike) with one
(`rs-record/<group>/<topic>/<partition>/<offset>`). Either way Restate 1.7 keeps each completed
invocation for the handler's idempotency retention (the bound handler's 1 day unless the
binding sets `idempotency_retention:`; printed as "completed invocation ... for") and its
journal for its journal retention. This soak shows what that costs restate-server and whether
expiry bounds it:

1. a warm-up probe: --probe-records records delivered as fast as they go, for the peak rate
   (records applied, counted in the counters' state; for `shared`, invocations completed);
2. for --minutes, a producer paced at --rate records/s (default: half the peak) while the
   worker's consumer delivers (as in production); every --sample-seconds: the records
   delivered (the group's committed offsets: records Restate accepted), restate-server's
   resident memory (its process group) and disk (du of its base dir: allocated blocks, which
   include the logs RocksDB preallocates, and the files' apparent sizes, "data", which grow as
   they fill);
3. the table, growth per 100k records (whole soak, first and second half), and how many
   completed invocations of the target Restate still keeps at the end.

Restate's cleaner drops expired entries every `worker.cleanup-interval` (1 hour by default):
`--retention 2m --cleanup-interval 30s` shows expiry within a short soak.
Everything (Kafka, restate-server, the worker) runs on a fresh local stack on free loopback
ports and is stopped, process groups and all, at the end, on Ctrl-C and on SIGTERM.

    .venv/bin/python -m benchmarks.idempotency_soak [--minutes 10] [--target object|shared]
        [--rate N] [--keys 100] [--retention 2m] [--cleanup-interval 30s]
        [--sample-seconds 30] [--probe-records 3000] [--restate-env RESTATE_NAME=VALUE ...]

--restate-env sets a restate-server setting on top of the local stack's (which caps RocksDB
at 512 MiB and trims the log with no delay: restate_stream/stack/restate.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.common import (
    disk_bytes,
    group_rss_bytes,
    machine,
    produce_keyed,
    remove_scratch,
    replace_file,
)
from benchmarks.e2e_throughput import applied_rate, completed_rate, counted
from benchmarks.sampling import MIB, Sample, growth_lines, records_due, soak_table
from connectors import Record, TopicAdmin, produce_records
from restate_stream._util.poll import apoll
from restate_stream.batch.sends import RECORD_IDEMPOTENCY_PREFIX
from restate_stream.bindings import Binding, load_bindings
from restate_stream.control.admin import AdminClient, sql_literal
from restate_stream.runtime.worker import WorkerProcess
from restate_stream.stack import LocalStack, StackPorts

REPO_ROOT = Path(__file__).resolve().parents[1]
TOPIC = "bench-soak"
SERVICE = "BenchConsumerCounter"
HANDLERS = {"object": "count_0", "shared": "look"}  # --target: keeps a high-water or not
PARTITIONS = 4
DEFAULT_CLEANUP = "1h (Restate's default)"
DRAIN_TIMEOUT = 120.0  # seconds for the records still in flight when producing stops


def soak_bindings(stack: LocalStack, handler: str, retention: str | None, *, paused: bool) -> str:
    retained = f", idempotency_retention: {retention}" if retention else ""
    return (
        f'restate: {{admin_url: "{stack.admin_url}", ingress_url: "{stack.ingress_url}"}}\n'
        f'kafka: {{clusters: {{bench: {{bootstrap.servers: "{stack.bootstrap_servers}"}}}}}}\n'
        "bindings:\n"
        f"  - {{name: soak, topic: {TOPIC}, handler: {SERVICE}/{handler}, delivery: consumer,"
        f" paused: {str(paused).lower()}{retained}}}\n"
    )


async def retention_applied(admin: AdminClient, handler_name: str) -> str:
    """The idempotency retention Restate has for the soak's handler (from discovery)."""
    for service in await admin.list_services():
        if service.get("name") == SERVICE:
            for handler in service.get("handlers", []):
                if handler.get("name") == handler_name:
                    return str(handler.get("idempotency_retention", "not reported"))
    return "not reported"


class PacedProducer:
    """Produces keyed records at `rate` per second in a daemon thread until `stop()`; records
    continue the probe's sequence (keys key-<seq mod keys>)."""

    def __init__(self, bootstrap: str, rate: float, keys: int, first_seq: int) -> None:
        self.bootstrap, self.rate, self.keys, self.first_seq = bootstrap, rate, keys, first_seq
        self.produced = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paced-producer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=70)  # produce_records flushes for up to 60 s

    def _records(self) -> Iterator[Record]:
        began = time.monotonic()
        while not self._stop.is_set():
            due = records_due(time.monotonic() - began, self.rate)
            while self.produced < due:
                seq = self.first_seq + self.produced
                yield Record(f"key-{seq % self.keys}", json.dumps({"seq": seq}))
                self.produced += 1
            time.sleep(0.05)

    def _run(self) -> None:
        try:
            produce_records(self.bootstrap, TOPIC, self._records())
        except BaseException as exc:  # reported by the sampling loop
            self.error = exc


def stores_data(restate_dir: Path) -> str:
    """The data of restate-server's stores apart: the partition store ("db": state, kept
    invocations) and the log ("log-store": what trimming reclaims)."""
    parts = []
    for store in ("db", "log-store"):
        _, data = disk_bytes(next(restate_dir.glob(f"*/{store}"), restate_dir / store))
        parts.append(f"{store} {data / MIB:,.1f}")
    return ", ".join(parts)


def restate_setting(text: str) -> tuple[str, str]:
    """--restate-env NAME=VALUE: a restate-server setting as its RESTATE_* variable."""
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("RESTATE_"):
        raise argparse.ArgumentTypeError(
            f"expected RESTATE_<SETTING>=<value> (e.g. RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE=512MiB), "
            f"got {text!r}"
        )
    return name, value


def committed_total(kafka: TopicAdmin, binding: Binding) -> int:
    """Records of the topic the binding's group has committed: Restate accepted them."""
    offsets = kafka.committed_offsets(binding.consumer_group, TOPIC, PARTITIONS)
    return sum(max(0, offset) for offset in offsets.values())


async def run(args: argparse.Namespace) -> None:
    load_start = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="rs-bench-soak-"))
    stack = LocalStack(home, StackPorts.free())
    if args.cleanup_interval:
        stack.restate.extra_env["RESTATE_WORKER__CLEANUP_INTERVAL"] = args.cleanup_interval
    stack.restate.extra_env.update(args.restate_env)
    samples: list[Sample] = []
    with stack:
        assert stack.restate.process is not None
        restate_pgid = stack.restate.process.pid
        restate_dir = stack.restate.data_dir / "data"
        produce_keyed(stack.bootstrap_servers, TOPIC, args.probe_records, args.keys, PARTITIONS)
        bindings = home / "bindings.yaml"
        handler = HANDLERS[args.target]
        replace_file(bindings, soak_bindings(stack, handler, args.retention, paused=True))
        (binding,) = load_bindings(bindings).bindings
        worker = WorkerProcess(
            "benchmarks.apps:app", home / "worker.log", cwd=REPO_ROOT, bindings=bindings
        )
        worker.start()
        producer: PacedProducer | None = None
        try:
            assert worker.process is not None
            process = worker.process

            def alive() -> None:
                if not process.running():
                    raise RuntimeError(f"the worker stopped; see {worker.log_path}")
                if producer is not None and producer.error is not None:
                    raise RuntimeError("the paced producer failed") from producer.error

            async with AdminClient(stack.admin_url) as admin:
                await admin.register_deployment(worker.uri)
                retention = await retention_applied(admin, handler)
                print(
                    f"idempotency retention of {SERVICE}/{handler} in Restate: {retention} "
                    f"(binding: idempotency_retention: {args.retention or 'unset, 1 day'}); "
                    f"cleanup interval: {args.cleanup_interval or DEFAULT_CLEANUP}",
                    flush=True,
                )
                before = await counted(admin, SERVICE)
                replace_file(bindings, soak_bindings(stack, handler, args.retention, paused=False))
                target = f"target_service_name = {sql_literal(SERVICE)}"
                if args.target == "object":
                    # No idempotency key, so no completed invocation to time: count in state.
                    peak = await applied_rate(admin, before, args.probe_records, alive)
                    where = target
                else:
                    prefix = f"{RECORD_IDEMPOTENCY_PREFIX}{binding.consumer_group}/%"
                    where = f"idempotency_key LIKE {sql_literal(prefix)}"
                    peak = await completed_rate(admin, where, args.probe_records, alive)
                (kept_for,) = await admin.query(
                    "SELECT completion_retention, journal_retention FROM sys_invocation "
                    f"WHERE {where} AND status = 'completed' LIMIT 1"
                )
                print(
                    "Restate keeps each record's completed invocation for "
                    f"{kept_for['completion_retention']}, its journal for "
                    f"{kept_for['journal_retention']}",
                    flush=True,
                )
                rate = args.rate or peak / 2
                chosen = "--rate" if args.rate else "half the peak"
                print(
                    f"probe: {args.probe_records} records at {peak:,.0f} records/s (peak); "
                    f"soak at {rate:,.0f} records/s ({chosen}) for {args.minutes:g} min",
                    flush=True,
                )
                kafka = TopicAdmin(stack.bootstrap_servers)
                await apoll(
                    lambda: asyncio.to_thread(committed_total, kafka, binding),
                    interval=1.0,
                    until=lambda n: n >= args.probe_records,
                    what="the probe's records committed",
                    timeout=60,
                )

                def sample(seconds: float) -> Sample:
                    delivered = committed_total(kafka, binding) - args.probe_records
                    rss = group_rss_bytes(restate_pgid)
                    return Sample(seconds, delivered, rss, *disk_bytes(restate_dir))

                producer = PacedProducer(
                    stack.bootstrap_servers, rate, args.keys, args.probe_records
                )
                began = time.monotonic()
                producer.start()
                samples.append(await asyncio.to_thread(sample, 0.0))
                duration = args.minutes * 60
                while (elapsed := time.monotonic() - began) < duration:
                    next_at = min(duration, (len(samples)) * args.sample_seconds)
                    await asyncio.sleep(max(0.0, next_at - elapsed))
                    alive()
                    samples.append(await asyncio.to_thread(sample, time.monotonic() - began))
                    s = samples[-1]
                    print(
                        f"  {s.seconds / 60:5.1f} min: {s.delivered:>9,} delivered, "
                        f"RSS {s.rss_bytes / MIB:,.0f} MiB, disk {s.disk_bytes / MIB:,.1f} MiB, "
                        f"data {s.data_bytes / MIB:,.1f} MiB ({stores_data(restate_dir)}) "
                        f"(load {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
                producer.stop()
                sent = args.probe_records + producer.produced
                # Drained: every record sent is accepted and committed, so the entries Restate
                # keeps compare with all of them.
                delivered = await apoll(
                    lambda: asyncio.to_thread(committed_total, kafka, binding),
                    until=lambda n: n >= sent,
                    what=f"all {sent} records sent committed",
                    timeout=DRAIN_TIMEOUT,
                    interval=1.0,
                )
                kept = await admin.query(
                    f"SELECT count(*) AS n FROM sys_invocation WHERE {target} "
                    "AND status = 'completed'"
                )
        finally:
            if producer is not None:
                producer.stop()
            worker.stop()
    print()
    print(machine())
    print(f"load average at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f} (1 min)")
    keys = "no idempotency keys" if args.target == "object" else "an idempotency key per record"
    print(
        f"target {SERVICE}/{handler} (--target {args.target}: {keys}); "
        f"keys: {args.keys}, partitions: {PARTITIONS}, rate {rate:,.0f} records/s for "
        f"{args.minutes:g} min; idempotency retention {retention}, cleanup interval "
        f"{args.cleanup_interval or DEFAULT_CLEANUP}"
    )
    print(f"restate-server settings beyond the local stack's: {dict(args.restate_env) or 'none'}")
    print(soak_table(samples))
    for line in growth_lines(samples):
        print(line)
    print(
        f"completed invocations Restate keeps at the end: {kept[0]['n']:,} for the {delivered:,} "
        "records delivered (probe included); with keys, fewer means expired entries were removed"
    )
    remove_scratch(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--rate", type=float, default=None, help="records/s (default: half the peak)"
    )
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument(
        "--target",
        choices=sorted(HANDLERS),
        default="object",
        help="object: an exclusive handler keeping a high-water (sends carry no idempotency "
        "key); shared: a shared handler (a key per record, kept for the retention)",
    )
    parser.add_argument("--probe-records", type=int, default=3_000)
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument(
        "--retention",
        default=None,
        help="the binding's idempotency_retention (e.g. 2m; default: unset, the bound "
        "handler's 1 day)",
    )
    parser.add_argument(
        "--cleanup-interval",
        default=None,
        help="restate-server's worker.cleanup-interval, how often expired entries are removed "
        "(e.g. 30s; default: Restate's 1h)",
    )
    parser.add_argument(
        "--restate-env",
        type=restate_setting,
        action="append",
        default=[],
        metavar="RESTATE_NAME=VALUE",
        help="a restate-server setting on top of the local stack's (repeatable; e.g. "
        "RESTATE_WORKER__TRIM_DELAY_INTERVAL=0s)",
    )
    args = parser.parse_args()

    async def soak() -> None:
        # Ctrl-C and SIGTERM cancel the soak, so that every finally stops what it started
        # (SIGINT too: a shell script's `&` starts it with SIGINT ignored).
        task = asyncio.current_task()
        assert task is not None
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
        await run(args)

    try:
        asyncio.run(soak())
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Every finally has run: the worker, restate-server and Kafka are stopped.
        raise SystemExit("soak interrupted; everything it started is stopped") from None


if __name__ == "__main__":
    main()
