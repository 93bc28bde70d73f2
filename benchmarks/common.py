"""What the benchmarks share: the machine line they print, a process group's CPU time and
resident memory, the keyed JSON records the end-to-end benchmarks drain, and an OTLP sink for
traced runs."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from connectors import Record, TopicAdmin, produce_records

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def machine() -> str:
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )


def _group_stats(pgid: int) -> Iterator[list[str]]:
    """The /proc/<pid>/stat fields after the command name (field 3 on) of each process now in
    process group `pgid`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            yield fields


def group_cpu_seconds(pgid: int) -> float:
    """utime+stime of the processes now in process group `pgid`."""
    return sum(int(f[11]) + int(f[12]) for f in _group_stats(pgid)) / TICKS


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of the processes now in process group `pgid` (shared pages counted in
    each process, as ps does)."""
    return sum(int(f[21]) for f in _group_stats(pgid)) * PAGE_SIZE


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
