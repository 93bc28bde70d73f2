"""Windows beside a peer: the same tumbling count per key over the same local Kafka, by
restate-stream's window binding (`delivery: consumer`, served by `restate-stream worker
--apply`) and by Quix Streams (PyPI `quixstreams`, benchmarks/quix_app.py, a subprocess).

Three measures, each on its own topics, produced the same way for both:
- throughput: records/s from the first record handled to the last, and CPU seconds per 1,000
  records (restate-stream: the worker's process group and restate-server's; Quix: its process);
- a quiet key's last window: the records' event times run up to now, then nothing more comes;
  seconds from the last record handled until every window is on the results topic, or never
  within --quiet-wait (Quix closes windows on stream time, restate-stream also by timer);
- exactness under SIGKILL: past event times, a last record per key far later (so stream time
  closes every window), produced in 12 pieces a second apart while the processor runs; it is
  SIGKILLed once a third are produced and a result is out, then started again; the results
  (read committed) against the truth computed from what was produced: windows missing,
  emitted twice, with another count, or repeated as one event (the same CloudEvents id, which
  a `dedupe: true` consumer drops). Quix runs with processing_guarantee='exactly-once' here.

Quix Streams pins confluent-kafka<2.13, so it is installed into a venv of its own in the
per-user cache (`<cache>/bench-quix`), once, from PyPI by name.

    .venv/bin/python -m benchmarks.windows_peer [--records 5000] [--keys 20] [--size-ms 1000]
        [--grace-ms 1000] [--quiet-wait 30] [--kill-records 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO

from confluent_kafka import Consumer, TopicPartition

from benchmarks.common import group_cpu_seconds, machine, remove_scratch
from benchmarks.e2e_throughput import completed_rate
from connectors import Record, TopicAdmin, produce_records
from connectors.consume import end_offsets
from restate_stream._util.poll import apoll
from restate_stream._util.ports import free_ports
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient, sql_literal
from restate_stream.stack import LocalStack, StackPorts
from restate_stream.stack.install import cache_dir
from restate_stream.testing import CLI, bindings_yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
QUIX = "quixstreams==3.28.1"  # the version these figures were taken with
PARTITIONS = 4

Window = tuple[str, int]  # (key, start in epoch ms)


# --- what is produced, and what should come out -------------------------------------------


def plan(records: int, keys: int, first_ms: int, span_ms: int) -> list[tuple[str, int]]:
    """(key, event time) of each record, in event-time order over [first_ms, first_ms+span_ms)."""
    return [(f"key-{i % keys}", first_ms + i * span_ms // records) for i in range(records)]


def truth(produced: list[tuple[str, int]], size_ms: int) -> Counter[Window]:
    """Each (key, tumbling window)'s count of the records produced."""
    return Counter((key, ts - ts % size_ms) for key, ts in produced)


@dataclasses.dataclass(frozen=True)
class Emitted:
    key: str
    start: int
    value: int
    event_id: str | None = None  # restate-stream's CloudEvents id (Quix's results have none)


def parse_result(key: bytes | None, value: bytes) -> Emitted:
    """A results-topic record: restate-stream's CloudEvents envelope (the result in `data`) or
    Quix's bare {"start", "end", "value"} keyed by the window's key."""
    body = json.loads(value)
    if "data" in body:
        data = body["data"]
        return Emitted(str(data["key"]), int(data["start"]), int(data["value"]), body["id"])
    return Emitted((key or b"").decode(), int(body["start"]), int(body["value"]))


@dataclasses.dataclass
class Verdict:
    missing: list[Window]
    doubled: list[Window]  # emitted more than once, as different events
    wrong: list[Window]  # emitted with another count
    # Emitted more than once as one event (one CloudEvents id): a consumer with `dedupe: true`
    # drops the repeats, so they are counted apart.
    repeated: list[Window] = dataclasses.field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not (self.missing or self.doubled or self.wrong or self.repeated)

    def __str__(self) -> str:
        if self.exact:
            return "exact"
        parts = [
            f"{len(windows)} {what}"
            for what, windows in (
                ("missing", self.missing),
                ("emitted twice", self.doubled),
                ("with another count", self.wrong),
                ("repeated with their event id", self.repeated),
            )
            if windows
        ]
        return "NOT exact: " + ", ".join(parts)


