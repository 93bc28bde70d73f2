"""The Quix Streams side of benchmarks/windows_peer.py: a tumbling count per key over a topic
of JSON records whose field `ts` is the event time (epoch ms), each final window published to
`--out` as {"start", "end", "value"} keyed by the record key.

Runs in the Quix venv (windows_peer.py installs quixstreams there, apart from the project's:
it pins an older confluent-kafka), so it imports only the standard library and quixstreams.
Prints one JSON line once it has processed `--records` records: the rate from the first record
to that one and this process's CPU seconds (all threads) per 1,000 records over that span;
then runs on until SIGTERM (a graceful stop) or SIGKILL.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

from quixstreams import Application


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def event_time(value: Any, headers: Any, timestamp: float, timestamp_type: Any) -> int:
    return int(value["ts"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--size-ms", type=int, required=True)
    parser.add_argument("--grace-ms", type=int, required=True)
    parser.add_argument("--guarantee", choices=("at-least-once", "exactly-once"), required=True)
    parser.add_argument("--records", type=int, required=True, help="report after this many")
    args = parser.parse_args()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        processing_guarantee=args.guarantee,
        loglevel="WARNING",
    )
    source = app.topic(args.topic, value_deserializer="json", timestamp_extractor=event_time)
    results = app.topic(args.out, value_serializer="json")
    seen = 0
    started = (0.0, 0.0)

    def progress(value: Any) -> None:
        nonlocal seen, started
        if seen == 0:
            started = (time.perf_counter(), cpu_seconds())
        seen += 1
        if seen == args.records:
            (t0, c0), t1, c1 = started, time.perf_counter(), cpu_seconds()
            report = {
                "records_per_s": (seen - 1) / (t1 - t0),
                "cpu_s_per_1000": (c1 - c0) * 1000 / seen,
            }
            print(json.dumps(report), flush=True)

    sdf = app.dataframe(source)
    sdf = sdf.update(progress)
    sdf = sdf.tumbling_window(duration_ms=args.size_ms, grace_ms=args.grace_ms).count().final()
    sdf.to_topic(results)
    app.run()


if __name__ == "__main__":
    main()
