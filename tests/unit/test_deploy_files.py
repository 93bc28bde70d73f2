"""Static checks of deploy/: no Docker engine or Kubernetes cluster here, so the compose file,
the manifests and the cluster configuration are checked for what can go wrong without one:
parsing, references between files, pinned images, the ${VAR}s the bindings need, and
commands the CLI accepts."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
import pytest
import yaml

from restate_stream.bindings import BindingsError, BindingsFile, parse_bindings
from restate_stream.cli.app import ParsedCommand, parse_command_line

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "kubernetes"
CLUSTER = DEPLOY / "restate-cluster"

YAML_FILES = sorted(p for ext in ("yml", "yaml") for p in DEPLOY.rglob(f"*.{ext}"))
# ${VAR} or ${VAR:-default}, as restate_stream.bindings.loader reads them.
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
# $(VAR) in a Kubernetes env value refers to an earlier variable of the same container.
K8S_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def k8s_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    return objects


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def workloads() -> list[dict[str, Any]]:
    return [o for o in k8s_objects() if o["kind"] in ("Deployment", "Job")]


def image_pinned(image: str) -> bool:
    """A tag naming a version (or a digest), never an implicit or floating `latest`."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and any(c.isdigit() for c in tag)


def container_env(container: dict[str, Any], secret_values: dict[str, str]) -> dict[str, str]:
    """The environment Kubernetes gives `container`: values, $(VAR) expansion, refs."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        source = item.get("valueFrom")
        if source is None:
            value = K8S_REFERENCE.sub(lambda m: env.get(m[1], m[0]), item["value"])
        elif "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.namespace", item
            value = "apps"  # the namespace the manifests are applied in
        else:
            ref = source["secretKeyRef"]
            value = secret_values[f"{ref['name']}/{ref['key']}"]
        env[item["name"]] = value
    return env


def secret_values() -> dict[str, str]:
    return {
        f"{o['metadata']['name']}/{key}": value
        for o in k8s_objects()
        if o["kind"] == "Secret"
        for key, value in o.get("stringData", {}).items()
    }


def parse_cli(argv: list[str]) -> ParsedCommand:
    assert argv[0] == "restate-stream", argv
    try:
        return parse_command_line(argv[1:])
    except click.UsageError as exc:
        raise AssertionError(f"the CLI rejects {shlex.join(argv)}: {exc}") from exc


# --- every file -----------------------------------------------------------------------------


def test_deploy_has_yaml_files() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in YAML_FILES}
    assert {"docker-compose.yml", "kubernetes/worker.yaml", "kubernetes/configmap.yaml"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_yaml_parses(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert documents, f"{path} holds no YAML document"
    assert all(isinstance(d, dict) for d in documents)


# --- docker compose ---------------------------------------------------------------------------


def test_compose_services_and_images() -> None:
    services = load_compose()["services"]
    assert set(services) == {"kafka", "restate", "worker", "apply", "directory"}
    assert services["restate"]["image"] == "restatedev/restate:1.7.12"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    for name, service in services.items():
        assert image_pinned(service["image"]), f"{name}: {service['image']} is not pinned"


def test_compose_references_existing_files() -> None:
    for name, service in load_compose()["services"].items():
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).resolve().is_file(), f"{name}: {source} is missing"


def test_worker_image_is_pinned_and_copies_what_exists() -> None:
    dockerfile = (DEPLOY / "worker.Dockerfile").read_text()
    # The base is a build arg (local builds pass their own); its default is the official image.
    assert re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE) == ["${PYTHON_IMAGE}"]
    (base,) = re.findall(r"^ARG\s+PYTHON_IMAGE=(\S+)", dockerfile, re.MULTILINE)
    assert base.startswith("python:3.11") and image_pinned(base)
    for line in re.findall(r"^COPY\s+(.+)$", dockerfile, re.MULTILINE):
        *sources, _ = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the build context"


def test_compose_waits_for_healthy_dependencies() -> None:
    services = load_compose()["services"]
    for name in ("kafka", "restate", "worker"):
        assert "test" in services[name]["healthcheck"], name
    for name in ("worker", "apply"):
        for dependency, condition in services[name]["depends_on"].items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
    assert set(services["apply"]["depends_on"]) == {"kafka", "restate", "worker"}
    assert services["apply"]["restart"] == "no"
    # The restaurant directory is published once the bindings (its table) are applied.
    assert services["directory"]["depends_on"] == {
        "apply": {"condition": "service_completed_successfully"}
    }
    assert services["directory"]["restart"] == "no"


def test_compose_env_resolves_the_bindings_to_compose_services() -> None:
    services = load_compose()["services"]
    for name in ("worker", "apply"):
        service = services[name]
        (mount,) = [v for v in service["volumes"] if v.split(":")[1] == "/app/bindings.yaml"]
        path = (DEPLOY / mount.split(":")[0]).resolve()
        text = path.read_text()
        env = {k: str(v) for k, v in service["environment"].items()}
        # Loopback defaults would point inside the container: every variable without a
        # default or with an address for one (not the window sizes, 1m...) is set.
        addresses = {m[1] for m in REFERENCE.finditer(text) if not m[2] or "127.0.0.1" in m[2]}
        assert addresses and addresses <= set(env), name
        spec = parse_bindings(text, path, env)
        hosts = {
            urlparse(spec.restate.admin_url).hostname,
            urlparse(spec.restate.ingress_url).hostname,
            spec.clusters["local"].properties["bootstrap.servers"].split(":")[0],
        }
        assert spec.worker is not None
        hosts.add(urlparse(spec.worker.uri).hostname)
        assert hosts <= set(services), f"{name}: {hosts} are not all compose services"


def test_compose_and_dockerfile_commands_match_the_cli() -> None:
    services = load_compose()["services"]
    worker = parse_cli(services["worker"]["command"])
    assert (worker.path, worker.params["file"], worker.params["host"]) == (
        ("worker",),
        Path("/app/bindings.yaml"),
        "0.0.0.0",
    )
    apply = parse_cli(services["apply"]["command"])
    assert (apply.path, apply.params["file"]) == (("apply",), Path("/app/bindings.yaml"))
    (cmd,) = re.findall(r"^CMD\s+(\[.*\])$", (DEPLOY / "worker.Dockerfile").read_text(), re.M)
    # The image alone refuses to serve off loopback without identity keys; the compose demo,
    # whose worker port is not published, says --insecure.
    assert [*json.loads(cmd), "--insecure"] == services["worker"]["command"]
    assert not parse_cli(json.loads(cmd)).params["insecure"]


def test_compose_publishes_ports_on_the_hosts_loopback_only() -> None:
    """Restate's admin API registers deployments and invokes anything; Kafka has no auth."""
    for name, service in load_compose()["services"].items():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), f"{name} publishes {mapping} everywhere"
    assert "ports" not in load_compose()["services"]["worker"]