def compare(expected: Counter[Window], emitted: list[Emitted]) -> Verdict:
    """The emitted windows of `expected`'s keys and range against it; windows outside it (a
    closing record's own) are not judged."""
    copies: dict[Window, list[Emitted]] = {}
    for e in emitted:
        copies.setdefault((e.key, e.start), []).append(e)

    def one_event(window: Window) -> bool:
        ids = {e.event_id for e in copies[window]}
        return None not in ids and len(ids) == 1

    twice = [w for w in expected if len(copies.get(w, [])) > 1]
    return Verdict(
        missing=sorted(w for w in expected if w not in copies),
        doubled=sorted(w for w in twice if not one_event(w)),
        wrong=sorted(w for w in expected if any(e.value != expected[w] for e in copies.get(w, []))),
        repeated=sorted(w for w in twice if one_event(w)),
    )


# --- reading results ------------------------------------------------------------------------


def read_results(bootstrap: str, topic: str, idle: float = 3.0) -> list[Emitted]:
    """Every committed record of `topic` (transactions: only committed ones), once no new one
    came for `idle` seconds."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-windows-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": "false",
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        results: list[Emitted] = []
        last = time.monotonic()
        while time.monotonic() - last < idle:
            for message in consumer.consume(500, 0.2):
                value = message.value()
                if message.error() is None and value is not None:
                    results.append(parse_result(message.key(), value))
                    last = time.monotonic()
        return results
    finally:
        consumer.close()


def output_count(bootstrap: str, topic: str) -> int:
    return sum(end_offsets({"bootstrap.servers": bootstrap}, topic).values())


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    print(f"    {what}: not within {timeout:g}s", flush=True)
    return False


# --- the two processors -----------------------------------------------------------------------


def quix_python() -> Path:
    """The Quix venv's python, quixstreams installed by pip from PyPI (once)."""
    venv = cache_dir() / "bench-quix"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wanted = QUIX.split("==")[1]
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('quixstreams'))"],
        capture_output=True,
        text=True,
    )
    if probe.stdout.strip() != wanted:
        print(f"installing {QUIX} into {venv} (pip)", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", QUIX], check=True)
    return python


@dataclasses.dataclass
class Settings:
    bootstrap: str
    size_ms: int
    grace_ms: int
    home: Path


class Processor:
    """One processor's process group, started and stopped (or SIGKILLed) by the benchmark."""

    name = ""
    process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, log: Path, stdout: int | IO[bytes] | None = None) -> None:
        with log.open("ab") as err:
            self.process = subprocess.Popen(
                self.command(),
                cwd=REPO_ROOT,
                stdout=stdout if stdout is not None else err,
                stderr=err,
                start_new_session=True,
            )

    def exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def pgid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid(), signal.SIGKILL)
        assert self.process is not None
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid(), signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        with contextlib.suppress(ProcessLookupError):  # whatever of the group is left
            os.killpg(self.pgid(), signal.SIGKILL)


class Quix(Processor):
    def __init__(self, settings: Settings, topic: str, out: str, records: int, eos: bool):
        self.name = f"Quix Streams ({'exactly-once' if eos else 'at-least-once'})"
        self.settings, self.topic, self.out, self.records = settings, topic, out, records
        self.guarantee = "exactly-once" if eos else "at-least-once"
        self.group = f"bench-quix-{uuid.uuid4().hex[:8]}"
        self.state_dir = Path(tempfile.mkdtemp(prefix="quix-state-", dir=settings.home))
        self.python = quix_python()

    def command(self) -> list[str]:
        s = self.settings
        return [
            str(self.python),
            str(REPO_ROOT / "benchmarks" / "quix_app.py"),
            *("--bootstrap", s.bootstrap, "--topic", self.topic, "--out", self.out),
            *("--group", self.group, "--state-dir", str(self.state_dir)),
            *("--size-ms", str(s.size_ms), "--grace-ms", str(s.grace_ms)),
            *("--guarantee", self.guarantee, "--records", str(self.records)),
        ]


def applied(log: str) -> bool:
    """Whether the worker's apply has finished (once the cluster exists, there is nothing to
    change: a consumer-delivered binding has no subscription)."""
    return "change(s) applied" in log or "No changes:" in log


BATCH = {"batch": {"max_records": 1000, "max_wait": "100ms"}}


