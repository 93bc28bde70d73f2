"""Secrets stay secret, end to end: a canary password that the Kafka broker really requires
(SASL/PLAIN) and a canary Schema Registry password (basic auth) are passed the way users pass
them, `${VAR}` in the bindings file. Everything a user runs and reads is collected: validate,
plan, apply, status (text and JSON), publish, tail, dlq list, the dashboard's pages, the
worker's log (JSON lines), its /metrics, the status exporter, the traces it exports (raw OTLP
bytes), the dead letters' raw records, and Restate's answer for the cluster. Records are
applied and dead-lettered (so both secrets did authenticate) and neither canary appears in any
of those outputs.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.avro import AvroCodec
from connectors.consume import end_offsets
from restate_stream._util.ports import LOOPBACK, free_ports, wait_until_listening
from restate_stream.control.admin import AdminClient
from restate_stream.stack.install import kafka_install
from restate_stream.stack.kafka import KafkaBroker, KafkaPorts, SaslPlainListener
from restate_stream.testing import (
    CLI,
    SchemaRegistryStub,
    drop_cluster,
    object_state,
    run_cli,
    wait_until,
)
from restate_stream.testing.stacks import EngineStack

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).parent / "schemas" / "payment.avsc"
KAFKA_USER, REGISTRY_USER = "app", "registry-user"


class OtlpSink(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that keeps the raw bytes of every export."""

    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        OtlpSink.received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def sasl_broker(
    restate_stream_stack: EngineStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[KafkaBroker, str]]:
    """A broker of its own (the session's has no SASL listener) whose SASL_PLAINTEXT listener
    admits KAFKA_USER with a canary password; its PLAINTEXT listener serves the test's checks.
    Depends on the session stack, which installs the engines first."""
    password = f"canary-{uuid.uuid4().hex}"
    broker_port, controller_port, sasl_port = free_ports(3)
    broker = KafkaBroker(
        kafka_install(),
        tmp_path_factory.mktemp("sasl-kafka"),
        KafkaPorts(broker_port, controller_port),
        heap="512m",
        sasl=SaslPlainListener(sasl_port, {KAFKA_USER: password}),
    )
    try:
        broker.start()
        yield broker, password
    finally:
        broker.stop()


def raw_records(bootstrap: str, topic: str) -> list[bytes]:
    """Key, value and headers of every record of `topic`, as raw bytes."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}  # fmt: skip
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out: list[bytes] = []
        want = sum(ends.values())
        while len(out) < want:
            message = consumer.poll(5.0)
            if message is None or message.error() is not None:
                continue
            headers = b"".join(k.encode() + (v or b"") for k, v in message.headers() or [])
            out.append((message.key() or b"") + (message.value() or b"") + headers)
        return out
    finally:
        consumer.close()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=10) as response:
        text: str = response.read().decode()
    return text


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def cli(
    outputs: dict[str, str],
    name: str,
    *args: str,
    env: dict[str, str],
    ok: bool = True,
    data: bool = False,
) -> str:
    """Run the CLI as a user does; keep all it printed under `name`. Returns that, or with
    `data` its stdout alone: the place of a `--json` answer, while stderr carries logs (a
    librdkafka line on a slow broker connection, say)."""
    result = run_cli(*args, cwd=REPO, env=env)
    text = result.stdout + result.stderr
    outputs[name] = text
    if ok:
        assert result.returncode == 0, f"`{' '.join(args)}` failed:\n{text}"
    return result.stdout if data else text


async def test_secrets_appear_in_no_output(
    restate_stream_stack: EngineStack,
    restate_admin: AdminClient,
    sasl_broker: tuple[KafkaBroker, str],
    tmp_path: Path,
) -> None:
    stack = restate_stream_stack
    broker, kafka_password = sasl_broker
    registry_password = f"canary-{uuid.uuid4().hex}"
    canaries = {"Kafka sasl.password": kafka_password, "registry password": registry_password}
    writer = json.loads(SCHEMA.read_text())
    registry = SchemaRegistryStub({42: writer}, auth=(REGISTRY_USER, registry_password))
    registry.start()
    sink = ThreadingHTTPServer((LOOPBACK, 0), OtlpSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()

    run = uuid.uuid4().hex[:8]
    cluster, orders, payments = f"s-{run}", f"orders-{run}", f"payments-{run}"
    worker_port, metrics_port, exporter_port, ui_port = free_ports(4)
    registry_url = registry.url.replace(
        "http://", f"http://{REGISTRY_USER}:${{REGISTRY_PASSWORD}}@"
    )
    worker_uri = f"http://127.0.0.1:{worker_port}"
    path = tmp_path / "bindings.yaml"
    path.write_text(
        f"""\
