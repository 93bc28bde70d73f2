"""The operator's view of a worker: Prometheus metrics (`metrics`) built on the events bound
handlers and the publisher report (`restate_stream.runtime.outcomes`)."""

from restate_stream.telemetry.metrics import (
    METRICS,
    WorkerMetrics,
    install_metrics,
    metrics_registry,
    prepare_metrics_dir,
)

__all__ = [
    "METRICS",
    "WorkerMetrics",
    "install_metrics",
    "metrics_registry",
    "prepare_metrics_dir",
]
