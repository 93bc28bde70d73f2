"""Local images from the cached engine artifacts; nothing is pulled from an image registry.

- bases: Debian (debootstrap from the Debian mirror) with a JRE, or with Python, `docker import`ed;
- Restate: `FROM scratch` + the npm package's static restate-server + CA certificates;
- Kafka: the JRE base + the Maven jars `stack install` fetched, configured like the local stack
  (KRaft, one node) and by KAFKA_* variables the way the official apache/kafka image is;
- worker: deploy/worker.Dockerfile on the Python base (its default base is the official image).

Every image carries a label with the hash of its inputs: a build whose tag already has that hash
is skipped; otherwise the builder's layer cache still reuses the unchanged steps.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

from restate_stream import __version__
from restate_stream.containers.engine import DockerCli, EngineError, Progress
from restate_stream.errors import LocalStackError
from restate_stream.stack.install import (
    KAFKA_VERSION,
    RESTATE_SERVER_VERSION,
    cache_dir,
    install_kafka,
    install_restate,
)
from restate_stream.stack.kafka import KafkaPorts, server_properties

HASH_LABEL = "io.restate-stream.input-hash"
REPO = Path(__file__).resolve().parents[2]
IMAGES_DIR = REPO / "deploy" / "images"
DEBIAN_SUITE = "bookworm"
MIRROR_ENV = "RESTATE_STREAM_DEBIAN_MIRROR"
CA_CERTIFICATES = Path("/etc/ssl/certs/ca-certificates.crt")
# Bump to rebuild every image when the recipe below changes in a way the inputs do not show.
_RECIPE = "1"

JRE_PACKAGES = ("openjdk-17-jre-headless", "ca-certificates")
PYTHON_PACKAGES = ("python3", "python3-pip", "python-is-python3", "ca-certificates")
# What the official python:3.x-slim image has and Debian's python3 differs in: pip installs
# into /usr/local without complaint (PEP 668 guards the system packages of a real Debian host).
_PYTHON_BASE_ENV = (
    "PIP_BREAK_SYSTEM_PACKAGES=1",
    "PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
    "LANG=C.UTF-8",
)


class ImageBuildError(LocalStackError, RuntimeError):
    pass


@dataclass(frozen=True)
class ImageTags:
    """Local tags; each can be set by RESTATE_STREAM_IMAGE_<FIELD> (e.g. ..._IMAGE_KAFKA)."""

    restate: str = f"restate-stream/restate:{RESTATE_SERVER_VERSION}-local"
    kafka: str = f"restate-stream/kafka:{KAFKA_VERSION}-local"
    worker: str = f"restate-stream/worker:{__version__}-local"
    jre_base: str = f"restate-stream/debian-jre:{DEBIAN_SUITE}-local"
    python_base: str = f"restate-stream/debian-python:{DEBIAN_SUITE}-local"

    @classmethod
    def from_env(cls) -> ImageTags:
        given = {
            f.name: os.environ[key]
            for f in fields(cls)
            if (key := f"RESTATE_STREAM_IMAGE_{f.name.upper()}") in os.environ
        }
        return cls(**given)


@dataclass(frozen=True)
class BuildResult:
    tag: str
    reused: bool
    seconds: float

    def __str__(self) -> str:
        how = "reused (inputs unchanged)" if self.reused else "built"
        return f"{self.tag}: {how} in {self.seconds:.1f}s"


# --- inputs and their hash --------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One file of a build context: its name in the context and where its bytes come from."""

    name: str
    source: Path | bytes
    executable: bool = False

    def data(self) -> bytes:
        return self.source if isinstance(self.source, bytes) else self.source.read_bytes()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def input_hash(members: Iterable[Member], extra: Iterable[str] = ()) -> str:
    digest = hashlib.sha256(_RECIPE.encode())
    for member in sorted(members, key=lambda m: m.name):
        content = (
            hashlib.sha256(member.source).hexdigest()
            if isinstance(member.source, bytes)
            else _file_digest(member.source)
        )
        digest.update(f"{member.name}\0{content}\0{member.executable}\n".encode())
    for item in extra:
        digest.update(f"{item}\n".encode())
    return digest.hexdigest()


