"""`restate-stream init`: the project it writes works as written, and nothing is overwritten.

The generated project is checked as its user would: `restate-stream validate` and its own
`pytest`, each a subprocess in the new directory (`dev` on the engines: tests/journey/).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from restate_stream.bindings import load_bindings
from restate_stream.scaffold import ScaffoldError, project_name, render, scaffold
from restate_stream.testing import run_cli

BIN = Path(sys.executable).parent
EXPECTED = {
    "app.py",
    "bindings.yaml",
    "tests/test_app.py",
    "README.md",
    "orders.jsonl",
    "show_total.py",
    "pyproject.toml",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("scaffold") / "Shop Orders"
    result = run_cli("init", str(directory))
    assert result.returncode == 0, result.stderr
    for name in EXPECTED:
        assert f"created {directory / name}" in result.stdout
    return directory


def test_init_writes_the_project_with_its_name(project: Path) -> None:
    written = {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}
    assert written == EXPECTED
    assert (project / "README.md").read_text().startswith("# shop-orders\n")
    assert "group: shop-orders.orders" in (project / "bindings.yaml").read_text()
    assert "{{" not in "".join(p.read_text() for p in project.rglob("*") if p.is_file())


def test_the_python_files_parse_and_the_yaml_loads_as_bindings(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in project.rglob("*.py"):
        ast.parse(path.read_text(), str(path))
    spec = load_bindings(project / "bindings.yaml", env={})
    assert spec.restate.admin_url == "http://127.0.0.1:9070"  # the stack's default ports
    assert spec.clusters["local"].properties["bootstrap.servers"] == "127.0.0.1:9092"
    assert spec.worker is not None and spec.worker.app == "app:app"
    (orders,) = spec.bindings
    assert (orders.topic, orders.dead_letter) == ("orders", "orders.dlq")
    assert set(spec.topics) == {"orders", "order-totals", "orders.dlq"}
    moved = load_bindings(project / "bindings.yaml", env={"KAFKA_BOOTSTRAP": "127.0.0.1:19092"})
    assert moved.clusters["local"].properties["bootstrap.servers"] == "127.0.0.1:19092"
    for line in (project / "orders.jsonl").read_text().splitlines():
        assert set(yaml.safe_load(line)) == {"key", "value"}


def test_validate_passes_in_the_new_project(project: Path) -> None:
    result = run_cli("validate", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "bindings.yaml: ok (1 binding, 1 Kafka cluster, 3 topics, checked against app:app)" in (
        result.stdout
    )


def test_the_projects_own_tests_pass_with_pytest(project: Path) -> None:
    # The console script, as typed: `python -m pytest` would put the directory on sys.path
    # and hide a project whose tests cannot import app.py.
    done = subprocess.run(
        [str(BIN / "pytest"), "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


@pytest.mark.parametrize(
    "command",
    [["check", "--select", "E,F,W,I,B,UP,SIM,RUF"], ["format", "--check"]],
    ids=["check", "format"],
)
def test_the_projects_python_is_lint_clean_by_ruffs_defaults(
    project: Path, command: list[str]
) -> None:
    """The user's own linter finds nothing to fix in the code init gave them."""
    done = subprocess.run(
        [str(BIN / "ruff"), *command, "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_init_refuses_to_overwrite_and_names_the_files(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("mine\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_app.py").write_text("mine too\n")
    with pytest.raises(ScaffoldError) as caught:
        scaffold(tmp_path)
    assert str(caught.value) == (
        f"init would overwrite {tmp_path / 'app.py'}, {tmp_path / 'tests/test_app.py'}: "
        "nothing written (move them away, or give init another directory)"
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["app.py", "test_app.py", "tests"]
    assert (tmp_path / "app.py").read_text() == "mine\n"

    result = run_cli("init", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: init would overwrite {tmp_path / 'app.py'}")


def test_init_into_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    with pytest.raises(ScaffoldError, match="is a file: init needs a directory"):
        scaffold(tmp_path / "taken")


def test_init_in_the_current_directory_names_the_project_after_it(tmp_path: Path) -> None:
    directory = tmp_path / "fraud_checks"
    directory.mkdir()
    result = run_cli("init", cwd=directory)
    assert result.returncode == 0, result.stderr
    assert "project fraud_checks: next, restate-stream validate && pytest" in result.stdout
    assert (directory / "bindings.yaml").exists()


@pytest.mark.parametrize(
    ("directory", "name"),
    [("My Shop!", "my-shop"), ("orders.v2", "orders.v2"), ("---", "restate-stream-app")],
)
def test_project_names_are_safe_for_groups_and_titles(directory: str, name: str) -> None:
    assert project_name(Path("/somewhere") / directory) == name


def test_render_is_what_scaffold_writes(tmp_path: Path) -> None:
    written = scaffold(tmp_path / "p", name="p")
    rendered = render("p")
    assert written.files == list(rendered)
    for path, text in rendered.items():
        assert (tmp_path / "p" / path).read_text() == text
