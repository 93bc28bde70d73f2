"""The pytest plugin's containers backend: the first-event and dead-letter tests, unchanged,
run on Kafka and Restate in containers (`--restate-stream-backend=containers`), in a pytest
subprocess; a failing test gets both containers' log tails; the containers are gone after the
session, and after a start that fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from restate_stream.containers import ImageTags
from restate_stream.containers.engine import DockerCli
from restate_stream.testing.containers import ContainerStack, ContainerStackError
from tests.containers import backend_failing_case

pytestmark = pytest.mark.containers

REPO = Path(__file__).resolve().parents[2]
SAME_TESTS = {
    "tests/integration/test_subscription_delivery.py": [
        "test_keyed_records_arrive_exactly_once_in_order"
    ],
    "tests/integration/test_dead_letters.py": [
        "test_poison_mix_goes_to_dead_letters_and_keys_keep_flowing",
        "test_a_refused_dead_letter_blocks_the_key_instead_of_losing_the_record",
    ],
}
FAILING_CASE = "tests/containers/backend_failing_case.py"


def _containers_named(docker_host: str, name: str) -> list[str]:
    listed = DockerCli(docker_host).run(
        ["ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}}"]
    )
    return listed.stdout.split()


def _outcomes(report: Path) -> dict[str, str]:
    """test name -> passed / failure / error / skipped, from the JUnit XML report."""
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.attrib["name"]] = kinds[0] if kinds else "passed"
    return outcomes


@pytest.mark.timeout(1500)
def test_engine_tests_pass_unchanged_on_containers(
    docker_host: str, images: ImageTags, tmp_path: Path
) -> None:
    report = tmp_path / "report.xml"
    env = {**os.environ, "DOCKER_HOST": docker_host}
    env.pop("RESTATE_STREAM_BACKEND", None)  # the option alone picks the backend
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *SAME_TESTS,
        FAILING_CASE,
        "--restate-stream-backend=containers",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        # The fixture's progress lines (container names) pass through to stderr.
        "--capture=tee-sys",
    ]
    run = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=1400, check=False
    )
    output = run.stdout + run.stderr
    assert "restate-stream engines: containers" in run.stdout, output
    assert report.is_file(), f"no report from the pytest run (exit {run.returncode}):\n{output}"
    outcomes = _outcomes(report)
    expected = {name: "passed" for names in SAME_TESTS.values() for name in names}
    expected["test_fails_on_purpose"] = "failure"
    assert outcomes == expected, output
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, output

    # They ran in containers (names from the fixture's progress lines), now removed.
    names = sorted(set(re.findall(r"container (restate-stream-test-[0-9a-f]{8}-\w+)", output)))
    assert [n.rsplit("-", 1)[1] for n in names] == ["kafka", "restate"], output
    for name in names:
        assert _containers_named(docker_host, name) == [], f"{name} outlived the session"

    # The failing test's report carries both containers' log tails.
    assert backend_failing_case.MESSAGE in run.stdout, output
    section = run.stdout.split("restate-stream engine logs", 1)[-1]
    for name in names:
        kind = name.rsplit("-", 1)[1]
        assert f"--- {kind} container {name}" in section, run.stdout


def test_a_container_that_exits_while_starting_is_removed(
    docker_host: str, images: ImageTags
) -> None:
    # The JRE base runs bash, which exits at once without a terminal: a "broker" that dies.
    stack = ContainerStack(tags=ImageTags(kafka=images.jre_base), docker_host=docker_host)
    with pytest.raises(ContainerStackError, match=r"the kafka container .* exited with code 0"):
        stack.start(progress=lambda _: None)
    assert stack.kafka is None and stack.restate is None
    assert _containers_named(docker_host, stack.name) == []
