"""Planning a hand-over between deliveries (control/migrate.py) as data: which steps, in which
order, and the refusals; and the step that edits the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from restate_stream.bindings import BindingsFile, load_bindings, parse_bindings
from restate_stream.bindings.edit import set_delivery
from restate_stream.cli.app import cli
from restate_stream.cli.migrate import render_report, render_steps, report_json
from restate_stream.control.admin import Subscription
from restate_stream.control.migrate import (
    MigrationError,
    MigrationReport,
    StartSubscription,
    StepOutcome,
    StopSubscription,
    WaitGroupEmpty,
    WriteDelivery,
    plan_migration,
)
from restate_stream.control.plan import DeleteSubscription, LiveState, compute_plan
from restate_stream.control.plan import subscription_options as options_of
from restate_stream.testing import bindings_yaml

FILE = Path("conf/bindings.yaml")
GROUP = "restate-stream.orders"


def spec(**fields: Any) -> BindingsFile:
    binding = {"name": "orders", "topic": "orders", "handler": "Orders/handle", **fields}
    text = bindings_yaml(clusters={"local": "127.0.0.1:9092"}, bindings=[binding])
    return parse_bindings(text, FILE, {})


def live_subscription(s: BindingsFile, id_: str = "sub_1") -> Subscription:
    b = s.bindings[0]
    as_subscription = spec(**({"group": b.group} if b.group else {})).bindings[0]
    options = {**options_of(as_subscription), "client.id": "restate"}
    return Subscription(id_, b.source, b.sink, options)


def kinds(steps: tuple[Any, ...]) -> list[str]:
    return [type(step).__name__ for step in steps]


def test_to_consumer_stops_the_subscription_waits_for_the_group_then_writes_the_file() -> None:
    s = spec()
    migration = plan_migration(s, "orders", "consumer", [live_subscription(s)], "exclusive")
    assert kinds(migration.steps) == ["StopSubscription", "WaitGroupEmpty", "WriteDelivery"]
    stop, wait, write = migration.steps
    assert isinstance(stop, StopSubscription) and stop.id == "sub_1"
    assert isinstance(wait, WaitGroupEmpty) and (wait.cluster, wait.group) == ("local", GROUP)
    assert write == WriteDelivery(FILE, "orders", "consumer")
    assert migration.group == GROUP


def test_to_subscription_writes_the_file_waits_for_the_consumer_then_creates_it() -> None:
    s = spec(delivery="consumer", group="orders-app")
    migration = plan_migration(s, "orders", "subscription", [])
    assert kinds(migration.steps) == ["WriteDelivery", "WaitGroupEmpty", "StartSubscription"]
    *_, start = migration.steps
    assert isinstance(start, StartSubscription)
    assert start.options["group.id"] == "orders-app"  # the same group: its offsets carry over
    assert start.sink == "service://Orders/handle"


def test_a_migration_cut_short_continues_from_what_is_live() -> None:
    # The subscription was deleted, the file not written yet: only the write is left.
    assert kinds(plan_migration(spec(), "orders", "consumer", []).steps) == ["WriteDelivery"]
    # The file says subscription, none was created yet: wait for the consumer, create it.
    steps = plan_migration(spec(), "orders", "subscription", []).steps
    assert kinds(steps) == ["WaitGroupEmpty", "StartSubscription"]


def test_a_paused_binding_only_changes_its_file() -> None:
    s = spec(delivery="consumer", paused=True)
    assert kinds(plan_migration(s, "orders", "subscription", []).steps) == ["WriteDelivery"]


@pytest.mark.parametrize(
    ("fields", "to", "live", "message"),
    [
        ({"delivery": "consumer"}, "consumer", False, "already delivered by the consumer"),
        ({}, "subscription", True, r"already delivered by a subscription \(sub_1"),
        ({"batch": {"max_records": 10}}, "subscription", False, "is batched"),
        ({"keyed": False}, "consumer", True, "unkeyed"),
    ],
)
def test_refusals_say_why(fields: dict[str, Any], to: str, live: bool, message: str) -> None:
    s = spec(**fields)
    subscriptions = [live_subscription(s)] if live else []
    with pytest.raises(MigrationError, match=message):
        plan_migration(s, "orders", to, subscriptions)  # type: ignore[arg-type]


def test_an_unknown_binding_is_named_with_the_known_ones() -> None:
    with pytest.raises(MigrationError, match=r"no binding named 'ordrs' \(bindings: orders\)"):
        plan_migration(spec(), "ordrs", "consumer", [])


def test_a_handler_without_a_high_water_is_refused() -> None:
    s = spec()
    with pytest.raises(MigrationError, match="Orders/handle is shared; only an exclusive"):
        plan_migration(s, "orders", "consumer", [live_subscription(s)], "shared")
    with pytest.raises(MigrationError, match=rf"{FILE}:\d+:\d+: binding orders"):
        plan_migration(s, "orders", "consumer", [live_subscription(s)], "service")


def test_apply_of_a_changed_delivery_deletes_the_subscription_without_waiting() -> None:
    """The worker follows the file and may be in the group already: waiting for it to empty
    would never end. The high-water makes the overlap exact."""
    s = spec(delivery="consumer")
    state = LiveState({}, [live_subscription(spec())], [], {})
    (delete,) = [c for c in compute_plan(s, state).changes if isinstance(c, DeleteSubscription)]
    assert delete.wait_group is None and "as `migrate` does" in delete.reason


def test_set_delivery_adds_or_rewrites_the_line_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "bindings.yaml"
    text = bindings_yaml(
        clusters={"local": "127.0.0.1:9092"},
        bindings=[
            {"name": "orders", "topic": "orders", "handler": "Orders/handle"},
            {"name": "other", "topic": "o", "handler": "O/h", "delivery": "consumer"},
        ],
    )
    path.write_text("# keep me\n" + text)
    assert set_delivery(path, "orders", "consumer")
    assert not set_delivery(path, "orders", "consumer")  # already so
    assert set_delivery(path, "other", "subscription")
    after = load_bindings(path)
    assert [b.delivered_by for b in after.bindings] == ["consumer", "subscription"]
    assert path.read_text().startswith("# keep me\n")


def test_apply_of_an_unkeyed_bindings_changed_delivery_says_it_is_not_exact() -> None:
    s = spec(delivery="consumer", keyed=False)
    state = LiveState({}, [live_subscription(spec(keyed=False))], [], {})
    (note,) = [n for n in compute_plan(s, state).notes if "unkeyed" in n]
    assert "applied twice" in note and "migrate" in note


# --- the command renders what migrate returns --------------------------------------------------


def test_the_command_names_an_unknown_binding_before_it_calls_restate(tmp_path: Path) -> None:
    path = tmp_path / "bindings.yaml"
    path.write_text(
        bindings_yaml(
            clusters={"local": "127.0.0.1:9"},
            bindings=[{"name": "orders", "topic": "orders", "handler": "Orders/handle"}],
        )
    )
    args = ["migrate", "ordrs", "--to", "consumer", "-f", str(path), "--wait", "0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "no binding named 'ordrs' (bindings: orders)" in " ".join(result.output.split())


def test_a_failed_step_is_shown_with_the_steps_not_attempted() -> None:
    s = spec()
    migration = plan_migration(s, "orders", "consumer", [live_subscription(s)])
    stop, wait, write = migration.steps
    report = MigrationReport(
        migration,
        [
            StepOutcome(stop, "done"),
            StepOutcome(wait, "failed", "still 1 member(s)"),
            StepOutcome(write, "not attempted"),
        ],
    )
    text = render_report(report).plain
    assert "orders not moved to consumer" in text
    assert "[failed] wait until the deleted subscription's consumer has left group" in text
    assert "[not attempted] write `delivery: consumer`" in text
    assert "run migrate again" in text
    assert report_json(report)["steps"][1] == {
        "step": wait.describe(),
        "status": "failed",
        "detail": "still 1 member(s)",
    }
    steps = render_steps(migration).plain.splitlines()
    assert steps[0] == f"orders -> consumer (group {GROUP}):"
    assert steps[1:] == [f"  {i}. {step.describe()}" for i, step in enumerate(migration.steps, 1)]
