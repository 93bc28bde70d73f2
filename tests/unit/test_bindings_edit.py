"""`restate-stream pause|resume` edits the bindings file: exactly one value, or nothing."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

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


# --- the rewrite keeps what readers of the file rely on ----------------------------------------

BINDING = "  - name: a\n    topic: t\n    handler: S/h\n"


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """New files get 0644 unless the rewrite takes care: what the tests below check."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("usual_umask")
def test_a_private_file_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(HEADER.replace("'k:9092'}", "'k:9092', sasl.password: pw}") + BINDING)
    path.chmod(0o600)
    assert set_paused(path, "a", True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert paused_of(path) == {"a": True}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another owner")
def test_the_owner_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(HEADER + BINDING)
    os.chown(path, 4242, 4343)
    assert set_paused(path, "a", True)
    assert (path.stat().st_uid, path.stat().st_gid) == (4242, 4343)


def linked_file(tmp_path: Path) -> tuple[Path, Path]:
    """(a link, the bindings file it links to in another folder), as a mounted ConfigMap."""
    target = tmp_path / "data" / "b.yaml"
    target.parent.mkdir()
    target.write_text(HEADER + BINDING)
    link = tmp_path / "b.yaml"
    link.symlink_to(target)
    return link, target


def test_a_symlink_is_written_through(tmp_path: Path) -> None:
    """A mounted ConfigMap is a link to the file: the link stays, its target gets the edit."""
    link, target = linked_file(tmp_path)
    assert set_paused(link, "a", True)
    assert link.is_symlink() and link.resolve() == target
    assert paused_of(target) == {"a": True}
    assert [p.name for p in target.parent.iterdir()] == ["b.yaml"], "no temporary file left"


@pytest.mark.usefixtures("usual_umask")
def test_a_planted_temporary_file_is_not_followed(tmp_path: Path) -> None:
    """The temporary name is not guessable, and never opened if it exists: a link planted at
    the old name (.b.yaml.<pid>.tmp) neither receives the text nor replaces the file."""
    path = tmp_path / "b.yaml"
    path.write_text(HEADER + BINDING)
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / f".b.yaml.{os.getpid()}.tmp").symlink_to(victim)
    assert set_paused(path, "a", True)
    assert victim.read_text() == "untouched"
    assert not path.is_symlink() and paused_of(path) == {"a": True}


def test_an_unwritable_place_is_a_bindings_error(tmp_path: Path) -> None:
    """A read-only mount (a ConfigMap) is told as such, with the file it is about."""
    link, target = linked_file(tmp_path)

    def read_only(*args: object, **kwargs: object) -> NoReturn:
        raise OSError(errno.EROFS, "Read-only file system")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "mkstemp", read_only)
        with pytest.raises(BindingsError) as raised:
            set_paused(link, "a", True)
    assert str(raised.value) == (
        f"{link}:1:1: cannot write {target} (where {link} links to): Read-only file system"
    )
    assert paused_of(target) == {"a": False}
