"""One Apache Kafka broker in KRaft combined mode (broker + controller), run from Maven jars."""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from connectors import KafkaUnavailableError, TopicAdmin
from restate_stream._util.poll import PollTimeout, poll
from restate_stream._util.ports import LOOPBACK, accepts_connections
from restate_stream._util.process import ManagedProcess, tail
from restate_stream.errors import LocalStackError
from restate_stream.stack.install import KafkaInstall, require_java

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.kafkaapis.name = org.apache.kafka.server.metrics
logger.kafkaapis.level = WARN
"""


class KafkaStartError(LocalStackError, RuntimeError):
    pass


@dataclass(frozen=True)
class KafkaPorts:
    broker: int = 9092
    controller: int = 9093


@dataclass(frozen=True)
class SaslPlainListener:
    """A SASL_PLAINTEXT listener (mechanism PLAIN) beside the PLAINTEXT one: clients there
    must log in as one of `users` (name -> password). The broker's own traffic (inter-broker,
    readiness, the controller) stays on PLAINTEXT. Off by default; tests turn it on."""

    port: int
    users: Mapping[str, str] = field(default_factory=dict)

    def properties(self) -> str:
        for name, password in self.users.items():
            # Both would need escaping twice (properties file, then JAAS): not worth it here.
            if any(c in name + password for c in '"\\\n') or not name.isidentifier():
                raise KafkaStartError(
                    f"SASL user {name!r}: expected a name of letters, digits and '_' and a "
                    "password without quotes, backslashes or newlines"
                )
        users = " ".join(f'user_{name}="{pw}"' for name, pw in self.users.items())
        return (
            "sasl.enabled.mechanisms=PLAIN\n"
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN\n"
            "listener.name.sasl_plaintext.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};\n"
        )


def _cluster_id() -> str:
    # Kafka's own format: 16 random bytes, URL-safe base64 without padding, not starting with '-'.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def server_properties(
    data_dir: Path, ports: KafkaPorts, sasl: SaslPlainListener | None = None
) -> str:
    listeners = f"PLAINTEXT://{LOOPBACK}:{ports.broker}"
    protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if sasl is not None:
        listeners += f",SASL_PLAINTEXT://{LOOPBACK}:{sasl.port}"
        protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
    # Static voters (not --standalone) so a data dir survives a change of controller port.
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{LOOPBACK}:{ports.controller}
listeners={listeners},CONTROLLER://{LOOPBACK}:{ports.controller}
advertised.listeners={listeners}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map={protocols}
{sasl.properties() if sasl is not None else ""}\
log.dirs={data_dir / "data"}
num.partitions=1
auto.create.topics.enable=true
# A single node cannot satisfy the defaults of 3 replicas / min ISR 2.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# 128 MiB by default, on a 768 MiB heap.
log.cleaner.dedupe.buffer.size=4194304
"""


class KafkaBroker:
    def __init__(
        self,
        install: KafkaInstall,
        data_dir: Path,
        ports: KafkaPorts | None = None,
        heap: str = "768m",
        launch_prefix: Sequence[str] = (),
        sasl: SaslPlainListener | None = None,
    ) -> None:
        self.install = install
        self.sasl = sasl
        self.data_dir = data_dir
        self.ports = ports or KafkaPorts()
        self.heap = heap
        self.log_path = data_dir / "kafka.log"
        # Run ahead of the broker's JVM (not the storage format), e.g. a tracer in tests.
        self.launch_prefix = list(launch_prefix)
        self.process: ManagedProcess | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.ports.broker}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        """The SASL_PLAINTEXT listener's address (a broker started with `sasl`)."""
        if self.sasl is None:
            raise KafkaStartError("this broker has no SASL listener (start it with sasl=...)")
        return f"{LOOPBACK}:{self.sasl.port}"

    @property
    def _properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    def runs_as(self, argv: Sequence[str]) -> bool:
        """`argv` is this broker's JVM (whole arguments: the main class and its properties)."""
        return "kafka.Kafka" in argv and str(self._properties_path) in argv

    def _java_argv(self, java: str, main_class: str, *args: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            "-cp",
            self.install.classpath,
            main_class,
            *args,
        ]

    def prepare(self, java: str) -> None:
        """Write the configs and format the storage once (KRaft refuses an unformatted dir)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._properties_path.write_text(server_properties(self.data_dir, self.ports, self.sasl))
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2)
        if (self.data_dir / "data" / "meta.properties").exists():
            return
        argv = self._java_argv(
            java,
            "kafka.tools.StorageTool",
            "format",
            "-c",
            str(self._properties_path),
            "-t",
            _cluster_id(),
            "-g",
        )
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KafkaStartError(
                f"formatting Kafka storage in {self.data_dir / 'data'} failed "
                f"(exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def start(self, *, detached: bool = False, timeout: float = 90.0) -> None:
        java = require_java()  # each check starts a JVM: once per start
        self.prepare(java)
        self.process = ManagedProcess(
            "kafka",
            [
                *self.launch_prefix,
                *self._java_argv(java, "kafka.Kafka", str(self._properties_path)),
            ],
            self.log_path,
            cwd=self.data_dir,
        )
        self.process.start(detached=detached)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        admin: TopicAdmin | None = None  # one client, made once the port is open

        def ready() -> bool:
            nonlocal admin
            if self.process is not None and not self.process.running():
                raise KafkaStartError(
                    f"the Kafka broker exited with code {self.process.returncode} while starting; "
                    f"last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            # A client made before the port opens lingers, logging refused connections.
            if not accepts_connections(self.ports.broker):
                return False
            # Reconnect backoff kept short: librdkafka's default grows to 10 s between tries.
            admin = admin or TopicAdmin(
                {"bootstrap.servers": self.bootstrap_servers, "reconnect.backoff.max.ms": "500"}
            )
            return admin.broker_count(timeout=min(2.0, timeout)) > 0

        try:
            poll(ready, what="Kafka readiness", timeout=timeout, retry_on=(KafkaUnavailableError,))
        except PollTimeout as exc:
            raise KafkaStartError(
                f"the Kafka broker at {self.bootstrap_servers} was not ready within "
                f"{timeout:.0f}s (last: {exc.last}); last lines of {self.log_path}:\n"
                f"{tail(self.log_path)}"
            ) from None

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)
