"""Where the app finds Kafka and Restate: the same bindings.yaml that wires its topics.

Read once per process, on first use, so `${KAFKA_BOOTSTRAP}` / `${RESTATE_INGRESS}` resolve
from the environment the worker was started with (the runner and the tests set them).
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from pathlib import Path

import restate

from restate_stream.bindings import BindingsFile, load_bindings
from restate_stream.runtime.publisher import Publisher

BINDINGS = Path(__file__).with_name("bindings.yaml")
CLUSTER = "local"
DRIVER_UPDATES = "driver-updates"
ORDERS = "orders"  # checkout's events, keyed by restaurant: the orders-per-restaurant window's
RESTAURANTS = "restaurants"  # the restaurant directory, keyed by restaurant id: a table
ORDER_COUNTS = "restaurant-order-counts"  # the orders-per-restaurant window's results
DRIVER_SPEEDS = "driver-speeds"  # the driver-speed window's results

# Every service's retries: a restarted worker is called again within 2 s. Restate's default
# backoff doubles up to a minute, so a worker down for 15 s could leave an order waiting past
# its 30 s driver timer. 300 attempts (about 10 minutes down) before an invocation pauses.
RETRY = restate.InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    max_interval=timedelta(seconds=2),
    max_attempts=300,
)


@cache
def bindings() -> BindingsFile:
    return load_bindings(BINDINGS)


def ingress_url() -> str:
    return bindings().restate.ingress_url.rstrip("/")


@cache
def publisher(source: str = "food-ordering/driver-app") -> Publisher:
    """One durable Kafka publisher per CloudEvents source (the phones, checkout); its
    producer is made on first publish."""
    return Publisher(bindings().clusters[CLUSTER].properties, source=source)
