"""The engines in containers, for the pytest plugin's containers backend (testcontainers).

One Kafka broker and one Restate server, each a testcontainers `DockerContainer` of the image
`ImageTags` names (the local builds of `scripts/docker-engine build` by default, or e.g.
`RESTATE_STREAM_IMAGE_KAFKA=apache/kafka:4.2.0`). Nothing is pulled for the local tags: a
missing one is built from the cached engines. Containers share the host's network and bind
to free loopback ports, so tests reach them as they reach the local engines, and Restate in
its container reaches an app served in the test process on 127.0.0.1.

Ryuk (testcontainers' reaper, a container pulled from Docker Hub) is off unless
TESTCONTAINERS_RYUK_DISABLED says otherwise: where nothing can be pulled it cannot start, and
the fixture removes its containers itself, on failure too.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from connectors import KafkaUnavailableError, TopicAdmin
from restate_stream._util.poll import PollTimeout, poll
from restate_stream._util.ports import LOOPBACK, accepts_connections, ensure_free
from restate_stream.containers import EngineError, ImageTags, build_images, reachable_docker_host
from restate_stream.containers.engine import DockerCli
from restate_stream.containers.images import image_hash
from restate_stream.errors import LocalStackError
from restate_stream.stack import StackPorts

try:
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer
except ImportError as exc:  # the `test` extra brings it
    raise ImportError(
        "the containers backend needs testcontainers: pip install 'restate-stream[test]' "
        f"(or `pip install testcontainers`); {exc}"
    ) from exc

Progress = Callable[[str], None]
RYUK_ENV = "TESTCONTAINERS_RYUK_DISABLED"
NO_ENGINE = (
    "the containers backend needs a Docker engine and none answers (tried $DOCKER_HOST, else "
    "the project's own socket and /var/run/docker.sock): as root on Debian, "
    "`.venv/bin/python scripts/docker-engine start`, or point DOCKER_HOST at an engine; "
    "or run on the local engines (--restate-stream-backend=local)"
)
# restate-server asks api.github.com for its latest release on every start, with no switch
# to stop it (stack/offline.py): in the container these names are its own loopback.
_GITHUB_ON_LOOPBACK = {"api.github.com": LOOPBACK, "uploads.github.com": LOOPBACK}


class ContainerStackError(LocalStackError, RuntimeError):
    pass


def _cluster_id() -> str:
    # Kafka's format: 16 random bytes, URL-safe base64 without padding, not starting with '-'.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def kafka_environment(ports: StackPorts, cluster_id: str) -> dict[str, str]:
    """A whole KRaft single-node configuration, as apache/kafka reads it (it replaces its
    defaults once any KAFKA_* variable is set; the local image merges them onto its own)."""
    return {
        "CLUSTER_ID": cluster_id,
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": (
            f"PLAINTEXT://{LOOPBACK}:{ports.kafka},CONTROLLER://{LOOPBACK}:{ports.kafka_controller}"
        ),
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{LOOPBACK}:{ports.kafka}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@{LOOPBACK}:{ports.kafka_controller}",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_NUM_PARTITIONS": "1",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "true",
    }


def restate_environment(ports: StackPorts) -> dict[str, str]:
    """The local stack's server settings (stack/restate.py), on the container's ports."""
    return {
        "RESTATE_BIND_IP": LOOPBACK,
        "RESTATE_LISTEN_MODE": "tcp",
        "RESTATE_INGRESS__BIND_PORT": str(ports.ingress),
        "RESTATE_ADMIN__BIND_PORT": str(ports.admin),
        "RESTATE_BIND_PORT": str(ports.fabric),
        "RESTATE_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "RESTATE_LOG_DISABLE_ANSI_CODES": "true",
        "RESTATE_LOG_FORMAT": "compact",
        # The release check's refused connection is expected: not an ERROR on every start.
        "RESTATE_LOG_FILTER": "warn,restate=info,octocrab=off",
    }


class ContainerStack:
    """Kafka and Restate in containers on free loopback ports; `start()` then `stop()`."""

    def __init__(
        self,
        ports: StackPorts | None = None,
        tags: ImageTags | None = None,
        docker_host: str | None = None,
    ) -> None:
        self.ports = ports or StackPorts.free()
        self.tags = tags or ImageTags.from_env()
        self.docker_host = docker_host
        # Names say whose containers these are: `docker ps -a --filter name=restate-stream-`.
        self.name = f"restate-stream-test-{uuid.uuid4().hex[:8]}"
        self.kafka: DockerContainer | None = None
        self.restate: DockerContainer | None = None
        self._saved_docker_host: str | None = None
        self._set_docker_host = False

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.ports.kafka}"

    @property
    def admin_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.admin}"

    @property
    def ingress_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.ingress}"

    @property
    def container_names(self) -> list[str]:
        return [f"{self.name}-kafka", f"{self.name}-restate"]

    # --- starting ------------------------------------------------------------------------

    def start(self, progress: Progress = print) -> None:
        """Find the engine, make sure the images exist, start Kafka then Restate, each until
        it serves; on any failure remove what started."""
        host = self.docker_host or reachable_docker_host()
        if host is None:
            raise ContainerStackError(NO_ENGINE)
        self.docker_host = host
        self._use_engine(host)
        self._ensure_images(host, progress)
        ensure_free(self.ports.by_purpose())
        progress(
            "ports: "
            + ", ".join(f"{purpose} {port}" for purpose, port in self.ports.by_purpose().items())
        )
        try:
            self.kafka = self._start_kafka(progress)
            self.restate = self._start_restate(progress)
        except BaseException:
            self.stop()
            raise

    def _use_engine(self, host: str) -> None:
        # testcontainers finds the engine through DOCKER_HOST only (and a wrong guess at a
        # network otherwise): set for the stack's lifetime, restored by stop().
        if os.environ.get("DOCKER_HOST") != host:
            self._saved_docker_host = os.environ.get("DOCKER_HOST")
            self._set_docker_host = True
            os.environ["DOCKER_HOST"] = host
        if RYUK_ENV not in os.environ:
            testcontainers_config.ryuk_disabled = True

    def _ensure_images(self, host: str, progress: Progress) -> None:
        """Build a missing image of the project's local tags; other tags are the user's
        (e.g. the official images), which testcontainers pulls if missing."""
        try:
            docker = DockerCli(host)
        except EngineError as exc:
            raise ContainerStackError(str(exc)) from None
        local = ImageTags()
        for which, tag, default in (
            ("kafka", self.tags.kafka, local.kafka),
            ("restate", self.tags.restate, local.restate),
        ):
            if tag == default and image_hash(docker, tag) is None:
                progress(f"{which}: image {tag} is missing, building it from the cached engines")
                for result in build_images(host, self.tags, which=[which], progress=progress):
                    progress(str(result))

    def _container(self, image: str, name: str, env: dict[str, str], **kwargs: Any) -> Any:
        container = DockerContainer(image, name=name, network_mode="host", **kwargs)
        return container.with_envs(**env)

    def _start_kafka(self, progress: Progress) -> DockerContainer:
        name = f"{self.name}-kafka"
        progress(f"kafka: container {name} ({self.tags.kafka}) on {self.bootstrap_servers}")
        container: DockerContainer = self._container(
            self.tags.kafka, name, kafka_environment(self.ports, _cluster_id())
        )
        self.kafka = container  # stop() removes it even if start() fails half-way
        container.start()
        admin: TopicAdmin | None = None

        def ready() -> bool:
            nonlocal admin
            self._require_running(container, "kafka")
            # A client made before the port opens lingers, logging refused connections.
            if not accepts_connections(self.ports.kafka):
                return False
            admin = admin or TopicAdmin(
                {"bootstrap.servers": self.bootstrap_servers, "reconnect.backoff.max.ms": "500"}
            )
            return admin.broker_count(timeout=2.0) > 0

        self._wait(ready, container, "kafka", f"Kafka at {self.bootstrap_servers} to serve", 120)
        progress(f"kafka: ready ({name})")
        return container

    def _start_restate(self, progress: Progress) -> DockerContainer:
        name = f"{self.name}-restate"
        progress(f"restate: container {name} ({self.tags.restate}), admin {self.admin_url}")
        container: DockerContainer = self._container(
            self.tags.restate,
            name,
            restate_environment(self.ports),
            extra_hosts=_GITHUB_ON_LOOPBACK,
        )
        container.with_command(["--no-logo", "--node-name", "restate-stream-test"])
        self.restate = container
        container.start()

        def healthy() -> bool:
            self._require_running(container, "restate")
            try:
                admin = httpx.get(f"{self.admin_url}/health", timeout=1.0)
                ingress = httpx.get(f"{self.ingress_url}/restate/health", timeout=1.0)
            except httpx.HTTPError:
                return False
            return admin.status_code == 200 and ingress.status_code == 200

        self._wait(healthy, container, "restate", f"Restate at {self.admin_url} to be healthy", 90)
        progress(f"restate: ready ({name})")
        return container

    def _require_running(self, container: DockerContainer, what: str) -> None:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status in ("exited", "dead"):
            code = wrapped.attrs.get("State", {}).get("ExitCode")
            raise ContainerStackError(
                f"the {what} container {wrapped.name} ({container.image}) exited with code "
                f"{code} while starting; its last lines:\n{self._tail(container)}"
            )

    def _wait(
        self,
        ready: Callable[[], bool],
        container: DockerContainer,
        what: str,
        description: str,
        timeout: float,
    ) -> None:
        try:
            poll(ready, what=description, timeout=timeout, retry_on=(KafkaUnavailableError,))
        except PollTimeout as exc:
            raise ContainerStackError(
                f"{exc}; last lines of the {what} container:\n{self._tail(container)}"
            ) from None

    # --- logs and stopping -----------------------------------------------------------------

    @staticmethod
    def _tail(container: DockerContainer, lines: int = 60) -> str:
        try:
            logs: bytes = container.get_wrapped_container().logs(tail=lines)
        except Exception as exc:  # a removed container, an engine gone: say so in the report
            return f"(no logs: {exc})"
        return logs.decode(errors="replace").rstrip()

    def logs_tail(self, lines: int = 60) -> str:
        parts = []
        for what, container in (("kafka", self.kafka), ("restate", self.restate)):
            if container is not None:
                parts.append(
                    f"--- {what} container {self.name}-{what} ({container.image}) ---\n"
                    + self._tail(container, lines)
                )
        return "\n".join(parts)

    def stop(self) -> None:
        """Remove both containers (Restate first: it consumes from Kafka); errors of one
        removal do not keep the other container alive."""
        errors: list[str] = []
        for attr in ("restate", "kafka"):
            container: DockerContainer | None = getattr(self, attr)
            if container is None:
                continue
            setattr(self, attr, None)
            try:
                container.stop()
            except Exception as exc:
                errors.append(f"{attr} container {self.name}-{attr}: {exc}")
        if self._set_docker_host:
            if self._saved_docker_host is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = self._saved_docker_host
            self._set_docker_host = False
        if errors:
            raise ContainerStackError("removing containers failed: " + "; ".join(errors))
