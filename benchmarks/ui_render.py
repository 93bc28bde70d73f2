"""Render time of the dashboard's pages (restate-stream ui) with 20 bindings and 10,000 dead
letters, from fake data sources (restate_stream.ui.fake): the cost of the pages themselves,
without the Kafka and Restate reads behind them.

Each page is fetched over Starlette's in-process test client (routing, the dead letters
grouped per source record by dlq's by_source_record, Jinja rendering, the SVG charts), with
10 minutes of samples (120 at 5 s) behind every chart. Rounds; medians and maxima in ms.

    .venv/bin/python -m benchmarks.ui_render [--rounds 20] [--bindings 20] [--letters 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import platform
import statistics
import time
import warnings
from itertools import count

from restate_stream.control.status import BindingStatus
from restate_stream.ui import Sampler, create_app
from restate_stream.ui.fake import FakeSource, fake_letters, fake_spec, fake_status
from restate_stream.ui.guard import Guard

with warnings.catch_warnings():  # Starlette 1.x would rather test on httpx2; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

HOST = "127.0.0.1:8765"
SAMPLES = 120  # 10 minutes at the default 5-second interval


def build(bindings: int, letters: int) -> tuple[TestClient, str]:
    names = [f"binding-{i:02d}" for i in range(bindings)]
    busy = names[0]  # the one with every dead letter
    statuses = [
        fake_status(n, dead_letters=letters if n == busy else i % 3, stuck=3 if n == busy else 0)
        for i, n in enumerate(names)
    ]
    source = FakeSource(
        fake_spec(names), statuses, entries={busy: fake_letters(busy, letters, resolved_every=10)}
    )
    ticks = count()
    clock = lambda: float(next(ticks) * 5)  # noqa: E731 (one sample per 5 seconds)

    async def moving() -> list[BindingStatus]:
        """The statuses once more, each partition's group 40-55 records further on."""
        for s in statuses:
            s.lag = [
                dataclasses.replace(p, committed=(p.committed or 0) + 40 + p.partition * 5)
                for p in s.lag
            ]
        return statuses

    sampler = Sampler(moving, interval=5.0, clock=clock)

    async def fill() -> None:
        for _ in range(SAMPLES):
            await sampler.sample()

    asyncio.run(fill())
    app = create_app(source, Guard({HOST}), sampler=sampler, sample_in_background=False)
    return TestClient(app, base_url=f"http://{HOST}"), busy


def timed(client: TestClient, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (path, response.status_code)
    return elapsed, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--bindings", type=int, default=20)
    parser.add_argument("--letters", type=int, default=10_000)
    args = parser.parse_args()
    client, busy = build(args.bindings, args.letters)
    pages = {
        "overview": "/",
        "overview fragment (refresh)": "/fragments/overview",
        f"binding page ({args.letters:,} letters, 50 shown)": f"/bindings/{busy}",
        "binding page (1,000 shown, the most)": f"/bindings/{busy}?limit=1000",
        "binding fragment (refresh)": f"/fragments/bindings/{busy}",
    }
    for path in pages.values():  # warm-up: templates compiled, imports done
        timed(client, path)
    times: dict[str, list[float]] = {name: [] for name in pages}
    sizes: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, path in pages.items():
            elapsed, sizes[name] = timed(client, path)
            times[name].append(elapsed)
    print(
        f"restate-stream ui render, {args.bindings} bindings, {args.letters:,} dead letters, "
        f"{SAMPLES} samples per chart; {args.rounds} rounds; Python {platform.python_version()}"
    )
    print(f"{'page':<44} {'median ms':>10} {'max ms':>10} {'size KB':>9}")
    for name, values in times.items():
        print(
            f"{name:<44} {statistics.median(values):>10.1f} {max(values):>10.1f} "
            f"{sizes[name] / 1024:>9.0f}"
        )


if __name__ == "__main__":
    main()
