"""Per-record codec cost: JSON (JsonCodec into a dict or a dataclass) vs Avro (AvroCodec,
plain and Confluent wire), decoding and encoding one representative driver-update record.

Each case runs `--decodes` (or `--encodes`) calls in one timed loop (perf_counter_ns);
rounds rotate the order of the cases; medians in µs/record, ratios against JSON with dicts.
Timestamps are epoch-millis longs in both formats (no datetime conversion on either side).

    .venv/bin/python -m benchmarks.decode_cost [--decodes 200000] [--encodes 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.avro import AvroCodec
from restate_stream.runtime.formats import JsonCodec

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "DriverUpdate",
    "namespace": "bench",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "driver_id", "type": "string"},
        {"name": "order_id", "type": "string"},
        {"name": "status", "type": "string"},
        {"name": "created_at_ms", "type": "long"},
        {"name": "updated_at_ms", "type": "long"},
        {"name": "sequence", "type": "long"},
        {"name": "speed_kmh", "type": "double"},
        {"name": "heading_deg", "type": "double"},
        {"name": "battery_pct", "type": "double"},
        {
            "name": "location",
            "type": {
                "type": "record",
                "name": "Location",
                "fields": [
                    {"name": "lat", "type": "double"},
                    {"name": "lon", "type": "double"},
                    {"name": "accuracy_m", "type": "double"},
                ],
            },
        },
    ],
}


@dataclass
class DriverUpdate:
    event_id: str
    driver_id: str
    order_id: str
    status: str
    created_at_ms: int
    updated_at_ms: int
    sequence: int
    speed_kmh: float
    heading_deg: float
    battery_pct: float
    location: dict[str, float]  # JsonCodec converts the top level only


RECORD: dict[str, Any] = {
    "event_id": "6f1c2a8e-3b4d-4e5f-9a0b-1c2d3e4f5a6b",
    "driver_id": "driver-0042",
    "order_id": "order-2026-11-25-000123",
    "status": "EN_ROUTE_TO_CUSTOMER",
    "created_at_ms": 1_795_610_000_123,
    "updated_at_ms": 1_795_610_004_567,
    "sequence": 18_342,
    "speed_kmh": 37.25,
    "heading_deg": 212.5,
    "battery_pct": 83.4,
    "location": {"lat": 52.370216, "lon": 4.895168, "accuracy_m": 4.8},
}

Case = tuple[str, Callable[[Any], Any], Any]  # name, call, its argument


def cases() -> tuple[list[Case], list[Case]]:
    """(decode cases, encode cases); the first of each is the baseline."""
    json_dict, json_typed = JsonCodec(dict), JsonCodec(DriverUpdate)
    plain = AvroCodec(SCHEMA, "plain")
    confluent = AvroCodec(SCHEMA, "confluent", schema_id=1)
    typed = DriverUpdate(**RECORD)
    json_bytes, plain_bytes, wire_bytes = (
        json_dict.encode(RECORD),
        plain.encode(RECORD),
        confluent.encode(RECORD),
    )
    # Every codec must give the record back before it is timed.
    round_trips = {
        "JSON -> dict": json_dict.decode(json_bytes) == RECORD,
        "JSON -> dataclass": json_typed.decode(json_bytes) == typed,
        "Avro plain": plain.decode(plain_bytes) == RECORD,
        "Avro confluent": confluent.decode(wire_bytes) == RECORD,
    }
    if failed := [name for name, ok in round_trips.items() if not ok]:
        raise SystemExit(f"round trip changed the record: {', '.join(failed)}")
    decodes: list[Case] = [
        (f"JSON -> dict ({len(json_bytes)} B)", json_dict.decode, json_bytes),
        (f"JSON -> dataclass ({len(json_bytes)} B)", json_typed.decode, json_bytes),
        (f"Avro plain -> dict ({len(plain_bytes)} B)", plain.decode, plain_bytes),
        (f"Avro confluent -> dict ({len(wire_bytes)} B)", confluent.decode, wire_bytes),
    ]
    encodes: list[Case] = [
        ("dict -> JSON", json_dict.encode, RECORD),
        ("dataclass -> JSON", json_typed.encode, typed),
        ("dict -> Avro plain (validated)", plain.encode, RECORD),
        ("dict -> Avro confluent (validated)", confluent.encode, RECORD),
    ]
    return decodes, encodes


def time_us(call: Callable[[Any], Any], argument: Any, n: int) -> float:
    """µs per call over n calls in one loop."""
    start = time.perf_counter_ns()
    for _ in range(n):
        call(argument)
    return (time.perf_counter_ns() - start) / n / 1000


def measure(group: list[Case], n: int, rounds: int, label: str) -> list[float]:
    """Median µs/record per case; round r starts at case r, so no case always runs first."""
    for _, call, argument in group:  # warm up
        time_us(call, argument, n // 20)
    samples: list[list[float]] = [[] for _ in group]
    for r in range(rounds):
        order = [(r + k) % len(group) for k in range(len(group))]
        for k in order:
            samples[k].append(time_us(group[k][1], group[k][2], n))
        line = ", ".join(f"{group[k][0].split(' (')[0]} {samples[k][-1]:.2f}" for k in order)
        print(f"{label} round {r + 1}: {line} µs", flush=True)
    return [statistics.median(s) for s in samples]


def table(title: str, group: list[Case], medians: list[float]) -> None:
    print(f"{title:<40} {'µs/record':>10} {'records/s':>11} {'ratio':>7}")
    for (name, _, _), us in zip(group, medians, strict=True):
        print(f"{name:<40} {us:>10.2f} {1e6 / us:>11,.0f} {us / medians[0]:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decodes", type=int, default=200_000)
    parser.add_argument("--encodes", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    decodes, encodes = cases()
    decode_medians = measure(decodes, args.decodes, args.rounds, "decode")
    encode_medians = measure(encodes, args.encodes, args.rounds, "encode")
    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, fastavro {importlib.metadata.version('fastavro')}"
    )
    print(
        f"decodes: {args.decodes:,}, encodes: {args.encodes:,} per case and round, "
        f"rounds: {args.rounds}, medians; ratio vs the first line"
    )
    table("decode", decodes, decode_medians)
    table("encode", encodes, encode_medians)


if __name__ == "__main__":
    main()
