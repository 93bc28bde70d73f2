"""What the benchmarks share: the machine line they print, a process group's CPU time and
resident memory, the keyed JSON records the end-to-end benchmarks drain, and an OTLP sink for
traced runs."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from connectors import Record, TopicAdmin, produce_records
from connectors.group_consumer import FETCH_PROPERTIES

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def machine() -> str:
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )


def _group_stats(pgid: int, with_pid: bool = False) -> Iterator[list[str]]:
    """The /proc/<pid>/stat fields after the command name (field 3 on) of each process now in
    process group `pgid`; `with_pid`: its pid first (fields shift by one)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            yield [entry.name, *fields] if with_pid else fields


def group_cpu_seconds(pgid: int) -> float:
    """utime+stime of the processes now in process group `pgid`."""
    return sum(int(f[11]) + int(f[12]) for f in _group_stats(pgid)) / TICKS


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent busy since boot (/proc/stat: all but idle
    and iowait), whoever spent them."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of the processes now in process group `pgid` (shared pages counted in
    each process, as ps does)."""
    return sum(int(f[21]) for f in _group_stats(pgid)) * PAGE_SIZE


def process_rss_bytes(pid: int) -> int:
    """Resident memory of process `pid` alone (0 once it exited)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except OSError:
        return 0


def group_pids(pgid: int) -> list[int]:
    """The processes now in process group `pgid`."""
    return [int(fields[0]) for fields in _group_stats(pgid, with_pid=True)]


@dataclasses.dataclass(frozen=True)
class ProcessCost:
    """What one process (group) spent over a span: CPU seconds per 1,000 records and its
    peak resident memory."""

    cpu_per_1000: float
    peak_rss: int  # bytes

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss / 2**20


SELF = -1  # in a CostMeter's groups: this process (its threads, not its process group)


class CostMeter:
    """CPU seconds and peak resident memory over a span (a `with` block) of named process
    groups, or this process (SELF). Memory is sampled every `interval` seconds on a thread,
    which reads only the groups' known processes' statm (scanning /proc for a group's
    members, every `rescan` samples, cost the delivery measured here ~20% more CPU), and
    whose own CPU is not counted in SELF's."""

    def __init__(self, groups: Mapping[str, int], interval: float = 0.25, rescan: int = 8) -> None:
        self.groups = dict(groups)
        self.interval = interval
        self.rescan = rescan
        self.peak = dict.fromkeys(self.groups, 0)
        self._pids: dict[str, list[int]] = {}
        self._samples = 0
        self._sampler_cpu = 0.0  # the sampling thread's own CPU seconds
        self._cpu_start: dict[str, float] = {}
        self._cpu_end: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def _cpu(self, pgid: int) -> float:
        return time.process_time() if pgid == SELF else group_cpu_seconds(pgid)

    def _sample(self) -> None:
        if self._samples % self.rescan == 0:
            self._pids = {
                name: [os.getpid()] if pgid == SELF else group_pids(pgid)
                for name, pgid in self.groups.items()
            }
        self._samples += 1
        for name, pids in self._pids.items():
            rss = sum(process_rss_bytes(pid) for pid in pids)
            self.peak[name] = max(self.peak[name], rss)

    def _sample_until_stopped(self) -> None:
        start = time.thread_time()
        while not self._stop.wait(self.interval):
            self._sample()
        self._sampler_cpu = time.thread_time() - start

    def __enter__(self) -> CostMeter:
        self._cpu_start = {name: self._cpu(pgid) for name, pgid in self.groups.items()}
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._cpu_end = {name: self._cpu(pgid) for name, pgid in self.groups.items()}
        for name, pgid in self.groups.items():
            if pgid == SELF:
                self._cpu_end[name] -= self._sampler_cpu

    def costs(self, records: int) -> dict[str, ProcessCost]:
        """Each group's cost of the span, per 1,000 of the `records` it handled."""
        return {
            name: ProcessCost(
                (self._cpu_end[name] - self._cpu_start[name]) * 1000 / records, self.peak[name]
            )
            for name in self.groups
        }


def disk_bytes(root: Path) -> tuple[int, int]:
    """What the files under `root` take on disk (allocated blocks, as du counts them) and hold
    (their apparent sizes: RocksDB preallocates its logs, which du counts before they fill)."""
    allocated = apparent = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                stat = os.lstat(os.path.join(directory, name))
            except OSError:  # removed meanwhile (a compaction)
                continue
            allocated += stat.st_blocks * 512
            apparent += stat.st_size
    return allocated, apparent


def remove_scratch(home: Path) -> None:
    """A run's temporary home (engines' data and logs: 100-200 MiB a run) removed once the run
    ended well; a run that raised never gets here, so its home stays for its logs."""
    shutil.rmtree(home, ignore_errors=True)


def replace_file(path: Path, text: str) -> None:
    """Write `path` whole in one step: a worker following the file never reads half of it."""
    staged = path.with_name(path.name + ".staged")
    staged.write_text(text)
    staged.replace(path)


def produce_keyed(bootstrap: str, topic: str, records: int, keys: int, partitions: int) -> None:
    """A topic of `records` JSON records {"seq": i} keyed key-<i mod keys>."""
    TopicAdmin(bootstrap).create_topic(topic, partitions)
    print(f"producing {records} records over {keys} keys into {partitions} partitions")
    produce_records(
        bootstrap,
        topic,
        (Record(f"key-{i % keys}", json.dumps({"seq": i})) for i in range(records)),
    )


class OtlpSink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and counts their bytes: a collector that keeps nothing."""

    received = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        OtlpSink.received += len(self.rfile.read(length))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def reading_consumer(
    bootstrap: str, group_prefix: str, fetching: Mapping[str, Any] = FETCH_PROPERTIES
) -> Consumer:
    """A consumer in a group of its own (a fresh group id each call) reading from the start
    and committing nothing: a benchmark's reader. It fetches as restate-stream's own consumer
    does (`fetching`: connectors.group_consumer.FETCH_PROPERTIES), unless told otherwise."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{group_prefix}-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": "false",
            **fetching,
        }
    )
