"""`window:` and `table:` on a binding: each problem at its file:line:col, in words; and the
checks against the app (the reducer, the handler results go to, the object's name)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import restate

from restate_stream.bindings import BindingsError, check_against_app, parse_bindings
from restate_stream.bindings.model import Problem
from restate_stream.windows import Reducer

FILE = Path("/app/bindings.yaml")
HEADER = """\
kafka:
  clusters:
    local: {bootstrap.servers: "127.0.0.1:9092"}
bindings:
  - name: counts
    topic: clicks
"""


def problems(text: str) -> list[Problem]:
    with pytest.raises(BindingsError) as caught:
        parse_bindings(HEADER + text, FILE)
    return caught.value.problems


def only(text: str) -> str:
    (problem,) = problems(text)
    return f"{problem.line}:{problem.column}: {problem.field}: {problem.message}"


def test_a_window_binding_needs_no_handler_and_is_served_under_its_name() -> None:
    spec = parse_bindings(HEADER + "    window: {type: tumbling, size: 1m, to: out}\n", FILE)
    (b,) = spec.bindings
    assert (b.sink, b.provided) == ("service://counts/add", True)
    assert b.window is not None and (b.window.kind, b.window.emit, b.window.late) == (
        "count",
        "final",
        "drop",
    )


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (
            "{type: tumbling, size: 60, to: out}",
            "7:36: bindings[0].window.size: expected a duration with a unit",
        ),
        (
            "{type: rolling, size: 1m, to: out}",
            '7:20: bindings[0].window.type: expected "tumbling", "hopping", "sliding" or "session"',
        ),
        (
            "{type: session, to: out}",
            "7:13: bindings[0].window: a session window needs gap:",
        ),
        (
            "{type: session, gap: 5m, size: 1m, to: out}",
            "7:44: bindings[0].window.size: a session window has no size:",
        ),
        (
            "{type: session, gap: 5, to: out}",
            "7:34: bindings[0].window.gap: expected a duration with a unit",
        ),
        (
            "{type: sliding, gap: 5m, to: out}",
            "7:13: bindings[0].window: a sliding window needs size:",
        ),
        (
            "{type: tumbling, size: 1m, gap: 5m, to: out}",
            "7:45: bindings[0].window.gap: gap applies only to type: session",
        ),
        (
            "{type: sliding, size: 1m, advance: 5s, to: out}",
            "7:48: bindings[0].window.advance: advance applies only to type: hopping",
        ),
        (
            "{type: hopping, size: 1m, to: out}",
            "7:13: bindings[0].window: a hopping window needs advance:",
        ),
        (
            "{type: hopping, size: 1m, advance: 2m, to: out}",
            "7:48: bindings[0].window.advance: advance must not be longer than size",
        ),
        (
            "{type: tumbling, size: 1m, aggregate: sum, to: out}",
            "7:51: bindings[0].window.aggregate: aggregate: sum needs field:",
        ),
        (
            "{type: tumbling, size: 1m}",
            "7:13: bindings[0].window: give exactly one of to: (a topic) or to_handler:",
        ),
        (
            "{type: tumbling, size: 1m, to: out, late: dead_letter}",
            "7:55: bindings[0].window.late: late: dead_letter needs the binding's dead_letter:",
        ),
        (
            "{type: tumbling, size: 0.4ms, to: out}",
            "7:36: bindings[0].window.size: size must be a whole number of milliseconds",
        ),
        (
            "{type: hopping, size: 1m, advance: 0.2ms, to: out}",
            "7:48: bindings[0].window.advance: advance must be a whole number of milliseconds",
        ),
        (
            "{type: session, gap: 1.5ms, to: out}",
            "7:34: bindings[0].window.gap: gap must be a whole number of milliseconds",
        ),
        (
            "{type: tumbling, size: 1m, to: clicks}",
            "7:44: bindings[0].window.to: the results topic must differ from the binding's topic",
        ),
        (
            "{type: hopping, size: 1h, advance: 1s, to: out}",
            "7:48: bindings[0].window.advance: size / advance is 3,600: each record would go "
            "into that many windows; at most 100",
        ),
        (
            "{type: tumbling, size: 1ms, to: out, grace: 1h}",
            "7:57: bindings[0].window.grace: (size + grace) / size is 3,600,001: a key could hold "
            "that many open windows; at most 10,000",
        ),
        (
            "{type: tumbling, size: 1m, to: out, grace: -1s}",
            "7:56: bindings[0].window.grace: expected a duration with a unit, 0s or more",
        ),
    ],
)
def test_window_problems_name_their_place(window: str, expected: str) -> None:
    assert only(f"    window: {window}\n").startswith(expected)


def test_sliding_and_session_windows_parse() -> None:
    text = (
        "    window: {type: session, gap: 30m, grace: 1m, aggregate: collect, to: out}\n"
        "  - {name: recent, topic: clicks, window: {type: sliding, size: 5m, to: out}}\n"
    )
    session, sliding = (b.window for b in parse_bindings(HEADER + text, FILE).bindings)
    assert session is not None and sliding is not None
    assert (session.type, session.length, session.hop) == (
        "session",
        timedelta(minutes=30),
        timedelta(minutes=30),
    )
    assert (sliding.type, sliding.length) == ("sliding", timedelta(minutes=5))


def test_a_window_binding_refuses_a_handler_and_a_table_a_bytes_format() -> None:
    assert only("    handler: a/b\n    window: {type: tumbling, size: 1m, to: o}\n").startswith(
        "7:14: bindings[0].handler: a window binding is served by restate-stream's own object"
    )
    assert only("    format: bytes\n    table: true\n").startswith(
        "7:13: bindings[0].format: a table keeps values as JSON"
    )


@dataclass
class Total:
    n: int = 0


def add(total: Total, value: dict[str, int]) -> Total:
    return Total(total.n + 1)


totals = Reducer(initial=Total, reduce=add)
not_a_reducer = add
reports = restate.VirtualObject("reports")


@reports.handler()
async def on_window(ctx: restate.ObjectContext, result: dict[str, int]) -> None:
    return None


def test_the_app_check_loads_the_reducer_and_finds_the_handler_results_go_to() -> None:
    here = __name__
    good = (
        f'    window: {{type: tumbling, size: 1m, reducer: "{here}:totals", '
        "to_handler: reports/on_window}\n"
    )
    check_against_app(parse_bindings(HEADER + good, FILE), [reports])

    bad = (
        f'    window: {{type: tumbling, size: 1m, reducer: "{here}:not_a_reducer", '
        "to_handler: reports/on_windw}\n"
    )
    with pytest.raises(BindingsError) as caught:
        check_against_app(parse_bindings(HEADER + bad, FILE), [reports])
    messages = [p.message for p in caught.value.problems]
    assert any("is a function, not a restate_stream.windows.Reducer" in m for m in messages)
    assert any("no handler 'reports/on_windw'; did you mean 'on_window'?" in m for m in messages)


audit = restate.Workflow("audit")


@audit.main()
async def run(ctx: restate.WorkflowContext, result: dict[str, int]) -> None:
    return None


def test_a_workflow_run_handler_takes_final_results_only() -> None:
    window = "    window: {type: tumbling, size: 1m, emit: current, to_handler: audit/run}\n"
    with pytest.raises(BindingsError) as caught:
        check_against_app(parse_bindings(HEADER + window, FILE), [audit])
    (problem,) = caught.value.problems
    assert "'audit/run' is a workflow's run handler, which runs once per window" in problem.message
    final = window.replace("emit: current", "emit: final")
    check_against_app(parse_bindings(HEADER + final, FILE), [audit])


def merge_totals(earlier: Total, later: Total) -> Total:
    return Total(earlier.n + later.n)


mergeable = Reducer(initial=Total, reduce=add, merge=merge_totals)


@pytest.mark.parametrize("kind", ["session, gap: 5m", "sliding, size: 5m"])
def test_a_reducer_without_merge_is_refused_for_windows_that_merge(kind: str) -> None:
    def window(reducer: str) -> str:
        return f'    window: {{type: {kind}, reducer: "{__name__}:{reducer}", to: out}}\n'

    with pytest.raises(BindingsError) as caught:
        check_against_app(parse_bindings(HEADER + window("totals"), FILE), [reports])
    (problem,) = caught.value.problems
    assert f"{problem.file}:{problem.line}:{problem.column}: {problem.field}" == (
        "/app/bindings.yaml:7:13: bindings[0].window"
    )
    assert f"'{__name__}:totals' has no merge; a {kind.split(',')[0]} window" in problem.message
    check_against_app(parse_bindings(HEADER + window("mergeable"), FILE), [reports])
    tumbling = f'    window: {{type: tumbling, size: 1m, reducer: "{__name__}:totals", to: out}}\n'
    check_against_app(parse_bindings(HEADER + tumbling, FILE), [reports])


def test_the_app_must_leave_the_bindings_name_free() -> None:
    clash = restate.VirtualObject("counts")
    spec = parse_bindings(HEADER + "    table: true\n", FILE)
    with pytest.raises(BindingsError, match="the app has a service 'counts'"):
        check_against_app(spec, [clash])


def test_the_worker_adds_the_window_and_table_objects_to_the_users_app() -> None:
    from restate_stream.bindings.app_check import find_endpoint
    from restate_stream.runtime.provided import provided_services, serve_provided

    spec = parse_bindings(
        HEADER + "    table: true\n  - {name: counts2, topic: c, window: {type: tumbling, "
        "size: 1m, to: out}}\n",
        FILE,
    )
    app = restate.app([reports])
    serve_provided(app, provided_services(spec, [reports]))
    endpoint = find_endpoint(app)
    assert endpoint is not None
    assert set(endpoint.services) == {"reports", "counts", "counts2"}
    assert set(endpoint.services["counts2"].handlers) == {"add", "close", "windows"}


class Opaque:  # a plain class: pydantic cannot keep it as JSON
    def __init__(self, n: int = 0) -> None:
        self.n = n


def add_opaque(total: Opaque, value: dict[str, int]) -> Opaque:
    return Opaque(total.n + 1)


opaque = Reducer(initial=Opaque, reduce=add_opaque)


def test_a_reducer_whose_running_value_cannot_be_json_is_refused_with_its_place() -> None:
    window = f'    window: {{type: tumbling, size: 1m, reducer: "{__name__}:opaque", to: out}}\n'
    with pytest.raises(BindingsError) as caught:
        check_against_app(parse_bindings(HEADER + window, FILE), [reports])
    (problem,) = caught.value.problems
    assert f"{problem.line}:{problem.column}: {problem.field}" == "7:13: bindings[0].window"
    assert "cannot be kept as JSON" in problem.message and "Opaque" in problem.message