class Worker(Processor):
    """`restate-stream worker -f bindings.yaml --apply` serving one window binding."""

    name = "restate-stream window binding"

    def __init__(
        self, settings: Settings, stack: LocalStack, topic: str, out: str, batched: bool = False
    ):
        self.settings = settings
        self.batched = batched
        # Batched: restate-stream's consumer, one invocation per key per batch of 1,000.
        route = BATCH if batched else {"delivery": "consumer"}
        binding = f"win-{uuid.uuid4().hex[:8]}"
        window = {
            "type": "tumbling",
            "size": f"{settings.size_ms}ms",
            "grace": f"{settings.grace_ms}ms",
            "time_field": "ts",
            "to": out,
        }
        self.path = settings.home / f"{binding}.yaml"
        self.path.write_text(
            bindings_yaml(
                admin_url=stack.admin_url,
                ingress_url=stack.ingress_url,
                clusters={"bench": stack.bootstrap_servers},
                worker={
                    "app": "benchmarks.apps:app",
                    "uri": f"http://127.0.0.1:{free_ports(1)[0]}",
                },
                bindings=[{"name": binding, "topic": topic, **route, "window": window}],
            )
        )
        (self.binding,) = load_bindings(self.path).bindings
        self.log = settings.home / f"{binding}.log"

    def command(self) -> list[str]:
        return [*CLI, "worker", "-f", str(self.path), "--apply"]

    def start_applied(self) -> None:
        """Started, and serving once apply has registered it."""
        self.start(self.log)
        ok = wait_for(
            "the worker's apply",
            lambda: applied(self.log.read_text(errors="replace")) or self.exited(),
            120,
        )
        if not ok or self.exited():
            self.stop()
            raise SystemExit(f"the worker did not start: see {self.log}")

    async def drained(self, admin: AdminClient, records: int) -> float:
        """Records/s of a batched binding, from its first invocation created to its last
        completed, once the group committed every record and no invocation is left open."""
        b = self.binding
        target = (
            f"target_service_name = {sql_literal(b.service)} "
            f"AND target_handler_name = {sql_literal(b.handler)}"
        )
        kafka = TopicAdmin(self.settings.bootstrap)

        async def left() -> int:
            lag = sum(
                p.lag for p in await asyncio.to_thread(kafka.group_lag, b.consumer_group, b.topic)
            )
            rows = await admin.query(
                f"SELECT count(*) AS n FROM sys_invocation WHERE {target} AND status != 'completed'"
            )
            return lag + int(rows[0]["n"])

        await apoll(left, until=lambda n: n == 0, what="the batched binding drained", timeout=600)
        span = await admin.query(
            "SELECT min(created_at) AS first, max(completed_at) AS last FROM sys_invocation "
            f"WHERE {target}"
        )
        first = datetime.fromisoformat(span[0]["first"])
        last = datetime.fromisoformat(span[0]["last"])
        return records / (last - first).total_seconds()

    @property
    def records_where(self) -> str:
        return f"idempotency_key LIKE {sql_literal(f'rs-record/{self.binding.consumer_group}/%')}"


# --- the measures ---------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    name: str
    rate: float = float("nan")
    cpu: float = float("nan")  # s per 1,000 records
    quiet: str = ""
    kill: str = ""


def produce(bootstrap: str, topic: str, produced: list[tuple[str, int]]) -> None:
    TopicAdmin(bootstrap).create_topic(topic, PARTITIONS)
    produce_records(bootstrap, topic, (Record(k, json.dumps({"ts": ts})) for k, ts in produced))


def new_topics(bootstrap: str, name: str) -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]
    source, out = f"{name}-in-{run}", f"{name}-out-{run}"
    TopicAdmin(bootstrap).create_topic(out, 1)
    return source, out


def live_records(s: Settings, records: int, keys: int) -> list[tuple[str, int]]:
    """Event times over the 10 windows up to now: the last windows still open when done."""
    now = int(time.time() * 1000)
    return plan(records, keys, now - 10 * s.size_ms, 10 * s.size_ms)


