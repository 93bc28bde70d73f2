"""Keep restate-server from asking GitHub for its latest release.

restate-server (1.7.12 and restatedev/restate main as of this writing) spawns a
"check-latest-release" task on every start (server/src/main.rs) that runs
`check_if_latest_version` (server/src/build_info.rs): octocrab GETs
https://api.github.com/repos/restatedev/restate/releases/latest. No setting gates it:
RESTATE_DISABLE_TELEMETRY (and DO_NOT_TRACK) only stop the Scarf usage ping. So the only way
to stop the attempt is to make api.github.com resolve to loopback for the server alone: it runs
in a private mount namespace (`unshare --mount`, plus `--user --map-root-user` when not root)
in which /etc/hosts is a copy with the GitHub API hosts mapped to 127.0.0.1. The lookup then
never leaves the machine (no DNS query: the hosts file answers first) and the connection is a
refused one to 127.0.0.1:443. The network namespace stays the host's, so the server still
reaches Kafka and the workers on loopback.

Linux only, and only where namespaces may be made (some container runtimes and Ubuntu's
AppArmor restriction of unprivileged user namespaces forbid it); elsewhere the server starts
without it and the caller is told (`offline_launcher` returns None).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from restate_stream._util.ports import LOOPBACK

# The hosts octocrab talks to (its base and upload URIs); only api.github.com is used today.
GITHUB_API_HOSTS = ("api.github.com", "uploads.github.com")
SYSTEM_HOSTS = Path("/etc/hosts")

# Run by unshare inside the new mount namespace; "$0" is the hosts copy, "$@" the server.
_BIND_AND_EXEC = 'mount --bind "$0" /etc/hosts && exec "$@"'


def offline_hosts(system_hosts: str) -> str:
    """The system hosts file with the GitHub API hosts on loopback, ahead of any other entry."""
    ours = "".join(f"{LOOPBACK} {host}\n" for host in GITHUB_API_HOSTS)
    return (
        "# restate-stream: restate-server's release check stays on loopback\n"
        + ours
        + system_hosts
        + ("" if system_hosts.endswith("\n") or not system_hosts else "\n")
    )


def write_offline_hosts(path: Path) -> Path:
    try:
        system = SYSTEM_HOSTS.read_text()
    except FileNotFoundError:
        system = f"{LOOPBACK} localhost\n::1 localhost\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(offline_hosts(system))
    return path


def _prefix(hosts_file: Path) -> list[str]:
    unshare = shutil.which("unshare") or "unshare"
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    # unshare execs without forking, and sh execs the server: the pid stays the server's.
    return [unshare, *user, "--mount", "--", "/bin/sh", "-c", _BIND_AND_EXEC, str(hosts_file)]


@functools.cache
def _namespaces_work() -> str | None:
    """None when a private /etc/hosts can be set up here, else why not (checked once)."""
    if not sys.platform.startswith("linux"):
        return f"mount namespaces are Linux-only (this is {sys.platform})"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "util-linux's unshare and mount are not on PATH"
    if not SYSTEM_HOSTS.exists():
        return f"{SYSTEM_HOSTS} does not exist"
    with tempfile.TemporaryDirectory(prefix="restate-stream-offline-") as tmp:
        hosts = write_offline_hosts(Path(tmp) / "hosts")
        probe = [*_prefix(hosts), "grep", "-qF", f"{LOOPBACK} {GITHUB_API_HOSTS[0]}", "/etc/hosts"]
        try:
            result = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(probe[:4])} failed: {exc}"
    if result.returncode != 0:
        return (
            f"`unshare --mount` with a bind-mounted /etc/hosts failed (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip() or 'no output'}"
        )
    return None


def offline_launcher(hosts_file: Path) -> tuple[list[str] | None, str | None]:
    """(argv prefix that runs a command with the GitHub API on loopback, None) when this
    machine allows it; (None, why not) otherwise. Writes `hosts_file`."""
    why_not = _namespaces_work()
    if why_not is not None:
        return None, why_not
    write_offline_hosts(hosts_file)
    return _prefix(hosts_file), None
