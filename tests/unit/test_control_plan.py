"""compute_plan: the diff between a bindings file and hand-built live state (no engines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from restate_stream.bindings import BindingsFile, parse_bindings
from restate_stream.control.admin import Deployment, KafkaCluster, Subscription
from restate_stream.control.plan import (
    AddPartitions,
    CreateCluster,
    CreateSubscription,
    CreateTopic,
    DeleteCluster,
    DeleteSubscription,
    LiveState,
    Plan,
    RegisterDeployment,
    UpdateCluster,
    compute_plan,
)
from restate_stream.testing import bindings_yaml

FILE = Path("conf/bindings.yaml")
BOOTSTRAP = "127.0.0.1:9092"
LOCAL = {"bootstrap.servers": BOOTSTRAP}
# The consumer options restate-stream adds to every subscription unless `options:` set them.
DEFAULTS = {"session.timeout.ms": "10000", "heartbeat.interval.ms": "3000"}


def parse(text: str, env: dict[str, str] | None = None) -> BindingsFile:
    return parse_bindings(text, FILE, env or {})


def one_binding(*, worker: dict[str, Any] | None = None, **fields: Any) -> BindingsFile:
    """One binding `orders` -> Orders/handle on the cluster `local`, with `fields` added."""
    binding = {"name": "orders", "topic": "orders", "handler": "Orders/handle", **fields}
    return parse(bindings_yaml(clusters={"local": BOOTSTRAP}, worker=worker, bindings=[binding]))


def live(
    *,
    clusters: dict[str, dict[str, str]] | None = None,
    subscriptions: list[Subscription] | None = None,
    deployments: list[Deployment] | None = None,
    topics: dict[str, dict[str, int]] | None = None,
    handlers: set[str] | None = None,
) -> LiveState:
    subscriptions = subscriptions or []
    return LiveState(
        clusters={name: KafkaCluster(name, props) for name, props in (clusters or {}).items()},
        subscriptions=subscriptions,
        deployments=deployments or [],
        topics=topics or {},
        # By default Restate knows the handlers the live subscriptions point at.
        handlers=handlers
        if handlers is not None
        else {s.sink.removeprefix("service://") for s in subscriptions},
    )


def sub(
    id_: str,
    group: str,
    *,
    source: str = "kafka://local/orders",
    sink: str = "service://Orders/handle",
    start: str = "earliest",
    **extra: str,
) -> Subscription:
    """A subscription as Restate lists it (created by apply: with restate-stream's defaults),
    with the client.id Restate adds by itself."""
    options = {
        "group.id": group,
        "auto.offset.reset": start,
        **DEFAULTS,
        "client.id": "restate",
        **extra,
    }
    return Subscription(id_, source, sink, options)


def converged(**overrides: object) -> LiveState:
    """Live state matching one_binding() exactly."""
    base: dict[str, object] = {
        "clusters": {"local": dict(LOCAL)},
        "subscriptions": [sub("sub_1", "restate-stream.orders")],
        "topics": {"local": {"orders": 3}},
    }
    base.update(overrides)
    return live(**base)  # type: ignore[arg-type]


def of_type(plan: Plan, kind: type) -> list:  # type: ignore[type-arg]
    return [c for c in plan.changes if isinstance(c, kind)]


# --- 1. empty live state --------------------------------------------------------------------

FULL = bindings_yaml(
    clusters={"local": BOOTSTRAP},
    topics={
        "orders": {"partitions": 4, "replication_factor": 1, "config": {"retention.ms": "1000"}}
    },
    worker={"app": "examples.food_ordering.app:app", "uri": "http://worker:9080"},
    bindings=[
        {
            "name": "orders",
            "topic": "orders",
            "handler": "Orders/handle",
            "dead_letter": "orders-dlq",
            "start": "latest",
            "options": {"max.poll.interval.ms": "60000"},
        },
        {
            "name": "payments",
            "topic": "payments",
            "handler": "Payments/handle",
            "group": "pinned-payments",
        },
    ],
)


def test_empty_live_state_creates_everything_in_order() -> None:
    spec = parse(FULL)
    plan = compute_plan(spec, live())

    assert plan.changes == [
        CreateCluster("local", {"bootstrap.servers": BOOTSTRAP}),
        CreateTopic("local", "orders", 4, 1, {"retention.ms": "1000"}),
        CreateTopic("local", "orders-dlq", None, None, {}, reason="dead letters of orders"),
        RegisterDeployment("http://worker:9080"),
        CreateSubscription(
            "orders",
            "kafka://local/orders",
            "service://Orders/handle",
            {
                "group.id": "restate-stream.orders",
                "auto.offset.reset": "latest",
                **DEFAULTS,
                "max.poll.interval.ms": "60000",
            },
            "new, group restate-stream.orders, starts at latest unless the group has offsets",
        ),
        CreateSubscription(
            "payments",
            "kafka://local/payments",
            "service://Payments/handle",
            {"group.id": "pinned-payments", "auto.offset.reset": "earliest", **DEFAULTS},
            "new, group pinned-payments, starts at earliest unless the group has offsets",
        ),
    ]
    dlq = plan.changes[2]
    assert isinstance(dlq, CreateTopic) and "orders" in dlq.reason
    assert "orders" in dlq.describe()
    assert not plan.empty
    assert plan.render().endswith("6 change(s).")


def test_no_deployment_registration_without_worker() -> None:
    plan = compute_plan(one_binding(), live())
    assert of_type(plan, RegisterDeployment) == []
    assert [type(c) for c in plan.changes] == [CreateCluster, CreateSubscription]


def test_change_order_across_all_kinds() -> None:
    """clusters, topics, deployment, sub deletes, sub creates, pruned deletes, cluster deletes."""
    spec = parse(FULL)
    state = live(
        clusters={"local": {"bootstrap.servers": "old:9092"}, "stale": LOCAL},
        subscriptions=[
            # orders with a changed handler: delete + create
            sub("sub_old", "restate-stream.orders", sink="service://Orders/old", start="latest"),
            # undeclared: pruned
            sub("sub_stray", "someone-else", source="kafka://stale/x"),
        ],
        topics={"local": {"orders": 2}},
    )
    plan = compute_plan(spec, state, prune=True)
    assert [type(c) for c in plan.changes] == [
        UpdateCluster,
        AddPartitions,
        CreateTopic,
        RegisterDeployment,
        DeleteSubscription,
        CreateSubscription,
        CreateSubscription,
        DeleteSubscription,
        DeleteCluster,
    ]
    assert plan.changes[4].id == "sub_old"  # type: ignore[union-attr]
    assert plan.changes[7].id == "sub_stray"  # type: ignore[union-attr]
    assert plan.changes[8] == DeleteCluster("stale")


# --- 2. converged ---------------------------------------------------------------------------


def test_live_state_equal_to_file_is_empty_plan() -> None:
    plan = compute_plan(one_binding(), converged())
    assert plan.changes == []
    assert plan.empty
    assert "No changes" in plan.render()
    assert any("sub_1" in line and "up to date" in line for line in plan.unchanged)
    assert plan.notes == []


def test_converged_full_file_is_empty_plan() -> None:
    spec = parse(FULL)
    state = live(
        clusters={"local": dict(LOCAL)},
        subscriptions=[
            sub("s1", "restate-stream.orders", start="latest", **{"max.poll.interval.ms": "60000"}),
            sub(
                "s2",
                "pinned-payments",
                source="kafka://local/payments",
                sink="service://Payments/handle",
            ),
        ],
        deployments=[Deployment("dp_1", "http://worker:9080", ["Orders", "Payments"])],
        topics={"local": {"orders": 4, "orders-dlq": 1, "payments": 1}},
    )
    plan = compute_plan(spec, state)
    assert plan.changes == [], plan.render()
    assert "No changes" in plan.render()


# --- 3. handler changed ---------------------------------------------------------------------


def test_handler_change_deletes_then_recreates_with_same_group() -> None:
    state = converged(
        subscriptions=[sub("sub_1", "restate-stream.orders", sink="service://Orders/old")]
    )
    plan = compute_plan(one_binding(), state)
    assert len(plan.changes) == 2
    delete, create = plan.changes
    assert isinstance(delete, DeleteSubscription)
    assert delete.id == "sub_1"
    assert delete.binding == "orders"
    assert "service://Orders/old" in delete.reason
    assert "service://Orders/handle" in delete.reason
    assert isinstance(create, CreateSubscription)
    assert create.sink == "service://Orders/handle"
    assert create.options["group.id"] == "restate-stream.orders"
    assert "resumes" in create.reason


# --- 4. options changed ---------------------------------------------------------------------


def test_start_change_recreates() -> None:
    spec = one_binding(start="latest")
    plan = compute_plan(spec, converged())  # live has auto.offset.reset=earliest
    assert [type(c) for c in plan.changes] == [DeleteSubscription, CreateSubscription]
    assert plan.changes[0].id == "sub_1"  # type: ignore[union-attr]
    assert plan.changes[0].reason == (  # type: ignore[union-attr]
        "options changed: auto.offset.reset earliest -> latest"
    )
    assert plan.changes[1].options == {  # type: ignore[union-attr]
        "group.id": "restate-stream.orders",
        "auto.offset.reset": "latest",
        **DEFAULTS,
    }


def test_a_changed_secret_option_is_named_without_its_values() -> None:
    spec = one_binding(options={"sasl.password": "new-secret"})
    plan = compute_plan(spec, converged())
    delete, create = plan.changes
    assert isinstance(delete, DeleteSubscription) and isinstance(create, CreateSubscription)
    assert delete.reason == "options changed: sasl.password (a secret: values not shown)"
    for shown in (repr(delete), delete.describe(), repr(create), create.describe()):
        assert "new-secret" not in shown


def test_extra_live_option_recreates() -> None:
    state = converged(
        subscriptions=[sub("sub_1", "restate-stream.orders", **{"fetch.min.bytes": "10"})]
    )
    plan = compute_plan(one_binding(), state)
    assert [type(c) for c in plan.changes] == [DeleteSubscription, CreateSubscription]
    assert "fetch.min.bytes" not in plan.changes[1].options  # type: ignore[union-attr]


def test_new_file_option_recreates() -> None:
    spec = one_binding(options={"fetch.min.bytes": "10"})
    plan = compute_plan(spec, converged())
    assert [type(c) for c in plan.changes] == [DeleteSubscription, CreateSubscription]
    assert plan.changes[1].options["fetch.min.bytes"] == "10"  # type: ignore[union-attr]


def test_subscription_gets_a_10s_session_by_default() -> None:
    create = of_type(compute_plan(one_binding(), live()), CreateSubscription)[0]
    assert create.options == {
        "group.id": "restate-stream.orders",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": "10000",
        "heartbeat.interval.ms": "3000",
    }


def test_binding_options_win_over_the_session_defaults() -> None:
    spec = one_binding(options={"session.timeout.ms": "30000", "heartbeat.interval.ms": "5000"})
    create = of_type(compute_plan(spec, live()), CreateSubscription)[0]
    assert create.options["session.timeout.ms"] == "30000"
    assert create.options["heartbeat.interval.ms"] == "5000"


def test_heartbeat_default_is_at_most_a_third_of_a_set_session() -> None:
    short = one_binding(options={"session.timeout.ms": "6000"})
    options = of_type(compute_plan(short, live()), CreateSubscription)[0].options
    assert (options["session.timeout.ms"], options["heartbeat.interval.ms"]) == ("6000", "2000")
    long = one_binding(options={"session.timeout.ms": "60000"})
    options = of_type(compute_plan(long, live()), CreateSubscription)[0].options
    assert options["heartbeat.interval.ms"] == "3000"
    only_heartbeat = one_binding(options={"heartbeat.interval.ms": "1000"})
    options = of_type(compute_plan(only_heartbeat, live()), CreateSubscription)[0].options
    assert (options["session.timeout.ms"], options["heartbeat.interval.ms"]) == ("10000", "1000")
    # A heartbeat set alone, long: the default session stays three heartbeats long.
    slow_heartbeat = one_binding(options={"heartbeat.interval.ms": "5000"})
    options = of_type(compute_plan(slow_heartbeat, live()), CreateSubscription)[0].options
    assert (options["session.timeout.ms"], options["heartbeat.interval.ms"]) == ("15000", "5000")


def test_subscription_made_before_the_defaults_is_recreated_with_a_reason() -> None:
    old = Subscription(
        "sub_1",
        "kafka://local/orders",
        "service://Orders/handle",
        {"group.id": "restate-stream.orders", "auto.offset.reset": "earliest", "client.id": "r"},
    )
    plan = compute_plan(one_binding(), converged(subscriptions=[old]))
    delete, create = plan.changes
    assert isinstance(delete, DeleteSubscription) and isinstance(create, CreateSubscription)
    assert delete.reason == (
        "options changed: heartbeat.interval.ms unset -> 3000 (restate-stream's default), "
        "session.timeout.ms unset -> 10000 (restate-stream's default)"
    )
    assert "session.timeout.ms unset -> 10000" in delete.describe()
    assert create.options["session.timeout.ms"] == "10000"


def test_session_set_in_options_converges_and_names_no_default() -> None:
    spec = one_binding(options={"session.timeout.ms": "6000", "heartbeat.interval.ms": "1500"})
    live_options = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "1500"}
    assert compute_plan(
        spec, converged(subscriptions=[sub("s1", "restate-stream.orders", **live_options)])
    ).empty
    # The file drops its session options: back to the defaults, named as such.
    plan = compute_plan(
        one_binding(), converged(subscriptions=[sub("s1", "restate-stream.orders", **live_options)])
    )
    assert plan.changes[0].reason == (  # type: ignore[union-attr]
        "options changed: heartbeat.interval.ms 1500 -> 3000 (restate-stream's default), "
        "session.timeout.ms 6000 -> 10000 (restate-stream's default)"
    )
    # A value the file sets is not called a default.
    plan = compute_plan(one_binding(options={"session.timeout.ms": "20000"}), converged())
    assert plan.changes[0].reason == (  # type: ignore[union-attr]
        "options changed: session.timeout.ms 10000 -> 20000"
    )


def test_client_id_added_by_restate_is_ignored() -> None:
    bare = Subscription(
        "sub_1",
        "kafka://local/orders",
        "service://Orders/handle",
        {"group.id": "restate-stream.orders", "auto.offset.reset": "earliest", **DEFAULTS},
    )
    assert compute_plan(one_binding(), converged(subscriptions=[bare])).empty
    other_client = sub("sub_1", "restate-stream.orders", **{"client.id": "other"})
    assert compute_plan(one_binding(), converged(subscriptions=[other_client])).empty


# --- 5. duplicates --------------------------------------------------------------------------


def test_duplicate_live_subscriptions_keep_one() -> None:
    state = converged(
        subscriptions=[sub("sub_a", "restate-stream.orders"), sub("sub_b", "restate-stream.orders")]
    )
    plan = compute_plan(one_binding(), state)
    assert plan.changes == [
        DeleteSubscription(
            "sub_b",
            "kafka://local/orders",
            "service://Orders/handle",
            "duplicate of sub_a",
            "orders",
        )
    ]
    assert any("sub_a" in line for line in plan.unchanged)


def test_stale_and_current_for_one_binding_keeps_current() -> None:
    state = converged(
        subscriptions=[
            sub("sub_old", "restate-stream.orders", sink="service://Orders/old"),
            sub("sub_ok", "restate-stream.orders"),
        ]
    )
    plan = compute_plan(one_binding(), state)
    assert len(plan.changes) == 1
    (delete,) = plan.changes
    assert isinstance(delete, DeleteSubscription) and delete.id == "sub_old"
    assert of_type(plan, CreateSubscription) == []


# --- 6. paused ------------------------------------------------------------------------------


def test_paused_binding_with_live_subscription_is_deleted() -> None:
    spec = one_binding(paused=True)
    plan = compute_plan(spec, converged())
    assert len(plan.changes) == 1
    (delete,) = plan.changes
    assert isinstance(delete, DeleteSubscription)
    assert delete.id == "sub_1" and delete.binding == "orders"
    assert "restate-stream.orders" in delete.reason
    assert "keeps its offsets" in delete.reason
    assert of_type(plan, CreateSubscription) == []


def test_paused_binding_without_subscription_is_unchanged() -> None:
    spec = one_binding(paused=True)
    plan = compute_plan(spec, converged(subscriptions=[]))
    assert plan.changes == []
    assert any("orders" in line and "paused" in line for line in plan.unchanged)


# --- 7. undeclared / prune ------------------------------------------------------------------

STRAY = Subscription(
    "sub_stray", "kafka://other/t", "service://Other/h", {"group.id": "other", "client.id": "x"}
)


def undeclared() -> LiveState:
    return converged(
        clusters={"local": dict(LOCAL), "other": {"bootstrap.servers": "o:9092"}},
        subscriptions=[sub("sub_1", "restate-stream.orders"), STRAY],
    )


def test_undeclared_without_prune_only_notes() -> None:
    plan = compute_plan(one_binding(), undeclared())
    assert plan.changes == []
    assert any("sub_stray" in n and "--prune" in n for n in plan.notes)
    assert any("other" in n and "cluster" in n and "--prune" in n for n in plan.notes)
    assert "No changes" in plan.render()


def test_undeclared_with_prune_deletes_cluster_last() -> None:
    plan = compute_plan(one_binding(), undeclared(), prune=True)
    assert plan.changes == [
        DeleteSubscription(
            "sub_stray", "kafka://other/t", "service://Other/h", "not declared; --prune"
        ),
        DeleteCluster("other"),
    ]
    assert plan.notes == []


def test_subscription_without_group_id_is_undeclared() -> None:
    anon = Subscription("sub_anon", "kafka://local/orders", "service://Orders/handle", {})
    state = converged(subscriptions=[sub("sub_1", "restate-stream.orders"), anon])
    assert compute_plan(one_binding(), state).changes == []
    pruned = compute_plan(one_binding(), state, prune=True)
    assert [getattr(c, "id", None) for c in pruned.changes] == ["sub_anon"]


# --- 8. cluster properties ------------------------------------------------------------------

SECRET = bindings_yaml(
    clusters={"local": {"bootstrap.servers": BOOTSTRAP, "sasl.password": "${PASSWORD}"}}
)


def test_changed_bootstrap_servers_updates_cluster() -> None:
    state = converged(clusters={"local": {"bootstrap.servers": "old:9092"}})
    plan = compute_plan(one_binding(), state)
    assert plan.changes == [UpdateCluster("local", dict(LOCAL), ("bootstrap.servers",))]
    assert "bootstrap.servers" in plan.changes[0].describe()


def test_property_removed_from_file_updates_cluster() -> None:
    state = converged(clusters={"local": {**LOCAL, "security.protocol": "SSL"}})
    plan = compute_plan(one_binding(), state)
    assert plan.changes == [UpdateCluster("local", dict(LOCAL), ("security.protocol",))]


def test_redacted_secret_is_not_a_change_but_noted() -> None:
    spec = parse(SECRET, {"PASSWORD": "hunter2"})
    state = live(clusters={"local": {**LOCAL, "sasl.password": "***"}})
    plan = compute_plan(spec, state)
    assert plan.changes == []
    assert any("kafka cluster local" in line for line in plan.unchanged)
    assert len(plan.notes) == 1
    assert "redact" in plan.notes[0] and "--refresh-clusters" in plan.notes[0]


def test_redacted_secret_does_not_hide_other_changes() -> None:
    spec = parse(SECRET, {"PASSWORD": "hunter2"})
    state = live(clusters={"local": {"bootstrap.servers": "old:9092", "sasl.password": "***"}})
    plan = compute_plan(spec, state)
    assert plan.changes == [
        UpdateCluster("local", {**LOCAL, "sasl.password": "hunter2"}, ("bootstrap.servers",))
    ]


def test_refresh_clusters_forces_update() -> None:
    spec = parse(SECRET, {"PASSWORD": "hunter2"})
    state = live(clusters={"local": {**LOCAL, "sasl.password": "***"}})
    plan = compute_plan(spec, state, refresh_clusters=True)
    assert len(plan.changes) == 1
    (update,) = plan.changes
    assert isinstance(update, UpdateCluster)
    assert update.properties == {**LOCAL, "sasl.password": "hunter2"}
    assert update.changed == ("refresh",)
    assert plan.notes == []


def test_refresh_clusters_on_plain_cluster() -> None:
    plan = compute_plan(one_binding(), converged(), refresh_clusters=True)
    assert plan.changes == [UpdateCluster("local", dict(LOCAL), ("refresh",))]


# --- 9. topics ------------------------------------------------------------------------------

TOPIC = bindings_yaml(clusters={"local": BOOTSTRAP}, topics={"events": {"partitions": 6}})


def test_fewer_partitions_adds_partitions() -> None:
    plan = compute_plan(
        parse(TOPIC), live(clusters={"local": LOCAL}, topics={"local": {"events": 2}})
    )
    assert plan.changes == [AddPartitions("local", "events", 2, 6)]
    assert "2 -> 6" in plan.changes[0].describe()


def test_more_partitions_is_a_note_not_a_change() -> None:
    plan = compute_plan(
        parse(TOPIC), live(clusters={"local": LOCAL}, topics={"local": {"events": 9}})
    )
    assert plan.changes == []
    assert any("events" in n and "9" in n and "6" in n for n in plan.notes)
    assert any("events" in line for line in plan.unchanged)


def test_existing_topic_is_unchanged() -> None:
    plan = compute_plan(
        parse(TOPIC), live(clusters={"local": LOCAL}, topics={"local": {"events": 6}})
    )
    assert plan.changes == []
    assert plan.notes == []
    assert any("topic events" in line and "exists" in line for line in plan.unchanged)


def test_topic_without_partitions_never_grows() -> None:
    spec = one_binding(dead_letter="dlq")
    plan = compute_plan(spec, converged(topics={"local": {"dlq": 1}}))
    assert plan.changes == []
    assert any("topic dlq" in line for line in plan.unchanged)


def test_missing_topic_on_other_cluster_is_created() -> None:
    """A topic present on a different cluster does not count."""
    plan = compute_plan(
        parse(TOPIC), live(clusters={"local": LOCAL}, topics={"elsewhere": {"events": 6}})
    )
    assert plan.changes == [CreateTopic("local", "events", 6, None, {})]


def test_dead_letter_already_declared_is_not_duplicated() -> None:
    spec = parse(
        bindings_yaml(
            clusters={"local": BOOTSTRAP},
            topics={"dlq": {"partitions": 2}},
            bindings=[
                {
                    "name": "orders",
                    "topic": "orders",
                    "handler": "Orders/handle",
                    "dead_letter": "dlq",
                }
            ],
        )
    )
    plan = compute_plan(spec, live(clusters={"local": LOCAL}))
    assert of_type(plan, CreateTopic) == [CreateTopic("local", "dlq", 2, None, {})]


# --- 10. deployment -------------------------------------------------------------------------

WORKER = {"app": "pkg.app:app", "uri": "http://worker:9080"}


def test_registered_deployment_is_not_registered_again() -> None:
    state = converged(deployments=[Deployment("dp_1", "http://worker:9080", ["Orders"])])
    plan = compute_plan(one_binding(worker=WORKER), state)
    assert plan.changes == []
    assert any("http://worker:9080" in line for line in plan.unchanged)


def test_deployment_at_other_uri_registers() -> None:
    state = converged(
        deployments=[
            Deployment("dp_1", "http://elsewhere:9080", ["Orders"]),
            Deployment("dp_2", None, ["Lambda"]),
        ]
    )
    plan = compute_plan(one_binding(worker=WORKER), state)
    assert plan.changes == [RegisterDeployment("http://worker:9080")]


def test_registered_deployment_matches_despite_trailing_slash() -> None:
    """Restate stores the URI with a trailing slash."""
    state = converged(deployments=[Deployment("dp_1", "http://worker:9080/", ["Orders"])])
    assert compute_plan(one_binding(worker=WORKER), state).changes == []


# --- found by these tests, fixed in plan.py --------------------------------------------------


def test_same_pinned_group_on_two_clusters_converges() -> None:
    spec = parse(
        bindings_yaml(
            clusters={"a": "a:9092", "b": "b:9092"},
            bindings=[
                {"name": "one", "topic": "t", "cluster": "a", "handler": "S/h", "group": "shared"},
                {"name": "two", "topic": "t", "cluster": "b", "handler": "S/h", "group": "shared"},
            ],
        )
    )
    state = live(
        clusters={"a": {"bootstrap.servers": "a:9092"}, "b": {"bootstrap.servers": "b:9092"}},
        subscriptions=[
            sub("s_a", "shared", source="kafka://a/t", sink="service://S/h"),
            sub("s_b", "shared", source="kafka://b/t", sink="service://S/h"),
        ],
        topics={"a": {"t": 1}, "b": {"t": 1}},
    )
    plan = compute_plan(spec, state)
    assert plan.changes == [], plan.render()


def test_group_id_in_options_converges() -> None:
    spec = one_binding(options={"group.id": "custom"})
    state = converged(subscriptions=[sub("sub_1", "custom")])
    plan = compute_plan(spec, state)
    assert plan.changes == [], plan.render()


def test_registered_worker_missing_a_bound_handler_is_registered_again() -> None:
    state = converged(
        deployments=[Deployment("dp_1", "http://worker:9080/", ["Orders"])], handlers=set()
    )
    [change] = compute_plan(one_binding(worker=WORKER), state).changes
    assert isinstance(change, RegisterDeployment)
    assert "Restate does not know Orders/handle" in change.describe()