def quiet_verdict(s: Settings, expected: Counter[Window], out: str, wait: float) -> str:
    """Seconds from now until every expected window is on `out`, or never within `wait`."""
    start = time.monotonic()
    done = wait_for(
        "every window, the quiet keys' last ones too",
        lambda: output_count(s.bootstrap, out) >= len(expected),
        wait,
    )
    if not done:
        got = len({(e.key, e.start) for e in read_results(s.bootstrap, out)} & set(expected))
        return f"never within {wait:g}s ({got}/{len(expected)} windows)"
    return f"after {time.monotonic() - start:.1f}s"


def quix_throughput(s: Settings, row: Row, records: int, keys: int, wait: float) -> None:
    source, out = new_topics(s.bootstrap, "quix")
    produced = live_records(s, records, keys)
    produce(s.bootstrap, source, produced)
    quix = Quix(s, source, out, records, eos=row.name.endswith("(exactly-once)"))
    report = s.home / f"{quix.group}.out"
    with report.open("wb") as stdout:
        quix.start(s.home / "quix.log", stdout=stdout)
    try:
        wait_for(
            "Quix's report",
            lambda: report.stat().st_size > 0 or quix.exited(),
            600,
        )
        line = report.read_text().strip()
        if not line:
            raise SystemExit(f"Quix reported nothing: see {s.home / 'quix.log'}")
        result = json.loads(line.splitlines()[0])
        row.rate, row.cpu = result["records_per_s"], result["cpu_s_per_1000"]
        row.quiet = quiet_verdict(s, truth(produced, s.size_ms), out, wait)
    finally:
        quix.stop()


async def worker_throughput(
    s: Settings,
    stack: LocalStack,
    admin: AdminClient,
    row: Row,
    records: int,
    keys: int,
    wait: float,
    batched: bool = False,
) -> None:
    source, out = new_topics(s.bootstrap, "rs")
    TopicAdmin(s.bootstrap).create_topic(source, PARTITIONS)
    worker = Worker(s, stack, source, out, batched)
    worker.start_applied()
    try:
        assert stack.restate.process is not None
        pgids = (worker.pgid(), stack.restate.process.pid)
        before = sum(group_cpu_seconds(p) for p in pgids)
        produced = live_records(s, records, keys)
        produce(s.bootstrap, source, produced)
        if batched:
            row.rate = await worker.drained(admin, records)
        else:
            row.rate = await completed_rate(admin, worker.records_where, records)
        row.cpu = (sum(group_cpu_seconds(p) for p in pgids) - before) * 1000 / records
        row.quiet = await asyncio.to_thread(quiet_verdict, s, truth(produced, s.size_ms), out, wait)
    finally:
        worker.stop()