def image_hash(docker: DockerCli, tag: str) -> str | None:
    """The input hash the tag was built from; None when the tag does not exist."""
    result = docker.run(
        ["image", "inspect", "--format", f'{{{{ index .Config.Labels "{HASH_LABEL}" }}}}', tag],
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def image_id(docker: DockerCli, tag: str) -> str:
    return docker.run(["image", "inspect", "--format", "{{.Id}}", tag]).stdout.strip()


def _tree(root: Path, prefix: str) -> Iterator[Member]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not {"__pycache__", ".mypy_cache"} & set(rel.parts):
            yield Member(f"{prefix}/{rel.as_posix()}", path, os.access(path, os.X_OK))


# --- building ---------------------------------------------------------------------------------


def _context_tar(members: Iterable[Member]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            data = member.data()
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            info.mode = 0o755 if member.executable else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _log_path(tag: str) -> Path:
    safe = tag.replace("/", "_").replace(":", "_")
    path = cache_dir() / "images" / "logs" / f"{safe}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _run_logged(docker: DockerCli, args: list[str], log: Path, stdin: bytes, what: str) -> None:
    with log.open("wb") as out:
        result = subprocess.run(
            [docker.binary, *args],
            input=stdin,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=docker.env(),
            check=False,
        )
    if result.returncode != 0:
        last = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise ImageBuildError(f"{what} failed (exit {result.returncode}):\n{last}\n(log: {log})")


def docker_build(
    docker: DockerCli,
    tag: str,
    dockerfile: str,
    members: list[Member],
    build_args: dict[str, str],
    progress: Progress,
) -> BuildResult:
    """Build `tag` from a context streamed as a tar (only `members`, nothing else of the disk)."""
    started = time.monotonic()
    bases = sorted(v for k, v in build_args.items() if k.endswith("_IMAGE"))
    wanted = input_hash(
        members,
        [dockerfile, *(f"{k}={v}" for k, v in sorted(build_args.items()))]
        + [image_id(docker, base) for base in bases],
    )
    if image_hash(docker, tag) == wanted:
        return BuildResult(tag, True, time.monotonic() - started)
    progress(f"building {tag}")
    argv = ["build", "--network", "host", "-f", dockerfile, "-t", tag]
    argv += ["--label", f"{HASH_LABEL}={wanted}"]
    for key, value in sorted(build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    _run_logged(docker, [*argv, "-"], _log_path(tag), _context_tar(members), f"building {tag}")
    return BuildResult(tag, False, time.monotonic() - started)


def debian_base(
    docker: DockerCli,
    tag: str,
    packages: tuple[str, ...],
    env: tuple[str, ...],
    progress: Progress,
) -> BuildResult:
    """A Debian root filesystem from debootstrap (packages from the Debian mirror), imported."""
    started = time.monotonic()
    mirror = os.environ.get(MIRROR_ENV, "http://deb.debian.org/debian")
    wanted = input_hash([], [_RECIPE, DEBIAN_SUITE, mirror, *packages, *env])
    if image_hash(docker, tag) == wanted:
        return BuildResult(tag, True, time.monotonic() - started)
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ImageBuildError(
            f"building the base image {tag} needs debootstrap: `apt-get install -y debootstrap`"
        )
    progress(f"building {tag}: debootstrap {DEBIAN_SUITE} with {', '.join(packages)}")
    work = cache_dir() / "images"
    debs = work / "debs"  # downloaded packages, kept for the next base
    debs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work, prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log = _log_path(tag)
        argv = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(packages)}",
            f"--cache-dir={debs}",
            DEBIAN_SUITE,
            str(rootfs),
            mirror,
        ]
        with log.open("wb") as out:
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            last = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise ImageBuildError(f"debootstrap for {tag} failed:\n{last}\n(log: {log})")
        # The host's trust: a host behind a TLS-inspecting proxy reaches PyPI from builds too.
        if CA_CERTIFICATES.is_file():
            shutil.copyfile(CA_CERTIFICATES, rootfs / str(CA_CERTIFICATES).lstrip("/"))
        # Every container start copies the whole image on vfs: leave out what nothing reads.
        for junk in ("usr/share/doc", "usr/share/man", "usr/share/info", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
            (rootfs / junk).mkdir(parents=True, exist_ok=True)
        tar = subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],
            capture_output=True,
            check=False,
        )
        if tar.returncode != 0:
            raise ImageBuildError(f"packing {rootfs} failed: {tar.stderr.decode()[-1000:]}")
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            *(f"ENV {e}" for e in env),
            f"LABEL {HASH_LABEL}={wanted}",
            'CMD ["/bin/bash"]',
        ]
        argv = ["import", *(a for c in changes for a in ("--change", c)), "-", tag]
        _run_logged(docker, argv, log.with_suffix(".import.log"), tar.stdout, f"importing {tag}")
    return BuildResult(tag, False, time.monotonic() - started)


