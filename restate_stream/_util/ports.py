"""Port checks for the local engines: fail early and name the port that is taken."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from restate_stream._util.poll import PollTimeout, poll
from restate_stream.errors import LocalStackError

LOOPBACK = "127.0.0.1"


class PortInUseError(LocalStackError, RuntimeError):
    def __init__(self, port: int, purpose: str) -> None:
        super().__init__(
            f"port {port} ({purpose}) on {LOOPBACK} is already in use: stop what holds it "
            f"(`ss -ltnp 'sport = :{port}'` shows it) or choose another port"
        )
        self.port = port
        self.purpose = purpose


def is_loopback(host: str) -> bool:
    """Whether an address to listen on (or a host name) reaches this machine alone."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def ensure_free(ports: dict[str, int]) -> None:
    """Raise PortInUseError for the first port (purpose -> port) that is taken."""
    for purpose, port in ports.items():
        if not port_is_free(port):
            raise PortInUseError(port, purpose)


def free_ports(count: int) -> list[int]:
    """Distinct ports the kernel reports free right now (bound together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def accepts_connections(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until_listening(
    port: int,
    host: str = LOOPBACK,
    *,
    timeout: float = 30.0,
    alive: Callable[[], bool] = lambda: True,
) -> bool:
    """Poll until `port` accepts connections; False on timeout or once `alive()` says no."""

    def listening() -> bool:
        if accepts_connections(port, host):
            return True
        if not alive():
            raise _Died
        return False

    try:
        poll(listening, what=f"{host}:{port} to accept connections", timeout=timeout, interval=0.05)
    except (_Died, PollTimeout):
        return False
    return True


class _Died(Exception):
    """The process that should open the port is gone: stop waiting."""
