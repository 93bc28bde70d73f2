"""The wheel, built once a session, and fresh virtual environments to install it into."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.journey.venvs import INSTALL_TIMEOUT, ROOT, MakeVenv, Venv, shown


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """restate-stream's wheel, built from this checkout as a release would be."""
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert done.returncode == 0, shown(done)
    (built,) = out.glob("restate_stream-*.whl")
    return built


@pytest.fixture
def make_venv(tmp_path: Path) -> MakeVenv:
    """make_venv("<wheel>[test]", "pytest"): a fresh venv with exactly those installed."""

    def make(*requirements: str) -> Venv:
        venv = Venv(tmp_path / "venv")
        base = getattr(sys, "_base_executable", sys.executable)
        created = subprocess.run(
            [base, "-m", "venv", str(venv.path)], capture_output=True, text=True, timeout=120
        )
        assert created.returncode == 0, shown(created)
        installed = venv.run(
            str(venv.bin / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            *requirements,
            cwd=tmp_path,
            timeout=INSTALL_TIMEOUT,
        )
        assert installed.returncode == 0, shown(installed)
        return venv

    return make