# --- kubernetes -------------------------------------------------------------------------------


def test_k8s_objects_are_complete() -> None:
    objects = k8s_objects()
    assert {o["kind"] for o in objects} == {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "Job",
        "NetworkPolicy",
    }
    for obj in objects:
        assert obj.get("apiVersion") and obj.get("kind"), obj
        assert obj.get("metadata", {}).get("name"), obj


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_k8s_references_resolve() -> None:
    names = {(o["kind"], o["metadata"]["name"]) for o in k8s_objects()}
    for workload in workloads():
        spec = pod_spec(workload)
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
        for container in spec["containers"]:
            assert image_pinned(container["image"]), container["image"]
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in spec.get("volumes", [])}
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ("Secret", ref["name"]) in names
                    assert f"{ref['name']}/{ref['key']}" in secret_values()


def test_worker_service_and_probes() -> None:
    deployment = k8s_object("Deployment", "restate-stream-worker")
    service = k8s_object("Service", "restate-stream-worker")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = pod_spec(deployment)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in ports and port["appProtocol"] == "kubernetes.io/h2c"
    # Restate speaks prior-knowledge HTTP/2: readiness is a TCP check, not an HTTP/1.1 GET.
    assert container["readinessProbe"]["tcpSocket"]["port"] == port["targetPort"]


