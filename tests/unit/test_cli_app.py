"""The command line without engines: errors, exit statuses, shared options, rendering."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors import PartitionLag
from restate_stream.bindings.loader import parse_bindings
from restate_stream.cli import main
from restate_stream.cli.app import cli, parse_command_line
from restate_stream.cli.status import render_text
from restate_stream.cli.worker import dev_worker
from restate_stream.control.status import BindingStatus
from restate_stream.errors import RestateStreamError
from restate_stream.stack import StackPorts
from restate_stream.stack.local import EngineStatus
from restate_stream.testing import bindings_yaml


class OutOfCoffee(RestateStreamError):
    pass


@pytest.fixture
def failing_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_checked(path: Path, *, check_app: bool = True) -> None:
        raise OutOfCoffee(f"{path}:3: out of coffee (expected a full pot)")

    monkeypatch.setattr("restate_stream.cli.bindings.load_checked", load_checked)


@pytest.mark.usefixtures("failing_validate")
def test_a_restate_stream_error_is_one_line_and_status_2() -> None:
    result = CliRunner().invoke(cli, ["validate", "-f", "b.yaml"])
    assert result.exit_code == 2
    assert result.stderr == "error: b.yaml:3: out of coffee (expected a full pot)\n"
    assert result.stdout == ""


@pytest.mark.usefixtures("failing_validate")
def test_debug_shows_the_traceback() -> None:
    result = CliRunner().invoke(cli, ["--debug", "validate", "-f", "b.yaml"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert "OutOfCoffee: b.yaml:3: out of coffee" in result.stderr
    assert "error: " not in result.stderr


@pytest.mark.usefixtures("failing_validate")
def test_main_reports_the_error_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-f", "b.yaml"]) == 2
    assert capsys.readouterr() == ("", "error: b.yaml:3: out of coffee (expected a full pot)\n")


@pytest.mark.parametrize(("healthy", "status"), [(True, 0), (False, 1)])
def test_the_status_a_command_returns_is_the_exit_status(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, healthy: bool, status: int
) -> None:
    engines = [
        EngineStatus("kafka", 11, True, True, "127.0.0.1:9092"),
        EngineStatus(
            "restate", 12, True, healthy, "http://127.0.0.1:9070", "" if healthy else "503"
        ),
    ]
    monkeypatch.setattr("restate_stream.cli.stack.stack_status", lambda home: engines)
    result = CliRunner().invoke(cli, ["stack", "status", "--home", str(tmp_path)])
    assert result.exit_code == status, result.output
    [restate] = [line for line in result.stdout.splitlines() if line.startswith("restate")]
    assert ("healthy" if healthy else "running, not answering") in restate
    assert main(["stack", "status", "--home", str(tmp_path)]) == status


def test_a_missing_bindings_file_is_an_error_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = CliRunner().invoke(cli, ["validate", "-f", str(missing)])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and str(missing) in line


def test_validate_reports_counts(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(
        bindings_yaml(
            clusters={"local": "k:9092"}, bindings=[{"name": "b", "topic": "t", "handler": "S/h"}]
        )
    )
    result = CliRunner().invoke(cli, ["validate", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: ok (1 binding, 1 Kafka cluster, 0 topics)\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "-f", "x.yaml"],
        ["plan", "-f", "x.yaml"],
        ["apply", "-f", "x.yaml"],
        ["pause", "b", "-f", "x.yaml"],
        ["resume", "b", "-f", "x.yaml"],
        ["status", "-f", "x.yaml"],
        ["worker", "-f", "x.yaml"],
        ["dev", "-f", "x.yaml"],
        ["publish", "t", "-f", "x.yaml", "--value", "1"],
        ["tail", "t", "-f", "x.yaml"],
        ["dlq", "list", "b", "-f", "x.yaml"],
        ["dlq", "redrive", "b", "-f", "x.yaml"],
    ],
)
def test_dash_f_is_the_bindings_file_everywhere(argv: list[str]) -> None:
    assert parse_command_line(argv).params["file"] == Path("x.yaml")


def test_publish_reads_records_from_records() -> None:
    parsed = parse_command_line(["publish", "t", "--records", "r.jsonl"])
    assert parsed.path == ("publish",)
    assert (parsed.params["records"], parsed.params["file"]) == (
        Path("r.jsonl"),
        Path("bindings.yaml"),
    )


def test_port_flags_and_their_defaults() -> None:
    up = parse_command_line(["stack", "up", "--admin-port", "1234"])
    assert up.path == ("stack", "up")
    assert up.params["admin_port"] == 1234 and up.params["kafka_port"] == StackPorts().kafka
    dev = parse_command_line(["dev"])
    assert dev.params["kafka_port"] is None, "dev takes the file's ports unless told"


def test_usage_errors_are_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "list", "b", "--limit", "0"]) == 2
    assert "--limit" in capsys.readouterr().err
    assert main(["no-such-command"]) == 2


def test_status_rows_are_one_line_each_off_a_terminal() -> None:
    status = BindingStatus(
        "orders",
        "kafka://local/orders",
        "service://Orders/handle",
        "restate-stream.orders",
        "active",
        ["sub_1"],
        [PartitionLag(0, 3, 10, 7), PartitionLag(1, None, 5, 5)],
        invocations={"succeeded": 200, "failed": 1},
        stuck_keys=[{"key": "k-9", "status": "backing-off", "retry_count": 3}],
        dead_letter_topic="orders.dlq",
        dead_letters=4,
    )
    text = render_text([status])
    [row] = [line for line in text.splitlines() if line.startswith("orders ")]
    for cell in ("active", "sub_1", "failed 1, succeeded 200", "4 on orders.dlq"):
        assert cell in row, row
    assert "orders: stuck key 'k-9': backing-off after 3 retries" in text
    assert render_text([]) == "No bindings declared.\n"


def test_dev_runs_the_worker_the_file_declares(tmp_path: Path) -> None:
    """dev's worker takes the file's `worker:` as `restate-stream worker` does, `processes`
    included (dev used to run one serving process whatever the file said)."""
    file = tmp_path / "bindings.yaml"
    text = bindings_yaml(
        clusters={"local": "127.0.0.1:9092"},
        worker={
            "app": "app:app",
            "uri": "http://127.0.0.1:9080",
            "processes": 3,
            "server": "hypercorn",
            "log_format": "json",
        },
    )
    spec = parse_bindings(text, file)
    assert spec.worker is not None
    worker = dev_worker(spec.worker, file, tmp_path)
    assert (worker.app, worker.port, worker.processes) == ("app:app", 9080, 3)
    assert (worker.server, worker.log_format) == ("hypercorn", "json")
    assert worker.log_path == tmp_path / "worker.log"
    assert worker.bindings == file.resolve()
