"""The commands of scripts/docker-engine (argparse: no dependency beyond the project)."""

from __future__ import annotations

import argparse
import time

from restate_stream.containers.engine import DockerEngine, reachable_docker_host
from restate_stream.containers.images import ImageTags, build_images
from restate_stream.errors import RestateStreamError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="docker-engine", description=__doc__)
    parser.add_argument("command", choices=["start", "stop", "status", "build", "env"])
    parser.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for dockerd (start/stop)"
    )
    args = parser.parse_args(argv)
    engine = DockerEngine()
    try:
        if args.command == "start":
            engine.start(timeout=args.timeout)
        elif args.command == "stop":
            engine.stop(timeout=args.timeout)
        elif args.command == "status":
            print(f"docker-engine: {engine.status()}")
            return 0 if engine.running_pid() is not None else 3
        elif args.command == "env":
            print(f"export DOCKER_HOST={engine.host}")
        else:
            host = reachable_docker_host()
            if host is None:
                print("docker-engine: no Docker engine answers; run `scripts/docker-engine start`")
                return 2
            started = time.monotonic()
            for result in build_images(host, ImageTags.from_env()):
                print(f"docker-engine: {result}")
            print(f"docker-engine: images ready in {time.monotonic() - started:.1f}s")
    except RestateStreamError as exc:
        print(f"docker-engine: {exc}")
        return 1
    return 0
