"""Installs the local engines into a per-user cache, from public registries by package name.

- Restate server: npm `@restatedev/restate-server` (the platform package ships the binary).
- Apache Kafka broker: `org.apache.kafka:kafka_2.13` and its dependencies from Maven Central,
  copied into a `lib/` directory by `mvn dependency:copy-dependencies` over a small pom.

A marker file is written last, so an interrupted install is redone and a complete one is
never downloaded again.
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from restate_stream._util.trusted_paths import require_trusted_dir
from restate_stream.errors import LocalStackError

RESTATE_SERVER_VERSION = "1.7.12"
KAFKA_VERSION = "4.2.0"
# Kafka codes against SLF4J 1.x and Maven brings no binding: this log4j2 release matches 4.2.
LOG4J_VERSION = "2.25.3"
MIN_JAVA = 17

CACHE_ENV = "RESTATE_STREAM_CACHE"
_MARKER = ".installed"

Progress = Callable[[str], None]


class StackInstallError(LocalStackError, RuntimeError):
    pass


def cache_dir() -> Path:
    """$RESTATE_STREAM_CACHE, else $XDG_CACHE_HOME/restate-stream, else ~/.cache/restate-stream."""
    if explicit := os.environ.get(CACHE_ENV):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "restate-stream"


@dataclass(frozen=True)
class RestateInstall:
    root: Path

    @property
    def binary(self) -> Path:
        arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
            platform.machine().lower(), platform.machine().lower()
        )
        system = platform.system().lower()
        return (
            self.root
            / "node_modules/@restatedev"
            / f"restate-server-{system}-{arch}"
            / "bin/restate-server"
        )

    @property
    def complete(self) -> bool:
        return (self.root / _MARKER).exists() and self.binary.exists()


@dataclass(frozen=True)
class KafkaInstall:
    root: Path

    @property
    def lib(self) -> Path:
        return self.root / "lib"

    @property
    def classpath(self) -> str:
        return str(self.lib / "*")

    @property
    def complete(self) -> bool:
        return (self.root / _MARKER).exists() and any(self.lib.glob("kafka_2.13-*.jar"))


def restate_install(cache: Path | None = None) -> RestateInstall:
    return RestateInstall((cache or cache_dir()) / f"restate-server-{RESTATE_SERVER_VERSION}")


def kafka_install(cache: Path | None = None) -> KafkaInstall:
    return KafkaInstall((cache or cache_dir()) / f"kafka-{KAFKA_VERSION}")


def _require_tool(name: str, why: str, how: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackInstallError(f"`{name}` is not on PATH: {why}. Install it: {how}")
    return path


def java_major_version(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    text = out.stderr + out.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        raise StackInstallError(f"could not read the Java version from `{java} -version`: {text!r}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def require_java() -> str:
    java = _require_tool(
        "java",
        f"the Kafka {KAFKA_VERSION} broker runs on Java {MIN_JAVA}+",
        "e.g. `apt-get install openjdk-17-jre-headless`",
    )
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise StackInstallError(
            f"Java {major} found at {java}; the Kafka {KAFKA_VERSION} broker needs Java {MIN_JAVA}+"
        )
    return java


def _kafka_pom() -> Path:
    """The pom under deploy/kafka (a source checkout) or its copy inside the wheel."""
    packaged = resources.files("restate_stream.stack").joinpath("kafka-pom.xml")
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "deploy/kafka/pom.xml"
    if checkout.is_file():
        return checkout
    raise StackInstallError(f"the Kafka pom is missing: neither {packaged} nor {checkout} exists")


def _run(argv: list[str], what: str, log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        lines = log.read_text(errors="replace").splitlines()[-25:]
        raise StackInstallError(
            f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n"
            + "\n".join(lines)
            + f"\n(full output: {log})"
        )


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """One installer at a time per target (two test sessions may start together)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f".{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def install_restate(cache: Path | None = None, progress: Progress = print) -> RestateInstall:
    target = restate_install(cache)
    with _exclusive(target.root):
        return _install_restate(target, progress)


def _install_restate(target: RestateInstall, progress: Progress) -> RestateInstall:
    if target.complete:
        progress(f"restate-server {RESTATE_SERVER_VERSION}: present at {target.binary}")
        return target
    npm = _require_tool(
        "npm",
        "the Restate server is installed from npm (@restatedev/restate-server)",
        "Node.js 18+ with npm, e.g. `apt-get install nodejs npm`",
    )
    progress(f"restate-server {RESTATE_SERVER_VERSION}: installing from npm into {target.root}")
    target.root.mkdir(parents=True, exist_ok=True)
    # --ignore-scripts: the package's only install script is an analytics ping.
    _run(
        [
            npm,
            "install",
            "--prefix",
            str(target.root),
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--no-save",
            f"@restatedev/restate-server@{RESTATE_SERVER_VERSION}",
        ],
        "npm install of the Restate server",
        target.root / "install.log",
    )
    if not target.binary.exists():
        raise StackInstallError(
            f"npm installed @restatedev/restate-server but {target.binary} is missing: "
            f"no prebuilt server for {platform.system()}/{platform.machine()}?"
        )
    (target.root / _MARKER).write_text(RESTATE_SERVER_VERSION + "\n")
    return target


def install_kafka(cache: Path | None = None, progress: Progress = print) -> KafkaInstall:
    target = kafka_install(cache)
    require_java()
    with _exclusive(target.root):
        return _install_kafka(target, progress)


def _install_kafka(target: KafkaInstall, progress: Progress) -> KafkaInstall:
    if target.complete:
        progress(f"kafka {KAFKA_VERSION}: present at {target.lib}")
        return target
    mvn = _require_tool(
        "mvn",
        "the Kafka broker jars are fetched from Maven Central with Maven",
        "e.g. `apt-get install maven`",
    )
    progress(f"kafka {KAFKA_VERSION}: fetching broker jars from Maven Central into {target.lib}")
    if target.lib.exists():
        shutil.rmtree(target.lib)
    target.lib.mkdir(parents=True)
    _run(
        [
            mvn,
            "-B",
            "-q",
            "-f",
            str(_kafka_pom()),
            f"-Dkafka.version={KAFKA_VERSION}",
            f"-Dlog4j.version={LOG4J_VERSION}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={target.lib}",
        ],
        "Maven download of the Kafka broker",
        target.root / "install.log",
    )
    (target.root / _MARKER).write_text(KAFKA_VERSION + "\n")
    return target


def require_root_safe_cache(cache: Path | None = None) -> None:
    """As root, refuse a cache another user could change: root runs the engines installed
    there (RESTATE_STREAM_CACHE or XDG_CACHE_HOME may point into a user's directory)."""
    if os.geteuid() == 0:
        require_trusted_dir(cache or cache_dir(), f"engine cache (${CACHE_ENV}, $XDG_CACHE_HOME)")


def install_all(
    cache: Path | None = None, progress: Progress = print
) -> tuple[RestateInstall, KafkaInstall]:
    require_root_safe_cache(cache)
    return install_restate(cache, progress), install_kafka(cache, progress)
