"""Choosing the worker's h2c server: `worker.server` in the bindings file, `--server` flags,
and the settings each server is given."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from granian.constants import HTTPModes, Interfaces, Loops

from restate_stream._util.ports import free_ports
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


# --- off loopback: identity keys, and the metrics port ----------------------------------------

KEY = "publickeyv1_5Tb6EYXwWXxgRNtQDo5bxxrCPMzKkuD5aNt1JeKo3FcT"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What `restate-stream worker` would serve with, instead of serving."""
    calls: list[dict[str, Any]] = []

    def serve_forever(app: str, host: str, port: int, *args: Any, **kwargs: Any) -> int:
        calls.append({"host": host, "port": port, **kwargs})
        return 0

    monkeypatch.setattr("restate_stream.cli.worker.serve_forever", serve_forever)
    # The registration thread gives up at once: nothing listens.
    monkeypatch.setattr("restate_stream.cli.worker.wait_until_listening", lambda *a, **k: False)
    return calls


def run_worker(tmp_path: Path, extra: str, *flags: str) -> tuple[int, str]:
    path = tmp_path / "bindings.yaml"
    path.write_text(worker_file(extra))
    result = CliRunner().invoke(cli, ["worker", "-f", str(path), *flags])
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize(
    ("extra", "flags"),
    [("", ["--host", "0.0.0.0"]), ("uri: http://worker.apps.svc:9080\n", [])],
    ids=["--host", "worker.uri"],
)
def test_the_worker_refuses_to_listen_off_loopback_without_identity_keys(
    served: list[dict[str, Any]], tmp_path: Path, extra: str, flags: list[str]
) -> None:
    code, output = run_worker(tmp_path, extra, *flags)
    assert code == 2 and served == [], output
    assert "worker.identity_keys is empty" in output and "0.0.0.0" in output
    assert str(tmp_path / "bindings.yaml") in output
    assert "--insecure" in output and "REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE" in output


def test_insecure_serves_off_loopback_and_says_so(
    served: list[dict[str, Any]], tmp_path: Path
) -> None:
    code, output = run_worker(tmp_path, "", "--host", "0.0.0.0", "--insecure")
    assert code == 0 and [c["host"] for c in served] == ["0.0.0.0"], output
    assert "warning: --insecure" in output and "checks no request signature" in output


def test_with_identity_keys_the_worker_serves_off_loopback_quietly(
    served: list[dict[str, Any]], tmp_path: Path
) -> None:
    code, output = run_worker(tmp_path, f'identity_keys: ["{KEY}"]\n', "--host", "0.0.0.0")
    assert code == 0 and [c["host"] for c in served] == ["0.0.0.0"], output
    assert "warning" not in output


def test_on_loopback_nothing_changes(served: list[dict[str, Any]], tmp_path: Path) -> None:
    code, output = run_worker(tmp_path, "")
    assert code == 0 and [c["host"] for c in served] == ["127.0.0.1"], output
    assert "warning" not in output


def test_an_unreadable_identity_key_is_named_before_serving(
    served: list[dict[str, Any]], tmp_path: Path
) -> None:
    code, output = run_worker(tmp_path, 'identity_keys: ["publickeyv1_CHANGE-ME"]\n')
    assert code == 2 and served == [], output
    assert "worker.identity_keys[0] is not a Restate public key" in output


def test_the_worker_module_refuses_too() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "restate_stream.runtime.worker", "m:app", "--port", "1",
         "--host", "0.0.0.0"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 2 and "identity_keys is empty" in run.stderr, run.stderr


@pytest.mark.parametrize(
    ("extra", "flags", "expected"),
    [
        ("", [], "127.0.0.1"),  # the worker's 0.0.0.0 does not carry over to /metrics
        ("metrics_host: 0.0.0.0\n", [], "0.0.0.0"),
        ("", ["--metrics-host", "0.0.0.0"], "0.0.0.0"),
    ],
)
def test_metrics_listen_on_loopback_unless_exposed_on_purpose(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: str,
    flags: list[str],
    expected: str,
) -> None:
    import prometheus_client

    from restate_stream.runtime import worker as runtime_worker
    from restate_stream.runtime._asgi import APP_ENV, BINDINGS_ENV, LOG_FORMAT_ENV, METRICS_ENV
    from restate_stream.telemetry.metrics import MULTIPROC_ENV

    for name in (APP_ENV, BINDINGS_ENV, LOG_FORMAT_ENV, METRICS_ENV, MULTIPROC_ENV):
        monkeypatch.delenv(name, raising=False)  # serve_forever sets them; restored after
    monkeypatch.setenv("RESTATE_STREAM_IDENTITY_KEYS", "")
    listened: list[str] = []

    class Stopped:
        def shutdown(self) -> None:
            pass

    def start_http_server(port: int, addr: str, registry: Any) -> tuple[Any, Any]:
        listened.append(addr)
        done = threading.Thread(target=lambda: None)
        done.start()
        return Stopped(), done

    monkeypatch.setattr(prometheus_client, "start_http_server", start_http_server)
    monkeypatch.setattr(runtime_worker, "_serve_granian", lambda *args: (True, 0))
    monkeypatch.setattr("restate_stream.cli.worker.wait_until_listening", lambda *a, **k: False)
    port = str(free_ports(1)[0])  # checked free on loopback first
    code, output = run_worker(
        tmp_path, extra, "--host", "0.0.0.0", "--insecure", "--metrics-port", port, *flags
    )
    assert code == 0, output
    assert listened == [expected]
