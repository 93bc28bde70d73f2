"""`restate-stream ui`: what it says about the address it listens on, and what it serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from restate_stream.cli import ui as ui_command
from restate_stream.cli.app import main
from restate_stream.testing import bindings_yaml


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


def test_another_host_warns(
    served: list[tuple[Any, str, int]], bindings: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ui", "-f", str(bindings), "--host", "0.0.0.0", "--port", "9000"]) == 0
    [(_, host, port)] = served
    assert (host, port) == ("0.0.0.0", 9000)
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: --host 0.0.0.0 exposes the dashboard" in err and "no login" in err


def test_a_bad_bindings_file_fails_before_serving(
    served: list[tuple[Any, str, int]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["ui", "-f", str(missing)]) == 2
    assert served == [] and str(missing) in capsys.readouterr().err
