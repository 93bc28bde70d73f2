"""`stack install` twice: the first run downloads, the second finds everything and runs nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from restate_stream.stack import install


def test_a_second_install_downloads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads: list[str] = []

    def fake_run(argv: list[str], what: str, log: Path) -> None:
        downloads.append(what)
        if argv[0] == "npm":  # what npm install would leave behind
            binary = install.restate_install(tmp_path).binary
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\n")
        else:  # what Maven would copy
            (install.kafka_install(tmp_path).lib / "kafka_2.13-4.2.0.jar").write_text("")

    monkeypatch.setattr(install, "_run", fake_run)
    monkeypatch.setattr(install, "_require_tool", lambda name, why, how: name)
    monkeypatch.setattr(install, "require_java", lambda: "java")

    first: list[str] = []
    install.install_all(tmp_path, first.append)
    assert downloads == ["npm install of the Restate server", "Maven download of the Kafka broker"]
    assert any("installing from npm" in line for line in first)

    downloads.clear()
    second: list[str] = []
    restate, kafka = install.install_all(tmp_path, second.append)
    assert downloads == [], "the second install downloaded again"
    assert restate.complete and kafka.complete
    assert [line.split(":")[1].split()[0] for line in second] == ["present", "present"], second