def test_k8s_commands_match_the_cli() -> None:
    commands = {}
    for workload in workloads():
        (container,) = pod_spec(workload)["containers"]
        if container["command"][0] != "restate-stream":
            continue  # the example's directory: test_k8s_publishes_the_directory_as_compose_does
        args = parse_cli(container["command"])
        mounted = {m["mountPath"] for m in container["volumeMounts"]}
        file = args.params["file"]
        assert str(file) in mounted, f"{workload['metadata']['name']} reads {file}"
        commands[workload["metadata"]["name"]] = args.path
    assert commands == {"restate-stream-worker": ("worker",), "restate-stream-apply": ("apply",)}


def test_k8s_publishes_the_directory_as_compose_does() -> None:
    """The food-ordering example's restaurants: compose's one-shot `directory` service, a Job
    here, running the same module with the ConfigMap's bindings where the module reads them."""
    compose = yaml.safe_load(COMPOSE.read_text())
    job = k8s_object("Job", "restate-stream-directory")
    (container,) = pod_spec(job)["containers"]
    assert container["command"] == compose["services"]["directory"]["command"]
    assert container["command"][:2] == ["python", "-m"]
    module = REPO.joinpath(*container["command"][2].split(".")).with_suffix(".py")
    assert module.is_file(), module
    apply = k8s_object("Job", "restate-stream-apply")
    (apply_container,) = pod_spec(apply)["containers"]
    assert container["image"] == apply_container["image"]
    read_at = "/app/" + (module.parent / "bindings.yaml").relative_to(REPO).as_posix()
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    assert volumes[mounts[read_at]]["configMap"]["name"] == "restate-stream-bindings"
    # The ConfigMap's cluster takes SASL credentials: the Job has them as apply does.
    assert container["env"] == apply_container["env"]
    # No ordering between Jobs: it retries until apply has made what it publishes into.
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert job["spec"]["backoffLimit"] >= apply["spec"]["backoffLimit"]


def configmap_bindings(env: dict[str, str]) -> BindingsFile:
    text = k8s_object("ConfigMap", "restate-stream-bindings")["data"]["bindings.yaml"]
    return parse_bindings(text, Path("/app/bindings.yaml"), env)


def test_configmap_bindings_load_with_the_manifests_env() -> None:
    text = k8s_object("ConfigMap", "restate-stream-bindings")["data"]["bindings.yaml"]
    required = {m[1] for m in REFERENCE.finditer(text) if m[2] is None}
    assert required, "the ConfigMap takes SASL credentials and the worker URI from the env"
    for workload in workloads():
        (container,) = pod_spec(workload)["containers"]
        env = container_env(container, secret_values())
        missing = required - set(env)
        assert not missing, f"{workload['metadata']['name']} does not set {sorted(missing)}"
        spec = configmap_bindings(env)  # raises BindingsError naming any problem
        assert spec.worker is not None
        service = k8s_object("Service", "restate-stream-worker")
        assert spec.worker.uri == (
            f"http://{service['metadata']['name']}.apps.svc.cluster.local:"
            f"{service['spec']['ports'][0]['port']}"
        )
        properties = spec.clusters["local"].properties
        assert properties["sasl.username"] == "restate-stream"
        # Restate and Kafka are provided: reached through in-cluster Service DNS names.
        for url in (spec.restate.admin_url, spec.restate.ingress_url):
            assert str(urlparse(url).hostname).endswith(".svc.cluster.local"), url
        assert properties["bootstrap.servers"].split(":")[0].endswith(".svc.cluster.local")


def test_the_k8s_worker_checks_restates_signature() -> None:
    """Off loopback, the worker serves only requests its Restate signed: the bindings carry a
    key (a placeholder the worker refuses until replaced), and no --insecure."""
    from restate_stream.runtime._sdk import IdentityKeyError, identity_verifier

    deployment = k8s_object("Deployment", "restate-stream-worker")
    (container,) = pod_spec(deployment)["containers"]
    args = parse_cli(container["command"])
    assert args.params["host"] == "0.0.0.0" and not args.params["insecure"]
    spec = configmap_bindings(container_env(container, secret_values()))
    assert spec.worker is not None and len(spec.worker.identity_keys) == 1
    with pytest.raises(IdentityKeyError, match=r"worker\.identity_keys\[0\]"):
        identity_verifier(spec.worker.identity_keys)  # fails closed until replaced


