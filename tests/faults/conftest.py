"""Engines for the fault suite: a 3-node Kafka cluster (replication factor 3, min ISR 2) and
one Restate server, on free loopback ports, for the whole session. Each case adds a row to a
table printed at the end of the run."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from restate_stream._util.ports import free_ports
from restate_stream.control.admin import AdminClient
from restate_stream.stack.install import install_all, restate_install
from restate_stream.stack.kafka_cluster import KafkaCluster
from restate_stream.stack.restate import RestatePorts, RestateServer

W = 60  # the case column: the longest case name


@dataclass(frozen=True)
class Row:
    case: str
    records: int
    lost: int
    twice: int
    stall: float  # longest gap in applied progress, seconds
    drain: float  # from the last record produced (acknowledged) to the last applied, seconds
    pub_lost: int  # (key, seq) applied but never on the output topic
    pub_twice: int  # (key, seq) on the output topic under more than one event id
    same_id: int  # extra copies on the output topic with the same event id (publisher's window)

    HEADER = (
        f"{'case':<{W}} {'records':>8} {'lost':>5} {'twice':>6} {'stall s':>8} {'drain s':>8} "
        f"{'pub lost':>8} {'pub twice':>9} {'same-id':>7}"
    )

    def line(self) -> str:
        return (
            f"{self.case:<{W}} {self.records:>8} {self.lost:>5} {self.twice:>6} "
            f"{self.stall:>8.1f} {self.drain:>8.1f} "
            f"{self.pub_lost:>8} {self.pub_twice:>9} {self.same_id:>7}"
        )


@dataclass(frozen=True)
class StreamsRow:
    """A case's window and table bindings, beside its per-record one (tests/faults/streams.py)."""

    case: str
    windows: int  # windows the topic's records make (the truth)
    wrong: int  # windows whose first emitted count differs from the truth, or never emitted
    twice: int  # windows emitted again with another event id or count
    same_id: int  # extra copies identical to the first (id and count): a dedupe consumer drops them
    late: int  # records dead-lettered as late
    keys: int  # table keys the topic's records make
    keys_wrong: int  # table keys whose value is not the last record's
    quiet_delay: float  # the latest quiet key's last window, emitted after its end + grace, s

    HEADER = (
        f"{'case':<{W}} {'windows':>8} {'wrong':>5} {'twice':>6} {'same-id':>7} {'late':>5} "
        f"{'tbl keys':>8} {'keys wrong':>10} {'quiet emit s':>12}"
    )

    def line(self) -> str:
        return (
            f"{self.case:<{W}} {self.windows:>8} {self.wrong:>5} {self.twice:>6} "
            f"{self.same_id:>7} {self.late:>5} {self.keys:>8} {self.keys_wrong:>10} "
            f"{self.quiet_delay:>12.1f}"
        )


ROWS: list[Row] = []
STREAMS_ROWS: list[StreamsRow] = []
_engines: list[KafkaCluster | RestateServer] = []


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    install_all(None, lambda line: print(f"[faults] {line}", file=sys.stderr))
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-cluster"), 3)
    cluster.start()
    _engines.append(cluster)
    try:
        yield cluster
    finally:
        _engines.remove(cluster)
        cluster.stop()


@pytest.fixture(scope="session")
def restate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestateServer]:
    server = RestateServer(
        restate_install(),
        tmp_path_factory.mktemp("restate") / "restate",
        RestatePorts(*free_ports(3)),
    )
    server.start()
    _engines.append(server)
    try:
        yield server
    finally:
        _engines.remove(server)
        server.stop()


@pytest_asyncio.fixture
async def admin(restate_server: RestateServer) -> AsyncIterator[AdminClient]:
    async with AdminClient(restate_server.admin_url) as client:
        yield client


def _tails() -> str:
    parts = []
    for engine in _engines:
        if isinstance(engine, KafkaCluster):
            parts.append(engine.logs_tail(30))
        else:
            parts.append(f"--- {engine.log_path} ---\n" + Path(engine.log_path).read_text()[-4000:])
    return "\n".join(parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _engines:
        report.sections.append(("engine logs", _tails()))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if ROWS:
        terminalreporter.section("fault suite")
        terminalreporter.write_line(Row.HEADER)
        for row in ROWS:
            terminalreporter.write_line(row.line())
    if STREAMS_ROWS:
        terminalreporter.section("fault suite: window and table bindings")
        terminalreporter.write_line(StreamsRow.HEADER)
        for streams_row in STREAMS_ROWS:
            terminalreporter.write_line(streams_row.line())
