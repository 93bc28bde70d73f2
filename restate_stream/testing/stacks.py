"""What a test sees of the engines, whichever backend runs them, and how the backend is chosen.

`EngineStack` is the part of a stack tests use: Kafka's bootstrap servers, Restate's admin and
ingress URLs, and the tail of the engine logs for a failure report. `LocalStack` (child
processes) and `ContainerStack` (testcontainers) both satisfy it; the `restate_stream_stack`
fixture yields one or the other.
"""

from __future__ import annotations

from typing import Final, Literal, Protocol, runtime_checkable

from restate_stream.errors import ConfigurationError

Backend = Literal["local", "containers"]
BACKENDS: Final[tuple[Backend, ...]] = ("local", "containers")
BACKEND_OPTION: Final = "--restate-stream-backend"
BACKEND_ENV: Final = "RESTATE_STREAM_BACKEND"


@runtime_checkable
class EngineStack(Protocol):
    """A running Kafka broker and Restate server, as the fixtures hand them to tests."""

    @property
    def bootstrap_servers(self) -> str: ...

    @property
    def admin_url(self) -> str: ...

    @property
    def ingress_url(self) -> str: ...

    def logs_tail(self, lines: int = 60) -> str: ...

    def stop(self) -> None: ...


class BackendChoiceError(ConfigurationError, ValueError):
    pass


def choose_backend(option: str | None, env: str | None) -> Backend:
    """The option wins over the environment variable; without either, the local engines."""
    for value, source in ((option, BACKEND_OPTION), (env, f"${BACKEND_ENV}")):
        if value is None or value == "":
            continue
        for backend in BACKENDS:
            if value.strip().lower() == backend:
                return backend
        raise BackendChoiceError(
            f"{source}={value!r} names no engine backend: expected one of {', '.join(BACKENDS)}"
        )
    return "local"