def _busybox() -> Path:
    """A static busybox (Debian's busybox-static) for the Restate image's health check."""
    target = cache_dir() / "images" / "busybox-static" / "busybox"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        for argv in (["apt-get", "download", "busybox-static"], None):
            if argv is None:  # stale package lists: refresh once and retry
                subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
                argv = ["apt-get", "download", "busybox-static"]
            done = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, check=False)
            if done.returncode == 0:
                break
        else:
            raise ImageBuildError(f"`apt-get download busybox-static` failed: {done.stderr}")
        (deb,) = Path(tmp).glob("busybox-static_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), f"{tmp}/x"], check=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(tmp) / "x/bin/busybox", target)
    return target


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ImageBuildError(f"{what} is missing: {path} (build images from a source checkout)")
    return path


def restate_members(progress: Progress) -> list[Member]:
    binary = install_restate(progress=progress).binary
    return [
        Member("Dockerfile", _require(IMAGES_DIR / "restate.Dockerfile", "the Restate Dockerfile")),
        Member("restate-server", binary, executable=True),
        Member("ca-certificates.crt", _require(CA_CERTIFICATES, "the CA certificate bundle")),
        Member("busybox", _busybox(), executable=True),
    ]


def kafka_members(progress: Progress) -> list[Member]:
    lib = install_kafka(progress=progress).lib
    # The local stack's broker configuration, for a data dir at /var/lib/kafka.
    properties = server_properties(Path("/var/lib/kafka"), KafkaPorts()).encode()
    members = [
        Member("Dockerfile", _require(IMAGES_DIR / "kafka.Dockerfile", "the Kafka Dockerfile")),
        Member("server.properties", properties),
        Member("log4j2.properties", _require(IMAGES_DIR / "kafka-log4j2.properties", "log4j2")),
    ]
    for script in ("kafka-entrypoint.sh", "kafka-broker-api-versions.sh"):
        members.append(Member(script, _require(IMAGES_DIR / script, script), executable=True))
    members += [Member(f"libs/{jar.name}", jar) for jar in sorted(lib.glob("*.jar"))]
    return members


def worker_members() -> list[Member]:
    """Exactly what deploy/worker.Dockerfile copies (no .venv, caches or tests)."""
    dockerfile = _require(REPO / "deploy" / "worker.Dockerfile", "deploy/worker.Dockerfile")
    members = [
        Member("deploy/worker.Dockerfile", dockerfile),
        Member("pyproject.toml", _require(REPO / "pyproject.toml", "pyproject.toml")),
        Member("README.md", _require(REPO / "README.md", "README.md")),
        Member("deploy/kafka/pom.xml", _require(REPO / "deploy/kafka/pom.xml", "the Kafka pom")),
    ]
    for package in ("restate_stream", "connectors", "examples"):
        members += _tree(REPO / package, package)
    return members


def build_images(
    host: str,
    tags: ImageTags | None = None,
    which: Iterable[str] = ("restate", "kafka", "worker"),
    progress: Progress = print,
) -> list[BuildResult]:
    """Build (or reuse) the images named in `which` on the engine at `host`."""
    tags = tags or ImageTags()
    wanted = set(which)
    try:
        docker = DockerCli(host)
    except EngineError as exc:
        raise ImageBuildError(str(exc)) from None
    results: list[BuildResult] = []
    if "restate" in wanted:
        results.append(
            docker_build(
                docker, tags.restate, "Dockerfile", restate_members(progress), {}, progress
            )
        )
    if "kafka" in wanted:
        results.append(debian_base(docker, tags.jre_base, JRE_PACKAGES, (), progress))
        args = {"JRE_IMAGE": tags.jre_base}
        results.append(
            docker_build(docker, tags.kafka, "Dockerfile", kafka_members(progress), args, progress)
        )
    if "worker" in wanted:
        results.append(
            debian_base(docker, tags.python_base, PYTHON_PACKAGES, _PYTHON_BASE_ENV, progress)
        )
        args = {"PYTHON_IMAGE": tags.python_base}
        results.append(
            docker_build(
                docker, tags.worker, "deploy/worker.Dockerfile", worker_members(), args, progress
            )
        )
    if not all(r.reused for r in results):
        # Replaced builds stay as untagged images, each a full copy on vfs: drop ours.
        docker.run(["image", "prune", "-f", "--filter", f"label={HASH_LABEL}"], check=False)
    return results
