"""The root dockerd and a root install refuse paths another user could swap (no dockerd starts:
the checks run before it would)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from restate_stream._util.trusted_paths import UntrustedPathError, require_trusted_dir
from restate_stream.containers import engine as engine_mod
from restate_stream.containers.engine import DockerEngine
from restate_stream.stack import install

as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: dockerd starts only as root; chowns to another user"
)


def _no_dockerd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting gets as far as the path checks; anything later fails the test loudly."""
    monkeypatch.setattr(DockerEngine, "install", lambda self, progress=print: "/bin/false")

    def popen(*args: object, **kwargs: object) -> None:
        raise AssertionError("dockerd would have been started")

    monkeypatch.setattr(engine_mod.subprocess, "Popen", popen)


def _private(path: Path) -> Path:
    path.mkdir(mode=0o700)
    path.chmod(0o700)
    return path


@as_root
def test_a_world_writable_engine_dir_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _private(tmp_path / "cache")
    root.chmod(0o777)
    _no_dockerd(monkeypatch)
    with pytest.raises(UntrustedPathError) as refused:
        DockerEngine(root).start(progress=lambda _: None)
    assert str(root) in str(refused.value)
    assert "writable by group or others (mode 777)" in str(refused.value)


@as_root
def test_an_engine_dir_owned_by_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    root = _private(tmp_path / "cache")
    os.chown(root, nobody, -1)
    _no_dockerd(monkeypatch)
    with pytest.raises(UntrustedPathError) as refused:
        DockerEngine(root).start(progress=lambda _: None)
    assert f"{root}: it is owned by uid {nobody}, not by us" in str(refused.value)


@as_root
def test_a_dir_under_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    """XDG_CACHE_HOME=/home/user/.cache: root owns restate-stream/, but the user can rename
    it away and put their own in its place."""
    nobody = pwd.getpwnam("nobody").pw_uid
    home = _private(tmp_path / "home")
    os.chown(home, nobody, -1)
    with pytest.raises(UntrustedPathError) as refused:
        require_trusted_dir(_private(home / "restate-stream"))
    assert f"{home}: a directory above it is owned by uid {nobody}" in str(refused.value)


@as_root
def test_a_symlinked_docker_log_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _private(tmp_path / "cache")
    target = tmp_path / "etc-shadow"
    target.write_text("root would append the engine's log here\n")
    (root / "docker.log").symlink_to(target)
    _no_dockerd(monkeypatch)
    with pytest.raises(UntrustedPathError) as refused:
        DockerEngine(root).start(progress=lambda _: None)
    assert f"{root / 'docker.log'}: it is a symlink (to {target})" in str(refused.value)
    assert target.read_text() == "root would append the engine's log here\n"


def test_a_symlinked_engine_dir_is_refused(tmp_path: Path) -> None:
    real = _private(tmp_path / "real")
    link = tmp_path / "cache"
    link.symlink_to(real)
    with pytest.raises(UntrustedPathError, match="it is a symlink"):
        DockerEngine(link).check_paths()


def test_a_private_engine_dir_passes(tmp_path: Path) -> None:
    root = _private(tmp_path / "cache")
    DockerEngine(root).check_paths()  # and one not created yet
    DockerEngine(root / "new").check_paths()


@as_root
def test_root_refuses_a_world_writable_cache_for_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = _private(tmp_path / "cache")
    cache.chmod(0o757)
    monkeypatch.setenv("RESTATE_STREAM_CACHE", str(cache))
    with pytest.raises(UntrustedPathError, match=f"{cache}: it is writable by group or others"):
        install.install_all(progress=lambda _: None)


@as_root
def test_a_link_on_the_way_through_another_users_link_is_refused(tmp_path: Path) -> None:
    """cache -> shared/theirs -> real: both ends are root's, but `theirs` is another user's
    link in a sticky directory, which they may replace to send root anywhere."""
    nobody = pwd.getpwnam("nobody").pw_uid
    real = _private(tmp_path / "real")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    theirs = shared / "theirs"
    theirs.symlink_to(real)
    os.lchown(theirs, nobody, -1)
    (tmp_path / "cache").symlink_to(theirs)
    with pytest.raises(UntrustedPathError) as refused:
        require_trusted_dir(tmp_path / "cache" / "engine")
    assert f"a symlink on the way to it, {theirs}, is owned by uid {nobody}" in str(refused.value)


def test_links_of_ours_on_the_way_pass(tmp_path: Path) -> None:
    real = _private(tmp_path / "real")
    _private(real / "sub")
    (tmp_path / "relative").symlink_to("real")
    (tmp_path / "absolute").symlink_to(tmp_path / "relative")
    require_trusted_dir(tmp_path / "absolute" / "sub" / ".." / "sub" / "engine")


def test_a_symlink_loop_on_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(UntrustedPathError, match="more than 40 symlinks on the way"):
        require_trusted_dir(tmp_path / "a" / "engine")