def test_only_restates_namespace_reaches_the_worker() -> None:
    policy = k8s_object("NetworkPolicy", "restate-stream-worker")["spec"]
    deployment = k8s_object("Deployment", "restate-stream-worker")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    (peer,) = rule["from"]
    restate_namespace = {"kubernetes.io/metadata.name": "restate"}
    assert peer == {"namespaceSelector": {"matchLabels": restate_namespace}}
    (port,) = rule["ports"]
    (container,) = pod_spec(deployment)["containers"]
    assert port["port"] in {p["name"] for p in container["ports"]}
    # The bindings reach Restate in that namespace.
    spec = configmap_bindings(container_env(container, secret_values()))
    assert str(urlparse(spec.restate.admin_url).hostname).split(".")[1] == "restate"


def test_configmap_bindings_fail_without_the_secret() -> None:
    with pytest.raises(BindingsError, match="KAFKA_SASL_PASSWORD"):
        configmap_bindings({"WORKER_URI": "http://w:9080", "KAFKA_SASL_USERNAME": "u"})


# --- restate cluster --------------------------------------------------------------------------


def node_env(index: int) -> dict[str, str]:
    env = {}
    for line in (CLUSTER / f"node-{index}.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def test_cluster_config_and_nodes_agree() -> None:
    config = tomllib.loads((CLUSTER / "restate.toml").read_text())
    assert config["default-replication"] == 2
    assert config["auto-provision"] is False
    assert config["bifrost"]["default-provider"] == "replicated"
    assert {"metadata-server", "log-server", "worker", "admin"} <= set(config["roles"])
    nodes = [node_env(i) for i in (1, 2, 3)]
    assert len({n["RESTATE_NODE_NAME"] for n in nodes}) == 3
    assert [n["RESTATE_FORCE_NODE_ID"] for n in nodes] == ["1", "2", "3"]
    # At most one node may provision, and without one nobody does.
    assert [n.get("RESTATE_AUTO_PROVISION") for n in nodes] == ["true", None, None]
    addresses = [n["RESTATE_ADVERTISED_ADDRESS"] for n in nodes]
    assert config["metadata-client"]["addresses"] == addresses
    for node in nodes:
        assert all(key.startswith("RESTATE_") for key in node)


def test_run_local_script_is_valid_bash() -> None:
    script = CLUSTER / "run-local.sh"
    assert script.stat().st_mode & 0o111, "run-local.sh is not executable"
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_restate_reaches_nothing_outside_in_compose_and_cluster() -> None:
    # restate-server's GitHub release check has no switch: its names resolve to loopback.
    restate = load_compose()["services"]["restate"]
    assert {"api.github.com:127.0.0.1", "uploads.github.com:127.0.0.1"} <= set(
        restate["extra_hosts"]
    )
    assert restate["environment"]["RESTATE_DISABLE_TELEMETRY"] == "true"
    assert tomllib.loads((CLUSTER / "restate.toml").read_text())["disable-telemetry"] is True
    script = (CLUSTER / "run-local.sh").read_text()
    assert "127.0.0.1 api.github.com" in script and "RESTATE_DISABLE_TELEMETRY=true" in script


def test_the_grafana_dashboard_uses_only_metrics_the_project_exports() -> None:
    import json
    import re

    from restate_stream.telemetry.metrics import METRICS, PROCESS_METRICS
    from restate_stream.telemetry.status_metrics import STATUS_METRICS

    dashboard = json.loads((DEPLOY / "grafana" / "restate-stream-dashboard.json").read_text())
    exported = {*METRICS, *PROCESS_METRICS, *STATUS_METRICS}
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"restate_stream_[a-z_]+", target["expr"]))
    base = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert base <= exported, f"not exported: {sorted(base - exported)}"
    assert len(dashboard["panels"]) >= 8
