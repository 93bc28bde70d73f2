"""Bindings checked against a Restate app: services, handlers and handler kinds; importing apps."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import restate

from restate_stream.bindings import (
    AppImportError,
    BindingsError,
    BindingsFile,
    check_against_app,
    find_services,
    handler_kind,
    import_app,
    parse_bindings,
)
from restate_stream.runtime.serving import without_lifespan_warnings

greeter = restate.Service("greeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"hello {name}"


twin = restate.VirtualObject("driver-digital-twin")


@twin.handler()
async def handle_location(ctx: restate.ObjectContext, location: dict[str, Any]) -> None:
    return None


@twin.handler(kind="shared")
async def peek(ctx: restate.ObjectSharedContext, event: dict[str, Any]) -> None:
    return None


signup = restate.Workflow("signup")


@signup.main()
async def run(ctx: restate.WorkflowContext, email: str) -> None:
    return None


SERVICES = [greeter, twin, signup]


def spec(*bindings: str) -> BindingsFile:
    """A bindings file whose n-th binding (from 0) starts at line 5 + n."""
    text = "kafka:\n  clusters:\n    local: {bootstrap.servers: b}\nbindings:\n"
    text += "".join(f"  - {{name: b{i}, topic: t{i}, {b}}}\n" for i, b in enumerate(bindings))
    return parse_bindings(text, Path("bindings.yaml"), {})


def check_problem(binding_spec: BindingsFile) -> tuple[int, str, str]:
    with pytest.raises(BindingsError) as raised:
        check_against_app(binding_spec, SERVICES)
    (problem,) = raised.value.problems
    return problem.line, problem.field, problem.message


def test_compatible_bindings_pass() -> None:
    check_against_app(
        spec(
            "handler: driver-digital-twin/handle_location",
            "handler: driver-digital-twin/peek",  # shared: fine, just not ordered per key
            "handler: signup/run",
            "handler: greeter/greet, keyed: false",
        ),
        SERVICES,
    )


def test_missing_service_suggests_close_name() -> None:
    line, field, message = check_problem(spec("handler: driver-digital-twn/handle_location"))
    assert (line, field) == (5, "bindings[0].handler")
    assert message == (
        "service 'driver-digital-twn' is not in the app; did you mean 'driver-digital-twin'?"
    )


def test_missing_service_lists_services_when_nothing_is_close() -> None:
    _, _, message = check_problem(spec("handler: zzz/handle"))
    assert "the app's services are: driver-digital-twin, greeter, signup" in message


def test_missing_handler_suggests() -> None:
    line, field, message = check_problem(
        spec("handler: greeter/greet, keyed: false", "handler: driver-digital-twin/handle_loc")
    )
    assert (line, field) == (6, "bindings[1].handler")
    assert message == (
        "service 'driver-digital-twin' has no handler 'handle_loc'; did you mean 'handle_location'?"
    )


def test_keyed_binding_on_plain_service() -> None:
    line, field, message = check_problem(spec("handler: greeter/greet"))
    assert (line, field) == (5, "bindings[0].handler")
    assert "keyed binding needs a virtual object or workflow handler" in message
    assert "set keyed: false" in message


def test_unkeyed_binding_on_virtual_object() -> None:
    line, field, message = check_problem(
        spec("handler: driver-digital-twin/handle_location, keyed: false")
    )
    assert (line, field) == (5, "bindings[0].keyed")
    assert "virtual object" in message


def test_all_problems_reported_together() -> None:
    with pytest.raises(BindingsError) as raised:
        check_against_app(spec("handler: nope/x", "handler: greeter/greet"), SERVICES)
    assert [p.line for p in raised.value.problems] == [5, 6]
    assert str(raised.value).startswith("bindings.yaml:5:")


def test_handler_kinds() -> None:
    assert handler_kind(greeter, "greet") == "service"
    assert handler_kind(twin, "handle_location") == "exclusive"
    assert handler_kind(twin, "peek") == "shared"
    assert handler_kind(signup, "run") == "workflow"


# --- import_app -----------------------------------------------------------------------------

APP_SOURCE = """\
import restate

