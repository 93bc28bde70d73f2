"""A window and a table binding served by a real `restate-stream worker --apply` (its own
process group), delivered by a Restate subscription or by restate-stream's own consumer: the
worker adds restate-stream's objects to the user's app, apply finds them served (a second
apply has nothing to do), the tumbling counts on the results topic equal those computed from
what was produced (a quiet key's only window emitted by its timer), and the table's values
read through its shared `get` handler, over the ingress and from the app's own handler."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors import Record, TopicAdmin, produce_records
from restate_stream._util.ports import free_ports
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.control.status import binding_statuses
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    CLI,
    bindings_yaml,
    drop_cluster,
    run_cli,
    topic_records,
    wait_until,
)

pytestmark = pytest.mark.engines

REPO = Path(__file__).resolve().parents[2]
SIZE_MS, GRACE_MS = 2_000, 6_000


@contextmanager
def cli_worker(bindings: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`restate-stream worker -f bindings --apply` in its own process group, stopped with all
    its serving processes (SIGTERM, then SIGKILL to whatever of the group is left)."""
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [*CLI, "worker", "-f", str(bindings), "--apply"],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield worker
    finally:
        with contextlib.suppress(ProcessLookupError):  # it exited (failed to start) already
            os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):  # the whole group is gone
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


async def read_log(log: Path) -> str:
    return logged(log)


def logged(log: Path) -> str:
    return log.read_text(errors="replace")


@pytest.mark.parametrize("delivery", ["subscription", "consumer", "batched"])
async def test_a_worker_serves_window_and_table_bindings(
    delivery: str,
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    tmp_path: Path,
) -> None:
    stack = restate_stream_stack
    run = uuid.uuid4().hex[:8]
    cluster = f"w-{run}"
    clicks, counts, places = f"clicks-{run}", f"counts-{run}", f"places-{run}"
    port = free_ports(1)[0]
    window = {"type": "tumbling", "size": f"{SIZE_MS}ms", "grace": f"{GRACE_MS}ms"}
    window |= {"time_field": "ts", "to": counts}
    # Batched: restate-stream's consumer, one invocation per key per batch.
    batched = {"batch": {"max_records": 20, "max_wait": "200ms"}}
    route = batched if delivery == "batched" else {"delivery": delivery}
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            admin_url=stack.admin_url,
            ingress_url=stack.ingress_url,
            clusters={cluster: stack.bootstrap_servers},
            topics={
                clicks: {"cluster": cluster, "partitions": 2},
                counts: {"cluster": cluster, "partitions": 1},
                places: {"cluster": cluster, "partitions": 1},
            },
            worker={"app": "tests.integration.windows_app:app", "uri": f"http://127.0.0.1:{port}"},
            bindings=[
                {"name": clicks, "topic": clicks, **route, "window": window},
                {"name": places, "topic": places, **route, "table": True},
            ],
        )
    )
    spec = load_bindings(path)
    log = tmp_path / "worker.log"
    try:
        with cli_worker(path, log) as worker:
            await wait_until(
                lambda: read_log(log),
                lambda text: "change(s) applied" in text or worker.poll() is not None,
                timeout=120,
                describe=lambda text: text[-2000:],
            )
            applied = logged(log)
            assert worker.poll() is None, applied
            assert f"registered http://127.0.0.1:{port}" in applied, applied
            summary = re.search(r"(\d+) of (\d+) change\(s\) applied", applied)
            assert summary and summary[1] == summary[2], applied
            # Restate discovered the provided objects: apply has nothing left to do.
            again = run_cli("apply", "-f", str(path), cwd=REPO)
            assert again.returncode == 0 and "No changes" in again.stdout, again.stdout
            subscribed = {
                s.sink
                for s in await restate_admin.list_subscriptions()
                if s.source.startswith(f"kafka://{cluster}/")
            }
            want_sinks = {f"service://{clicks}/add", f"service://{places}/put"}
            assert subscribed == (want_sinks if delivery == "subscription" else set())

            # Busy keys over three windows, shuffled (out of order, within the grace); a quiet
            # key with records in the first window only. No record comes after them, so every
            # window, the quiet key's too, is closed by its timer.
            rng = random.Random(run)
            base = int(time.time() * 1000) // SIZE_MS * SIZE_MS - 2 * SIZE_MS
            produced = [(f"busy{i % 2}", base + rng.randrange(3 * SIZE_MS)) for i in range(60)]
            produced += [("quiet", base + rng.randrange(SIZE_MS)) for _ in range(3)]
            rng.shuffle(produced)
            truth = Counter((key, ts - ts % SIZE_MS) for key, ts in produced)
            produce_records(
                stack.bootstrap_servers,
                clicks,
                [Record(k, json.dumps({"ts": ts})) for k, ts in produced],
            )
            produce_records(
                stack.bootstrap_servers,
                places,
                [
                    Record("p1", json.dumps({"name": "Pizzeria", "v": 1})),
                    Record("p2", json.dumps({"name": "Sushi", "v": 1})),
                    Record("p1", json.dumps({"name": "Pizzeria", "v": 2})),
                    Record("p2", None),  # a tombstone: p2 is deleted
                    Record("p3", json.dumps({"name": "Tacos", "v": 1})),
                ],
            )

            emitted = await topic_records(
                stack.bootstrap_servers, counts, at_least=len(truth), timeout=120
            )
            # Every record's invocation done (the consumer sends keys side by side, so the
            # last record's being readable says nothing of another key's), the topics read.
            # A batch is one invocation for many records: then all read and none left running.
            batched_run = delivery == "batched"
            wanted = {} if batched_run else {clicks: len(produced), places: 5}
            statuses = await wait_until(
                lambda: binding_statuses(spec, restate_admin, TopicAdmin),
                lambda ss: all(
                    s.invocations.get("succeeded", 0) >= wanted.get(s.name, 1)
                    and (
                        not batched_run or sum(s.invocations.values()) == s.invocations["succeeded"]
                    )
                    and s.total_lag == 0
                    for s in ss
                ),
                timeout=90,
                describe=lambda ss: str([(s.name, s.invocations, s.total_lag) for s in ss]),
            )
            async with httpx.AsyncClient(base_url=stack.ingress_url, timeout=30) as ingress:

                async def read(key: str) -> Any:
                    response = await ingress.post(f"/{places}/{key}/get")
                    response.raise_for_status()
                    return response.json() if response.content else None

                table = {key: await read(key) for key in ("p1", "p2", "p3")}
                joined = await ingress.post(
                    f"/WindowsWorkerJoiner/{run}/lookup", json={"table": places, "key": "p1"}
                )
                joined.raise_for_status()
            assert worker.poll() is None, logged(log)
    finally:
        await drop_cluster(restate_admin, cluster)

    results = [json.loads(m.value or b"")["data"] for m in emitted]
    assert all(r["final"] for r in results)
    got = Counter({(r["key"], r["start"]): r["value"] for r in results})
    assert len(results) == len(got), "a window was emitted twice"
    assert got == truth, "the counts differ from what was produced"
    assert [start for key, start in got if key == "quiet"] == [base]
    assert table == {
        "p1": {"name": "Pizzeria", "v": 2},
        "p2": None,
        "p3": {"name": "Tacos", "v": 1},
    }
    state = {"subscription": "active", "consumer": "consumer", "batched": "batched"}[delivery]
    assert [(s.name, s.state) for s in statuses] == [(clicks, state), (places, state)]
    assert joined.json() == {"name": "Pizzeria", "v": 2}
