"""The container suite: needs a Docker engine; skips (with how to enable it) when none answers.

CI sets RESTATE_STREAM_REQUIRE_DOCKER=1, so there a missing engine fails instead of skipping.
"""

from __future__ import annotations

import os

import pytest

from restate_stream.containers import ImageTags, build_images, reachable_docker_host

REQUIRE_ENV = "RESTATE_STREAM_REQUIRE_DOCKER"
HOW = (
    "no Docker engine answers (tried $DOCKER_HOST, else the project's own socket and "
    "/var/run/docker.sock). Enable the container tests: as root on Debian, "
    "`.venv/bin/python scripts/docker-engine start` (installs docker.io, starts dockerd on its "
    "own socket), or point DOCKER_HOST at an engine; stop it with `scripts/docker-engine stop`"
)


@pytest.fixture(scope="session")
def docker_host() -> str:
    host = reachable_docker_host()
    if host is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but {HOW}")
        pytest.skip(HOW)
    return host


@pytest.fixture(scope="session")
def images(docker_host: str) -> ImageTags:
    """The local images, built once (skipped when their inputs are unchanged)."""
    tags = ImageTags.from_env()
    build_images(docker_host, tags)
    return tags
