"""Choosing the worker's h2c server: `worker.server` in the bindings file, `--server` flags,
and the settings each server is given."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from granian.constants import HTTPModes, Interfaces, Loops

from restate_stream.bindings import BindingsError, parse_bindings
from restate_stream.cli.app import cli
from restate_stream.runtime.serving import (
    DEFAULT_SERVER,
    GRACEFUL_SECONDS,
    MAX_CONCURRENT_STREAMS,
    SERVERS,
    granian_server,
    hypercorn_config,
)

FILE = Path("conf/bindings.yaml")


def worker_file(extra: str) -> str:
    return textwrap.dedent(
        """\
        kafka:
          clusters:
            local: {bootstrap.servers: "127.0.0.1:9092"}
        worker:
          app: "examples.quickstart.app:app"
        """
    ) + textwrap.indent(extra, "  ")


def test_the_default_is_one_of_the_servers_and_the_file_may_leave_it_out() -> None:
    assert DEFAULT_SERVER in SERVERS == ("granian", "hypercorn")
    spec = parse_bindings(worker_file(""), FILE, {})
    assert spec.worker is not None and spec.worker.server is None


@pytest.mark.parametrize("server", SERVERS)
def test_the_file_names_a_server(server: str) -> None:
    spec = parse_bindings(worker_file(f"server: {server}\n"), FILE, {})
    assert spec.worker is not None and spec.worker.server == server


def test_an_unknown_server_is_a_problem_at_its_line() -> None:
    with pytest.raises(BindingsError) as raised:
        parse_bindings(worker_file("server: uvicorn\n"), FILE, {})
    [problem] = raised.value.problems
    assert (problem.line, problem.field) == (6, "worker.server")
    assert "granian" in problem.message and "hypercorn" in problem.message, problem.message


def test_the_cli_refuses_an_unknown_server(tmp_path: Path) -> None:
    path = tmp_path / "bindings.yaml"
    path.write_text(worker_file(""))
    result = CliRunner().invoke(cli, ["worker", "-f", str(path), "--server", "uvicorn"])
    assert result.exit_code == 2 and "uvicorn" in result.output, result.output


def test_the_worker_module_refuses_an_unknown_server() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "restate_stream.runtime.worker",
            "m:app",
            "--port",
            "1",
            "--server",
            "uvicorn",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2 and "invalid choice: 'uvicorn'" in run.stderr, run.stderr


def test_granian_serves_h2c_and_http1_with_uvloop_and_a_bounded_drain() -> None:
    server = granian_server("restate_stream.runtime._asgi:app", "127.0.0.1", 9080, 3)
    assert (server.bind_addr, server.bind_port, server.workers) == ("127.0.0.1", 9080, 3)
    assert server.interface == Interfaces.ASGI  # lifespan: batched consumers start there
    assert (server.http, server.loop) == (HTTPModes.auto, Loops.uvloop)
    assert server.http2_settings is not None
    assert server.http2_settings.max_concurrent_streams == MAX_CONCURRENT_STREAMS
    assert server.workers_kill_timeout == GRACEFUL_SECONDS


def test_hypercorn_keeps_restates_connections_open() -> None:
    config = hypercorn_config("127.0.0.1", 9080)
    assert config.keep_alive_max_requests >= 2**31 - 1
    assert config.h2_max_concurrent_streams == MAX_CONCURRENT_STREAMS
    assert config.graceful_timeout == GRACEFUL_SECONDS
