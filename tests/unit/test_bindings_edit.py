"""`restate-stream pause|resume` edits the bindings file: exactly one value, or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from restate_stream.bindings import BindingsError, load_bindings
from restate_stream.bindings.edit import set_paused

HEADER = "kafka:\n  clusters:\n    local: {bootstrap.servers: 'k:9092'}  # keep me\nbindings:\n"


def paused_of(path: Path) -> dict[str, bool]:
    return {b.name: b.paused for b in load_bindings(path).bindings}


def test_adds_then_flips_the_line_and_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(HEADER + "  - name: a   # first\n    topic: t\n    handler: S/h\n")
    assert set_paused(path, "a", True)
    assert paused_of(path) == {"a": True}
    assert "# keep me" in path.read_text() and "# first" in path.read_text()
    assert not set_paused(path, "a", True), "already paused: nothing to do"
    assert set_paused(path, "a", False)
    assert paused_of(path) == {"a": False}
    assert path.read_text().count("paused:") == 1


def test_crlf_files_stay_crlf(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    text = HEADER + "  - name: a\n    topic: t\n    handler: S/h\n"
    path.write_bytes(text.replace("\n", "\r\n").encode())
    assert set_paused(path, "a", True)
    data = path.read_bytes()
    assert b"paused: true\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")


@pytest.mark.parametrize(
    "binding",
    [
        "  - {name: a, topic: t, handler: S/h}\n",  # flow style
        "  - name: a\n    topic: t\n    handler: S/h\n    paused: ${PAUSED:-false}\n",
    ],
)
def test_refuses_what_it_cannot_edit_safely(tmp_path: Path, binding: str) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(HEADER + binding)
    before = path.read_bytes()
    with pytest.raises(BindingsError, match="yourself"):
        set_paused(path, "a", True)
    assert path.read_bytes() == before


def test_a_merged_value_is_not_edited_for_everyone(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(
        HEADER
        + "  - &base\n    name: a\n    topic: t\n    handler: S/h\n    paused: false\n"
        + "  - <<: *base\n    name: b\n    topic: u\n    group: g-b\n"
    )
    before = path.read_bytes()
    with pytest.raises(BindingsError, match="other bindings"):
        set_paused(path, "b", True)
    assert path.read_bytes() == before
    assert paused_of(path) == {"a": False, "b": False}


def test_unknown_binding_is_named(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(HEADER + "  - {name: orders, topic: t, handler: S/h}\n")
    with pytest.raises(BindingsError, match=r"no binding named 'order' \(bindings: orders\)"):
        set_paused(path, "order", True)