def kill_records(
    s: Settings, records: int, keys: int
) -> tuple[list[tuple[str, int]], Counter[Window]]:
    """Past event times over 50 windows, then one record per key 100 windows later: stream time
    closes every window of the truth, which leaves those last records out."""
    first = (int(time.time() * 1000) // s.size_ms - 1000) * s.size_ms
    produced = plan(records, keys, first, 50 * s.size_ms)
    closers = [(f"key-{i}", first + 150 * s.size_ms) for i in range(keys)]
    return produced + closers, truth(produced, s.size_ms)


class PacedProducer(threading.Thread):
    """Produces the records in `chunks` pieces, `pause` seconds apart: a processor of any
    speed is mid-stream while it runs."""

    def __init__(
        self, bootstrap: str, topic: str, produced: list[tuple[str, int]], chunks: int = 12
    ) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.produced, self.chunks = bootstrap, topic, produced, chunks
        self.sent = 0
        self.pause = 1.0

    def run(self) -> None:
        step = -(-len(self.produced) // self.chunks)
        for i in range(0, len(self.produced), step):
            chunk = self.produced[i : i + step]
            produce_records(
                self.bootstrap, self.topic, (Record(k, json.dumps({"ts": t})) for k, t in chunk)
            )
            self.sent += len(chunk)
            time.sleep(self.pause)


def killed_and_restarted(
    s: Settings,
    processor: Processor,
    start: Callable[[], None],
    source: str,
    out: str,
    records: int,
    keys: int,
    wait: float,
) -> str:
    """The records produced paced while `processor` runs; SIGKILLed once a third are produced
    and a result is out, started again; then the verdict on its results."""
    produced, expected = kill_records(s, records, keys)
    TopicAdmin(s.bootstrap).create_topic(source, PARTITIONS)
    producer = PacedProducer(s.bootstrap, source, produced)
    try:
        start()
        producer.start()
        # Mid-stream: a third produced, and some of it processed (a result out).
        wait_for(
            "a third produced and a result out",
            lambda: producer.sent >= len(produced) // 3 and output_count(s.bootstrap, out) > 0,
            wait,
        )
        processor.kill()
        killed_at = output_count(s.bootstrap, out)
        print(f"    {processor.name}: SIGKILLed at {killed_at} results", flush=True)
        start()
        producer.join()

        def emitted() -> int:
            results = read_results(s.bootstrap, out, idle=1.0)
            return len({(e.key, e.start) for e in results} & set(expected))

        wait_for("every window after the restart", lambda: emitted() >= len(expected), wait)
    finally:
        processor.stop()
        producer.join()
    verdict = compare(expected, read_results(s.bootstrap, out))
    return f"{verdict} ({len(expected)} windows; SIGKILLed at {killed_at} results)"


def quix_kill(s: Settings, row: Row, records: int, keys: int, wait: float) -> None:
    source, out = new_topics(s.bootstrap, "quixkill")
    quix = Quix(s, source, out, records + keys, eos=True)
    start = lambda: quix.start(s.home / "quix-kill.log")  # noqa: E731
    row.kill = killed_and_restarted(s, quix, start, source, out, records, keys, wait)


def worker_kill(
    s: Settings, stack: LocalStack, row: Row, records: int, keys: int, wait: float
) -> None:
    source, out = new_topics(s.bootstrap, "rskill")
    worker = Worker(s, stack, source, out)
    row.kill = killed_and_restarted(
        s, worker, worker.start_applied, source, out, records, keys, wait
    )


def table(rows: list[Row], size_ms: int, grace_ms: int) -> list[str]:
    lines = [
        f"| tumbling count, {size_ms} ms windows, grace {grace_ms} ms | records/s "
        "| CPU s / 1,000 records | a quiet key's last window | SIGKILL mid-stream |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.rate:,.0f} | {r.cpu:.3f} | {r.quiet or 'not run'} "
            f"| {r.kill or 'not run'} |"
        )
    return lines


async def run(args: argparse.Namespace) -> None:
    load_start = os.getloadavg()[0]
    home = Path(tempfile.mkdtemp(prefix="rs-bench-windows-"))
    quix_python()  # installed before any timing
    with LocalStack(home, StackPorts.free()) as stack:
        s = Settings(stack.bootstrap_servers, args.size_ms, args.grace_ms, home)
        rs = Row(Worker.name)
        batched = Row(f"{Worker.name}, batched (max_records 1000)")
        quix_rows = [Row("Quix Streams (at-least-once)"), Row("Quix Streams (exactly-once)")]
        async with AdminClient(stack.admin_url) as admin:
            print("restate-stream: throughput and a quiet key", flush=True)
            await worker_throughput(s, stack, admin, rs, args.records, args.keys, args.quiet_wait)
            print(f"    {rs}", flush=True)
            print("restate-stream, batched: throughput and a quiet key", flush=True)
            await worker_throughput(
                s, stack, admin, batched, args.records, args.keys, args.quiet_wait, batched=True
            )
            print(f"    {batched}", flush=True)
        for row in quix_rows:
            print(f"{row.name}: throughput and a quiet key", flush=True)
            quix_throughput(s, row, args.records, args.keys, args.quiet_wait)
            print(f"    {row}", flush=True)
        print("restate-stream: SIGKILL mid-stream", flush=True)
        worker_kill(s, stack, rs, args.kill_records, args.keys, args.kill_wait)
        print(f"    {rs.kill}", flush=True)
        print("Quix Streams (exactly-once): SIGKILL mid-stream", flush=True)
        quix_kill(s, quix_rows[1], args.kill_records, args.keys, args.kill_wait)
    print()
    print(machine())
    print(f"records: {args.records} (kill: {args.kill_records}), keys: {args.keys}")
    print(f"load average at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f} (1 min)")
    print("\n".join(table([rs, batched, *quix_rows], args.size_ms, args.grace_ms)))
    remove_scratch(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--size-ms", type=int, default=1000)
    parser.add_argument("--grace-ms", type=int, default=1000)
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="seconds")
    parser.add_argument("--kill-records", type=int, default=2000)
    parser.add_argument("--kill-wait", type=float, default=300.0, help="seconds per stage")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