counter = restate.VirtualObject("counter")

@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> int:
    return n

pinger = restate.Service("pinger")

@pinger.handler()
async def ping(ctx: restate.Context) -> str:
    return "pong"

app = restate.app([counter])

endpoint = restate.endpoint.Endpoint()
endpoint.bind(pinger)

def plain():
    return None
"""


@pytest.fixture
def app_module(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    name = f"rs_test_app_{request.node.name.replace('[', '_').replace(']', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(APP_SOURCE))
    saved_path = list(sys.path)
    yield name, tmp_path
    sys.path[:] = saved_path
    sys.modules.pop(name, None)


def test_import_app_finds_services_behind_restate_app(app_module: tuple[str, Path]) -> None:
    name, directory = app_module
    app, services = import_app(f"{name}:app", app_dir=directory)
    assert callable(app)
    assert [s.name for s in services] == ["counter"]  # only what the app serves


def test_import_app_through_wrapper_and_endpoint(app_module: tuple[str, Path]) -> None:
    name, directory = app_module
    _, services = import_app(f"{name}:endpoint", app_dir=directory)
    assert [s.name for s in services] == ["pinger"]
    module = sys.modules[name]
    assert [s.name for s in find_services(without_lifespan_warnings(module.app))] == ["counter"]


def test_import_app_falls_back_to_module_scan(app_module: tuple[str, Path]) -> None:
    name, directory = app_module
    _, services = import_app(f"{name}:plain", app_dir=directory)
    assert sorted(s.name for s in services) == ["counter", "pinger"]


def test_import_app_errors(app_module: tuple[str, Path]) -> None:
    name, directory = app_module
    with pytest.raises(AppImportError, match=r"module\.path:attribute"):
        import_app("no_colon_here", app_dir=directory)
    with pytest.raises(AppImportError, match="no module named 'rs_test_missing_mod'"):
        import_app("rs_test_missing_mod:app", app_dir=directory)
    with pytest.raises(AppImportError, match="has no attribute 'ap'; did you mean 'app'"):
        import_app(f"{name}:ap", app_dir=directory)


def test_dedupe_needs_an_exclusive_handler() -> None:
    obj = restate.VirtualObject("Dd")

    @obj.handler(kind="shared")
    async def peek(ctx: restate.ObjectSharedContext, event: dict[str, Any]) -> None: ...

    spec = parse_bindings(
        "kafka: {clusters: {local: {bootstrap.servers: 'k:9092'}}}\n"
        "bindings:\n"
        "  - {name: b, topic: t, handler: Dd/peek, dedupe: true}\n",
        Path("dd.yaml"),
        env={},
    )
    with pytest.raises(BindingsError, match=r"dd.yaml:3:.*bindings\[0\]\.dedupe: .*exclusive"):
        check_against_app(spec, [obj])


def test_a_handler_without_input_cannot_be_bound() -> None:
    obj = restate.VirtualObject("NoInput")

    @obj.handler(kind="shared")
    async def total(ctx: restate.ObjectSharedContext) -> int:
        return 0

    spec = parse_bindings(
        "kafka: {clusters: {local: {bootstrap.servers: 'k:9092'}}}\n"
        "bindings:\n"
        "  - {name: b, topic: t, handler: NoInput/total}\n",
        Path("ni.yaml"),
        env={},
    )
    with pytest.raises(BindingsError, match=r"ni.yaml:3:.*'NoInput/total' takes no input"):
        check_against_app(spec, [obj])


def test_an_unimportable_worker_app_is_named_with_its_line(tmp_path: Path) -> None:
    from restate_stream.bindings import load_checked

    path = tmp_path / "b.yaml"
    path.write_text(
        "kafka: {clusters: {local: {bootstrap.servers: 'k:9092'}}}\n"
        "worker:\n"
        "  app: no_such_module_here:app\n"
        "bindings: []\n"
    )
    with pytest.raises(BindingsError, match=r"b.yaml:3:8: worker.app: cannot import"):
        load_checked(path)
