"""--admin-url on every command that talks to Restate's admin API (no engines): parsed and
checked once (cli/options.py), and swapped into the spec the command uses."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import click
import pytest

from restate_stream.bindings import BindingsFile
from restate_stream.bindings import load_checked as load_file
from restate_stream.cli import main
from restate_stream.cli.app import parse_command_line
from restate_stream.control.admin import Deployment
from restate_stream.errors import RestateStreamError
from restate_stream.testing import bindings_yaml

FILE_URL = "http://127.0.0.1:9070"
LIVE_URL = "http://127.0.0.1:29070"


@pytest.fixture
def bindings(tmp_path: Path) -> Path:
    path = tmp_path / "b.yaml"
    path.write_text(
        bindings_yaml(
            admin_url=FILE_URL,
            clusters={"local": "127.0.0.1:9092"},
            worker={"app": "app:app", "uri": "http://127.0.0.1:29080"},
            bindings=[{"name": "b", "topic": "t", "handler": "S/h"}],
        )
    )
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["plan"],
        ["apply"],
        ["pause", "b"],
        ["resume", "b"],
        ["status"],
        ["unblock", "b"],
        ["metrics"],
        ["worker"],
    ],
)
def test_every_admin_api_command_takes_admin_url(argv: list[str]) -> None:
    assert parse_command_line([*argv, "--admin-url", LIVE_URL]).params["admin_url"] == LIVE_URL
    assert parse_command_line(argv).params["admin_url"] is None, "the file's, unless given"
    with pytest.raises(click.BadParameter, match="is not an http:// or https:// URL"):
        parse_command_line([*argv, "--admin-url", "127.0.0.1:9070"])


class Stop(RestateStreamError):
    pass


def test_metrics_reads_status_through_admin_url(
    bindings: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []

    def status_reader(spec: BindingsFile, topic_admin: Any, timeout: float) -> Any:
        seen.append(spec.restate.admin_url)
        raise Stop("stopped before serving")

    monkeypatch.setattr("restate_stream.cli.metrics.status_reader", status_reader)
    assert main(["metrics", "-f", str(bindings), "--admin-url", LIVE_URL]) == 2
    assert main(["metrics", "-f", str(bindings)]) == 2
    assert seen == [LIVE_URL, FILE_URL]
    assert capsys.readouterr().err == "error: stopped before serving\n" * 2


class FakeAdmin:
    def __init__(self, url: str, seen: list[tuple[str, str]]) -> None:
        self.url, self.seen = url, seen

    async def __aenter__(self) -> FakeAdmin:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass

    async def register_deployment(self, uri: str) -> Deployment:
        self.seen.append(("register", self.url))
        return Deployment("dp_1", uri, ["S"])


@pytest.mark.parametrize("flag", [[], ["--admin-url", LIVE_URL]])
def test_worker_registers_and_applies_through_admin_url(
    bindings: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str]
) -> None:
    seen: list[tuple[str, str]] = []
    applied = threading.Event()

    async def apply_file(spec: BindingsFile, *, wait: float) -> int:
        seen.append(("apply", spec.restate.admin_url))
        applied.set()
        return 0

    def serve_forever(*args: Any, **kwargs: Any) -> int:
        # Serves until registration and --apply ran (the command does them on a thread).
        assert applied.wait(30), "the worker never applied the bindings"
        return 0

    worker = "restate_stream.cli.worker"
    monkeypatch.setattr(f"{worker}.load_checked", lambda path: load_file(path, check_app=False))
    monkeypatch.setattr(f"{worker}.wait_until_listening", lambda *args, **kwargs: True)
    monkeypatch.setattr(
        f"{worker}.admin_client", lambda spec, wait: FakeAdmin(spec.restate.admin_url, seen)
    )
    monkeypatch.setattr(f"{worker}.apply_file", apply_file)
    monkeypatch.setattr(f"{worker}.serve_forever", serve_forever)
    assert main(["worker", "-f", str(bindings), "--apply", *flag]) == 0
    url = flag[-1] if flag else FILE_URL
    assert seen == [("register", url), ("apply", url)]
