"""`restate-stream ui`: what it says about the address it listens on, and what it serves."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from restate_stream.cli import ui as ui_command
from restate_stream.cli.app import main
from restate_stream.testing import bindings_yaml
from restate_stream.ui.access import TOKEN_ENV
from restate_stream.ui.fake import FakeSource, fake_spec, fake_status

with warnings.catch_warnings():  # Starlette 1.x would rather test on httpx2; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, str, int]]:
    calls: list[tuple[Any, str, int]] = []
    monkeypatch.setattr(ui_command, "run", lambda app, host, port: calls.append((app, host, port)))
    return calls


@pytest.fixture
def bindings(tmp_path: Path) -> Path:
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            clusters={"local": "127.0.0.1:9092"},
            bindings=[{"name": "orders", "topic": "orders", "handler": "S/h"}],
        )
    )
    return path


def test_loopback_by_default_and_said(
    served: list[tuple[Any, str, int]], bindings: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ui", "-f", str(bindings)]) == 0
    [(app, host, port)] = served
    assert (host, port) == ("127.0.0.1", 8765)
    out, err = capsys.readouterr()
    assert "listening on 127.0.0.1 only" in err and "warning" not in err
    assert "http://127.0.0.1:8765/" in out
    assert app.state.dashboard.guard.host_allowed("localhost:8765")
    assert not app.state.dashboard.guard.host_allowed("evil.example:8765")


TOKEN = "0123456789abcdef-dashboard"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "ui-token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.mark.parametrize(
    ("flags", "missing"),
    [
        ([], ["--allowed-host", "--token-file"]),
        (["--allowed-host", "dash.example.com"], ["--token-file"]),
        (["--token-file", "{token}"], ["--allowed-host"]),
    ],
    ids=["nothing", "no token", "no allowed host"],
)
def test_off_loopback_it_refuses_without_allowed_hosts_and_a_token(
    served: list[tuple[Any, str, int]],
    bindings: Path,
    token_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    missing: list[str],
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    flags = [f.format(token=token_file) for f in flags]
    assert main(["ui", "-f", str(bindings), "--host", "0.0.0.0", *flags]) == 2
    assert served == []
    err = " ".join(capsys.readouterr().err.split())
    assert "--host 0.0.0.0 exposes the dashboard" in err
    for option in ["--allowed-host", "--token-file"]:
        assert (option in err.split("add ", 1)[1]) == (option in missing), err
    assert TOKEN not in err


def serve_exposed(
    served: list[tuple[Any, str, int]], bindings: Path, monkeypatch: pytest.MonkeyPatch, *flags: str
) -> TestClient:
    fake = FakeSource(fake_spec(["orders"]), [fake_status("orders")])
    monkeypatch.setattr(ui_command, "LiveSource", lambda path, wait: fake)
    argv = ["ui", "-f", str(bindings), "--host", "0.0.0.0", "--allowed-host", "dash.example.com"]
    assert main([*argv, *flags]) == 0
    [(app, host, _)] = served
    assert host == "0.0.0.0"
    return TestClient(app, base_url="http://dash.example.com:8765")


def test_off_loopback_with_allowed_hosts_and_a_token_file_it_serves_only_those(
    served: list[tuple[Any, str, int]],
    bindings: Path,
    token_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    client = serve_exposed(served, bindings, monkeypatch, "--token-file", str(token_file))
    output = " ".join("".join(capsys.readouterr()).split())
    assert "dash.example.com" in output and TOKEN not in output
    assert client.get("/").status_code == 401  # DNS rebinding or not: the token first
    assert client.get("/", auth=("me", TOKEN)).status_code == 200
    assert client.get("/", auth=("me", TOKEN), headers={"host": "evil.example"}).status_code == 421


def test_the_token_may_come_from_the_environment(
    served: list[tuple[Any, str, int]], bindings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    client = serve_exposed(served, bindings, monkeypatch)
    assert client.get("/", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/").status_code == 401


@pytest.mark.parametrize("content", ["", "short\n"])
def test_a_short_token_is_refused_naming_its_file(
    served: list[tuple[Any, str, int]],
    bindings: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
) -> None:
    path = tmp_path / "weak-token"
    path.write_text(content)
    argv = ["ui", "-f", str(bindings), "--host", "0.0.0.0", "--allowed-host", "d"]
    assert main([*argv, "--token-file", str(path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert served == [] and str(path) in err and "expected at least 16" in err


def test_a_bad_bindings_file_fails_before_serving(
    served: list[tuple[Any, str, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["ui", "-f", str(missing)]) == 2
    assert served == [] and str(missing) in capsys.readouterr().err
