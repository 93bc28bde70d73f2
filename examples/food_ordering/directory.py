"""The restaurant directory: each restaurant's record, published to `restaurants`.

The order workflow reads a restaurant's current record from the `restaurants` table binding
(the pickup point, whether it is open), so a deployment publishes the directory before its
first order. The runner does it; elsewhere (docker compose, Kubernetes) run

    python -m examples.food_ordering.directory

with the bindings file's `${KAFKA_BOOTSTRAP}` and `${RESTATE_INGRESS}` set (and whatever else
its cluster's properties read: SASL credentials on Kubernetes): it publishes the records with
those properties and returns once the table reads each back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from connectors import Record, produce_records
from examples.food_ordering import scenario
from examples.food_ordering.client import FoodClient
from examples.food_ordering.model import RestaurantRecord
from examples.food_ordering.settings import CLUSTER, RESTAURANTS, bindings, ingress_url
from restate_stream._util.poll import apoll


async def publish(
    client: FoodClient,
    bootstrap: str,
    records: list[tuple[str, RestaurantRecord]],
    *,
    timeout: float = 30.0,
    config: Mapping[str, str] | None = None,
) -> None:
    """Publish (restaurant id, record) pairs; back once the table holds each record. `config`:
    the cluster's other client properties (SASL, TLS)."""
    encoded = [Record(rid, json.dumps(record)) for rid, record in records]
    await asyncio.to_thread(produce_records, bootstrap, RESTAURANTS, encoded, config=config)

    async def table() -> list[RestaurantRecord | None]:
        return [await client.restaurant(rid) for rid, _ in records]

    want = [record for _, record in records]
    await apoll(table, until=lambda found: found == want, what="the table", timeout=timeout)


async def _main() -> None:
    properties = bindings().clusters[CLUSTER].properties
    records = scenario.directory()
    async with FoodClient(ingress_url()) as client:
        await publish(client, properties["bootstrap.servers"], records, config=properties)
    print(f"{len(records)} restaurants on {RESTAURANTS}, in the table")


if __name__ == "__main__":
    asyncio.run(_main())
