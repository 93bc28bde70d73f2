"""Containers on a local Docker engine: the engine itself (own socket and data dir under the
engine cache, for machines without one) and images built from the cached engine artifacts.

Nothing here pulls from an image registry: the Restate and Kafka images are built from the
binaries `restate-stream stack install` fetched, on Debian bases made with debootstrap.
"""

from restate_stream.containers.engine import DockerEngine, EngineError, reachable_docker_host
from restate_stream.containers.images import ImageBuildError, ImageTags, build_images

__all__ = [
    "DockerEngine",
    "EngineError",
    "ImageBuildError",
    "ImageTags",
    "build_images",
    "reachable_docker_host",
]
