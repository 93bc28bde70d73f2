"""Installing restate-stream never breaks the user's own pytest.

pytest loads the package's plugin (the `pytest11` entry point) in every run of everyone who
installs it. With the base install only (no `test` extra: no pytest-asyncio, no
testcontainers) the plugin loads quietly, and a fixture that needs what is missing says what
to install when a test uses it.
"""

from __future__ import annotations

from pathlib import Path

from tests.journey.venvs import MakeVenv, shown

USER_TESTS = """
def test_arithmetic():
    assert 1 + 1 == 2


def test_with_the_admin_fixture(restate_admin):
    pass


def test_on_containers(restate_stream_stack):
    pass
"""


def test_a_user_suite_runs_with_the_plugin_and_no_extras(
    wheel: Path, make_venv: MakeVenv, tmp_path: Path
) -> None:
    venv = make_venv(str(wheel), "pytest")
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_user.py").write_text(USER_TESTS)

    missing = venv.run("python", "-c", "import pytest_asyncio", cwd=project)
    assert missing.returncode == 1 and "No module named 'pytest_asyncio'" in missing.stderr

    ran = venv.run("pytest", "test_user.py::test_arithmetic", cwd=project)
    assert ran.returncode == 0, shown(ran)
    assert "1 passed" in ran.stdout
    assert "restate-stream engines: local" in ran.stdout  # the plugin loaded (its header)
    assert "Error while loading plugin" not in ran.stdout + ran.stderr

    async_fixture = venv.run("pytest", "test_user.py::test_with_the_admin_fixture", cwd=project)
    assert async_fixture.returncode == 1, shown(async_fixture)
    assert "1 error" in async_fixture.stdout
    assert (
        "the restate_admin and restate_app fixtures are async and need pytest-asyncio: "
        "pip install 'restate-stream[test]'"
    ) in async_fixture.stdout

    containers = venv.run(
        "pytest",
        "test_user.py::test_on_containers",
        "--restate-stream-backend=containers",
        cwd=project,
    )
    assert containers.returncode == 1, shown(containers)
    assert "the containers backend needs testcontainers: pip install 'restate-stream[test]'" in (
        containers.stdout
    )
