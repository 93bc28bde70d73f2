"""The engines the project starts reach nothing beyond loopback.

Observed directly: each engine runs under strace (seccomp-filtered to the calls that send to an
address: connect, sendto, sendmsg, sendmmsg), and every IPv4/IPv6 destination in the trace must
be loopback. Reading /proc/<pid>/net would miss both the DNS lookup (an unconnected UDP socket
shows no peer) and a refused connection (gone in microseconds), so a tracer it is.

restate-server asks GitHub for its latest release on every start, with no switch to turn that
off (stack/offline.py); the test waits until that check has run, then requires that it neither
resolved a GitHub name over DNS nor connected anywhere but loopback. Without the private
/etc/hosts the trace shows the DNS query for api.github.com to the system's nameserver.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
from pathlib import Path

import pytest

from restate_stream._util.poll import poll
from restate_stream._util.ports import free_ports
from restate_stream.stack.install import kafka_install, restate_install
from restate_stream.stack.kafka import KafkaBroker, KafkaPorts
from restate_stream.stack.restate import RestatePorts, RestateServer

pytestmark = pytest.mark.engines

_CALLS = "connect,sendto,sendmsg,sendmmsg"
_IPV4 = re.compile(r'inet_addr\("([^"]+)"\)')
_IPV6 = re.compile(r'inet_pton\(AF_INET6, "([^"]+)"')
_PORT = re.compile(r"sin6?_port=htons\((\d+)\)")


def _strace(trace: Path) -> list[str]:
    strace = shutil.which("strace")
    # A loud failure, not a skip: without a tracer this test proves nothing.
    assert strace is not None, "test_offline needs strace on PATH (apt-get install strace)"
    return [
        strace,
        "-f",
        "-qq",
        "--seccomp-bpf",
        "-e",
        f"trace={_CALLS}",
        "-s",
        "256",
        "-o",
        str(trace),
    ]


def _lines(trace: Path) -> list[str]:
    return trace.read_text(errors="replace").splitlines() if trace.exists() else []


def _outside(lines: list[str]) -> list[str]:
    """Trace lines that send to a non-loopback address or look up a GitHub name."""
    bad = []
    for line in lines:
        addresses = [*_IPV4.findall(line), *_IPV6.findall(line)]
        for text in addresses:
            address = ipaddress.ip_address(text)
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            if not address.is_loopback:
                bad.append(line)
                break
        else:
            # A DNS query for GitHub leaves the machine even via a loopback resolver
            # (systemd-resolved forwards it), so it counts wherever it is sent.
            if "github" in line.lower():
                bad.append(line)
    return bad


def _release_check_ran(lines: list[str]) -> bool:
    # The check is a GET to https://api.github.com: a connection to port 443 once the name
    # resolved (to loopback with the fix), or a DNS query naming GitHub without it.
    return any(
        "github" in line.lower() or "443" in _PORT.findall(line) for line in lines if "(" in line
    )


def test_restate_server_makes_no_outside_connection(tmp_path: Path) -> None:
    trace = tmp_path / "restate.strace"
    ingress, admin, fabric = free_ports(3)
    server = RestateServer(
        restate_install(None),
        tmp_path / "restate",
        RestatePorts(ingress, admin, fabric),
        launch_prefix=_strace(trace),
    )
    try:
        server.start()
        assert server.online_reason is None, (
            f"restate-server could not be given a private /etc/hosts: {server.online_reason}"
        )
        poll(
            lambda: _release_check_ran(_lines(trace)),
            what=f"restate-server's GitHub release check to show in {trace}",
            timeout=90,  # under strace, on a loaded 2-core machine, startup is slow
        )
    finally:
        server.stop()
    lines = _lines(trace)
    outside = _outside(lines)
    assert not outside, (
        f"restate-server sent to addresses beyond loopback ({trace}):\n" + "\n".join(outside)
    )
    # What the check did instead: a connection to api.github.com resolved to loopback.
    assert any(
        '"127.0.0.1"' in line and "htons(443)" in line and "connect(" in line for line in lines
    ), f"no connect to 127.0.0.1:443 in {trace}:\n" + "\n".join(lines[-20:])
    # Expected there, so the server's log is not left with an ERROR line about it.
    assert "octocrab" not in server.log_path.read_text(), server.log_path


def test_kafka_broker_makes_no_outside_connection(tmp_path: Path) -> None:
    trace = tmp_path / "kafka.strace"
    broker_port, controller_port = free_ports(2)
    broker = KafkaBroker(
        kafka_install(None),
        tmp_path / "kafka",
        KafkaPorts(broker_port, controller_port),
        launch_prefix=_strace(trace),
    )
    try:
        # Ready means the broker answered a client's metadata request over its listener.
        broker.start()
    finally:
        broker.stop()
    lines = _lines(trace)
    assert any(f"htons({controller_port})" in line for line in lines), (
        f"the trace {trace} shows no connection to the controller port {controller_port}: "
        "the tracer did not see the broker's sends"
    )
    outside = _outside(lines)
    assert not outside, (
        f"the Kafka broker sent to addresses beyond loopback ({trace}):\n" + "\n".join(outside)
    )
