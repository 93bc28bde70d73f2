"""validate, plan, apply, pause, resume and status as a user runs them, on the real engines."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from examples.quickstart.app import account, app
from restate_stream.bindings import load_bindings
from restate_stream.control.admin import AdminClient
from restate_stream.runtime.bound import bind
from restate_stream.stack import LocalStack
from restate_stream.testing import (
    RestateApp,
    bindings_yaml,
    drop_cluster,
    object_state,
    produce_json,
    run_cli,
    wait_until,
)

pytestmark = pytest.mark.engines
REPO = Path(__file__).resolve().parents[2]


def cli(*args: str) -> tuple[int, str, str]:
    done = run_cli(*args, cwd=REPO)
    return done.returncode, done.stdout, done.stderr


async def test_validate_plan_apply_pause_resume(
    restate_stream_stack: LocalStack,
    restate_admin: AdminClient,
    restate_app: RestateApp,
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:8]
    topic, cluster = f"cmd-{run}", f"c-{run}"
    path = tmp_path / "bindings.yaml"

    def write(worker_uri: str) -> None:
        path.write_text(
            bindings_yaml(
                admin_url=restate_stream_stack.admin_url,
                clusters={cluster: restate_stream_stack.bootstrap_servers},
                topics={topic: {"cluster": cluster, "partitions": 2}},
                worker={"app": "examples.quickstart.app:app", "uri": worker_uri},
                bindings=[{"name": topic, "topic": topic, "handler": "Account/apply_payment"}],
            )
        )

    write("http://127.0.0.1:9080")
    file = str(path)

    code, out, err = cli("validate", "-f", file)
    assert code == 0, err
    broken = tmp_path / "broken.yaml"
    broken.write_text(path.read_text().replace("Account/apply_payment", "Account/apply_paymnt"))
    code, out, err = cli("validate", "-f", str(broken))
    assert code == 2 and f"{broken}:" in err and "apply_paymnt" in err, (out, err)

    bind([account], load_bindings(path))
    async with restate_app(app) as served:
        write(served.uri)  # apply registers the worker named in the file
        code, out, err = cli("plan", "-f", file)
        assert code == 0, err
        assert topic in out and cluster in out and "No changes" not in out, out
        before = await restate_admin.list_subscriptions()
        assert not [s for s in before if s.source.endswith(f"/{topic}")], "plan changed nothing"

        code, out, err = cli("apply", "-f", file)
        assert code == 0, err
        code, out, err = cli("plan", "-f", file)
        assert code == 0 and "No changes" in out, out

        async def balances() -> dict[str, Any]:
            every = await object_state(restate_admin, "Account", "balance")
            return {k: v for k, v in every.items() if k.startswith(run)}

        produce_json(
            restate_stream_stack.bootstrap_servers, topic, [(f"{run}-a", {"amount_cents": 1})]
        )
        await wait_until(balances, lambda b: b == {f"{run}-a": 1})

        code, out, err = cli("pause", topic, "-f", file)
        assert code == 0, err
        assert load_bindings(path).bindings[0].paused, "pause edits the file"
        live = await restate_admin.list_subscriptions()
        assert not [s for s in live if s.source.endswith(f"/{topic}")], "and applies it"
        code, out, err = cli("status", "-f", file)
        [row] = [line.split() for line in out.splitlines() if line.startswith(topic)]
        assert code == 0 and row[1] == "paused", out

        produce_json(
            restate_stream_stack.bootstrap_servers,
            topic,
            [(f"{run}-a", {"amount_cents": 10}) for _ in range(5)],
        )
        code, out, err = cli("resume", topic, "-f", file)
        assert code == 0, err
        assert not load_bindings(path).bindings[0].paused, "resume edits the file"
        # Resumed from the group's offsets: the records sent while paused, each once.
        await wait_until(balances, lambda b: b == {f"{run}-a": 51})
        code, out, err = cli("status", "-f", file)
        [row] = [line.split() for line in out.splitlines() if line.startswith(topic)]
        assert code == 0 and row[1] == "active", out

        # After rotating a secret: the cluster's properties are sent again, nothing else.
        code, out, err = cli("apply", "-f", file, "--refresh-clusters")
        assert code == 0, err
        assert f"~ kafka cluster {cluster}: refresh" in out and "subscription" not in out, out
        code, out, err = cli("plan", "-f", file)
        assert code == 0 and "No changes" in out, out

        code, out, err = cli("pause", "no-such-binding", "-f", file)
        assert code != 0 and "no-such-binding" in err, (out, err)
        await drop_cluster(restate_admin, cluster)
