"""deploy/docker-compose.yml on a host-network engine, with Debian's docker-compose 1.29.

Under host networking a container has no ports to publish and no hostname of its own, and the
engine refuses both settings; compose 1.29 has no way for an override to delete a key (no
`!reset`). So the base file is run as written minus exactly those two keys, together with
deploy/docker-compose.local.yml (local images, loopback addresses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "docker-compose.yml"
LOCAL_OVERRIDE = REPO / "deploy" / "docker-compose.local.yml"
_NOT_ON_HOST_NETWORK = ("ports", "hostname")


def host_network_variant(base: Path, out: Path) -> Path:
    """Write `base` without the per-service keys host networking forbids; return `out`."""
    document: dict[str, Any] = yaml.safe_load(base.read_text())
    for service in document.get("services", {}).values():
        for key in _NOT_ON_HOST_NETWORK:
            service.pop(key, None)
    out.write_text(
        f"# Generated from {base} without {', '.join(_NOT_ON_HOST_NETWORK)} "
        "(host networking).\n" + yaml.safe_dump(document, sort_keys=False)
    )
    return out


def compose_argv(project: str, variant: Path) -> list[str]:
    """docker-compose with the base file's variant and the local override, paths as in deploy/."""
    return [
        "docker-compose",
        "--project-name",
        project,
        "--project-directory",
        str(BASE.parent),
        "-f",
        str(variant),
        "-f",
        str(LOCAL_OVERRIDE),
    ]