restate: {{admin_url: "{stack.admin_url}", ingress_url: "{stack.ingress_url}"}}
kafka:
  clusters:
    {cluster}:
      bootstrap.servers: "{broker.sasl_bootstrap_servers}"
      security.protocol: SASL_PLAINTEXT
      sasl.mechanism: PLAIN
      sasl.username: {KAFKA_USER}
      sasl.password: ${{KAFKA_PASSWORD}}
topics:
  {orders}: {{partitions: 2}}
  {payments}: {{partitions: 1}}
worker:
  app: tests.integration.secrets_app:app
  uri: {worker_uri}
  metrics_port: {metrics_port}
  log_format: json
bindings:
  - {{name: {orders}, topic: {orders}, handler: PoisonSink/consume, dead_letter: {orders}.dlq}}
  - name: {payments}
    topic: {payments}
    handler: FormatSink/avro_confluent
    format: avro
    avro_wire: confluent
    schema: {SCHEMA}
    schema_registry: "{registry_url}"
    dead_letter: {payments}.dlq
"""
    )
    env = {
        "KAFKA_PASSWORD": kafka_password,
        "REGISTRY_PASSWORD": registry_password,
    }
    outputs: dict[str, str] = {}
    raw: dict[str, bytes] = {}
    f = str(path)

    # The negative control first: a wrong password fails readably, and is not echoed either.
    wrong = f"wrong-{uuid.uuid4().hex}"
    refused = cli(outputs, "plan (wrong password)", "plan", "-f", f,
                  env={**env, "KAFKA_PASSWORD": wrong}, ok=False)  # fmt: skip
    assert "authentication" in refused.lower(), refused
    # librdkafka's refused login, repeated on every retry, is said once (and once more in
    # the error that ends the command), not once a retry.
    assert refused.count("Authentication failed") <= 2, refused
    assert wrong not in refused, f"the wrong password is echoed:\n{refused}"

    worker = subprocess.Popen(
        [*CLI, "worker", "-f", f],
        cwd=REPO,
        env={
            **os.environ,
            **env,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{LOOPBACK}:{sink.server_address[1]}",
            "OTEL_SERVICE_NAME": "secrets-worker",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
        stdout=(tmp_path / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    exporter: subprocess.Popen[bytes] | None = None
    dashboard: subprocess.Popen[bytes] | None = None
    try:
        cli(outputs, "validate", "validate", "-f", f, env=env)
        planned = cli(outputs, "plan", "plan", "-f", f, env=env)
        assert f"+ kafka cluster {cluster}" in planned, planned

        async def registered() -> str:
            return (tmp_path / "worker.log").read_text()

        await wait_until(registered, lambda log: f"registered {worker_uri}" in log, timeout=120)
        cli(outputs, "apply", "apply", "-f", f, env=env)
        again = cli(outputs, "plan (applied)", "plan", "-f", f, env=env)
        assert "Restate redacts secret cluster properties" in again, again

        # Records go in through the SASL listener, as a user's `publish` sends them.
        good = [{"key": f"{run}-k{i}", "value": {"id": i, "amount": i}} for i in range(4)]
        poison = {"key": f"{run}-k0", "value_base64": base64.b64encode(b"{not json").decode()}
        (tmp_path / "orders.jsonl").write_text(jsonl([*good, poison]))
        cli(outputs, "publish orders", "publish", "-f", f, orders,
            "--records", str(tmp_path / "orders.jsonl"), env=env)  # fmt: skip
        avro = {42: AvroCodec(writer, wire="confluent", schema_id=42),
                99: AvroCodec(writer, wire="confluent", schema_id=99)}  # fmt: skip
        payment = {"id": 1, "amount_cents": 5, "currency": "EUR"}
        paid = [
            {
                "key": f"acct-{run}",
                "value_base64": base64.b64encode(avro[sid].encode(payment)).decode(),
            }
            for sid in (42, 99, 42)
        ]
        (tmp_path / "payments.jsonl").write_text(jsonl(paid))
        cli(outputs, "publish payments", "publish", "-f", f, payments, "--format", "bytes",
            "--records", str(tmp_path / "payments.jsonl"), env=env)  # fmt: skip

        async def applied() -> tuple[int, int]:
            seen = await object_state(restate_admin, "PoisonSink", "orders")
            kept = await object_state(restate_admin, "FormatSink", "avro_confluent")
            mine = sum(len(v) for k, v in seen.items() if k.startswith(run))
            return mine, len(kept.get(f"acct-{run}", []))

        await wait_until(applied, lambda n: n == (len(good), 2), timeout=120)
        bootstrap = broker.bootstrap_servers  # the PLAINTEXT listener: the test's own reads

        async def dead_letters() -> tuple[int, int]:
            ends = [sum(end_offsets(bootstrap, t).values())
                    for t in (f"{orders}.dlq", f"{payments}.dlq")]  # fmt: skip
            return ends[0], ends[1]

        await wait_until(dead_letters, lambda n: n == (1, 1), timeout=120)
        assert registry.requests.count("/schemas/ids/42") == 1 and registry.unauthorized == 0
        for topic in (f"{orders}.dlq", f"{payments}.dlq"):
            raw[f"dead letters on {topic}"] = b"\n".join(raw_records(bootstrap, topic))
        assert b"unknown schema id 99" in raw[f"dead letters on {payments}.dlq"]

        status = cli(outputs, "status", "status", "-f", f, env=env)
        assert f"1 on {orders}.dlq" in status, status
        listed = cli(outputs, "status --json", "status", "--json", "-f", f, env=env, data=True)
        assert {s["name"]: s["dead_letters"] for s in json.loads(listed)} == {
            orders: 1,
            payments: 1,
        }
        for binding in (orders, payments):
            cli(outputs, f"dlq list {binding}", "dlq", "list", binding, "-f", f, env=env)
            shown = cli(outputs, f"dlq list --json {binding}", "dlq", "list", "--json",
                        binding, "-f", f, env=env)  # fmt: skip
            assert "DecodeError" in shown, shown

        for topic in (orders, f"{orders}.dlq", f"{payments}.dlq"):
            tailed = cli(outputs, f"tail {topic}", "tail", "-f", f, topic, env=env)
            assert f"{run}-k0" in tailed or f"acct-{run}" in tailed, tailed

        outputs["worker /metrics"] = metrics = scrape(metrics_port)
        assert f'binding="{orders}"' in metrics, metrics
        exporter = subprocess.Popen(
            [*CLI, "metrics", "-f", f, "--port", str(exporter_port)],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=(tmp_path / "exporter.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert wait_until_listening(
            exporter_port, timeout=60, alive=lambda: exporter.poll() is None
        )
        outputs["status exporter /metrics"] = exported = scrape(exporter_port)
        assert "restate_stream_dead_letters" in exported, exported

        dashboard = subprocess.Popen(
            [*CLI, "ui", "-f", f, "--port", str(ui_port)],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=(tmp_path / "ui.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert wait_until_listening(ui_port, timeout=60, alive=lambda: dashboard.poll() is None)
        async with httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{ui_port}", timeout=30) as ui:
            for page in ("/", f"/bindings/{payments}", f"/topics/{payments}.dlq"):
                shown = await ui.get(page)
                assert shown.status_code == 200, f"{page}: {shown.status_code} {shown.text}"
                outputs[f"dashboard {page}"] = shown.text
        assert "unknown schema id 99" in outputs[f"dashboard /bindings/{payments}"]

        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(f"{stack.admin_url}/kafka-clusters/{cluster}")
        outputs["Restate GET /kafka-clusters"] = answer.text
        shown = answer.json()["properties"]
        assert shown["bootstrap.servers"] == broker.sasl_bootstrap_servers, shown
        assert shown["sasl.password"] == "***", shown  # Restate redacts (the username too)
    finally:
        for process in (worker, exporter, dashboard):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)
        await drop_cluster(restate_admin, cluster)
        registry.stop()
        sink.shutdown()
        sink.server_close()

    outputs["worker log"] = (tmp_path / "worker.log").read_text()
    outputs["status exporter log"] = (tmp_path / "exporter.log").read_text()
    outputs["dashboard log"] = (tmp_path / "ui.log").read_text()
    assert '"level"' in outputs["worker log"], "the worker logged JSON lines"
    raw["traces (OTLP)"] = b"".join(OtlpSink.received)
    assert f"process {orders}".encode() in raw["traces (OTLP)"], "the worker exported spans"

    leaks = [
        f"{secret} in {where}"
        for secret, value in canaries.items()
        for where, text in [*outputs.items(), *((k, v.decode("latin-1")) for k, v in raw.items())]
        if value in text
    ]
    assert not leaks, "secrets leaked: " + "; ".join(leaks)
