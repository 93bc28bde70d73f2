"""The ASGI entry the server (granian or hypercorn) imports in each serving process.

Both servers load apps by import path in every (spawned) serving process; this module builds
the user's app named in RESTATE_STREAM_APP the same way in each of them. With identity keys
configured, Restate's request-signature check goes in front of the user's app, which stays as
it was built (its codec, protocol and middleware).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from restate_stream._util.gc_pause import tune_for_serving
from restate_stream._util.process import die_with_parent
from restate_stream.batch.runner import BatchRunner
from restate_stream.bindings import check_against_app, import_app, load_bindings
from restate_stream.runtime._sdk import identity_checked
from restate_stream.runtime.bound import bind, with_high_water
from restate_stream.runtime.granian_signals import relay_sigterm_to_granian
from restate_stream.runtime.logs import configure_logging
from restate_stream.runtime.provided import provided_services, serve_provided
from restate_stream.runtime.publisher import Publisher
from restate_stream.runtime.serving import without_lifespan_warnings
from restate_stream.telemetry.tracing import configure_tracing

APP_ENV = "RESTATE_STREAM_APP"
BINDINGS_ENV = "RESTATE_STREAM_BINDINGS"  # the bindings file whose handlers get wrapped
IDENTITY_KEYS_ENV = "RESTATE_STREAM_IDENTITY_KEYS"  # comma-separated publickeyv1_... keys
METRICS_ENV = "RESTATE_STREAM_METRICS"  # set: record metrics for the worker's /metrics
LOG_FORMAT_ENV = "RESTATE_STREAM_LOG_FORMAT"  # text (default) or json
SERVER_ENV = "RESTATE_STREAM_SERVER"  # granian or hypercorn: which server imports this module
WORKER_PID_ENV = "RESTATE_STREAM_WORKER_PID"  # the process that starts the serving processes


def split_keys(text: str) -> list[str]:
    """Identity keys from their comma-separated form (env var, --identity-keys)."""
    return [key for key in text.split(",") if key]


def build_app(
    path: str,
    identity_keys: list[str],
    bindings: str | None = None,
    server: str | None = None,
) -> Any:
    app, services = import_app(path)
    runner: BatchRunner | None = None
    if bindings:
        spec = load_bindings(bindings)
        check_against_app(spec, services)  # a missing handler is named with file and line
        publishers: dict[str, Publisher] = {}
        provided = provided_services(spec, services, publishers)  # windows and tables
        serve_provided(app, provided)
        bind([*services, *provided], spec, publishers)  # in place: the app serves them wrapped
        if os.environ.get(METRICS_ENV):
            from restate_stream.telemetry.metrics import install_metrics

            install_metrics(b.name for b in spec.bindings if b.batch is not None)
        # Own-consumer bindings run here, knowing which targets keep a high-water. With none yet
        # too: the runner follows the file, so `migrate --to consumer` needs no restart.
        runner = BatchRunner(with_high_water([*services, *provided], spec))
    if identity_keys:
        app = identity_checked(app, identity_keys)

    async def startup() -> None:
        if server == "granian":
            relay_sigterm_to_granian()  # else the SDK's SIGTERM hook keeps granian from stopping
        if runner is not None:
            await runner.start()

    return without_lifespan_warnings(
        app, startup=startup, shutdown=runner.stop if runner is not None else None
    )


def _tie_to_the_worker(server: str | None) -> None:
    """A serving process whose worker died (SIGKILL, the OOM killer) stops instead of serving
    on, orphaned: granian's gracefully, on SIGTERM; hypercorn's takes its stop from the worker
    only (SIGTERM goes to the SDK's hook once it served a request), so SIGKILL. (A worker that
    died before this line never hands its socket over: the process ends without serving.)"""
    if os.environ.get(WORKER_PID_ENV) == str(os.getppid()):  # a process the worker started
        die_with_parent(os.getppid(), signal.SIGTERM if server == "granian" else signal.SIGKILL)


def _from_environment() -> Any:
    if APP_ENV not in os.environ:
        return None
    server = os.environ.get(SERVER_ENV)
    _tie_to_the_worker(server)
    configure_logging(log_format=os.environ.get(LOG_FORMAT_ENV, "text"))
    configure_tracing()  # OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (the otel extra)
    keys = split_keys(os.environ.get(IDENTITY_KEYS_ENV, ""))
    bindings = os.environ.get(BINDINGS_ENV) or None
    app = build_app(os.environ[APP_ENV], keys, bindings, server)
    tune_for_serving()  # collections: startup objects frozen, young ones less often
    return app


app = _from_environment()
