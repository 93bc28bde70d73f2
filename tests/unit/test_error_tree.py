"""The error tree (restate_stream/errors.py): one root, families directly under it, and every
public error of restate_stream and connectors under exactly one family."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import restate_stream
from restate_stream import errors
from restate_stream.errors import FAMILIES, RestateStreamError

# Exceptions that are no error for a person: each is caught inside restate-stream and turned
# into a dead letter, a problem line, a dropped record or a RestateStreamError.
INTERNAL = {
    "restate_stream.bindings._compose.RefusedYAML": "a YAML construct refused: a problem line",
    "restate_stream.runtime.failures.RecordError": "a TerminalError (the SDK's): a dead letter",
    "restate_stream.runtime.failures.DropRecord": "a signal to drop a record, not a failure",
    "restate_stream.runtime.dead_letter.NotADeadLetterError": "a record that is no letter",
    "restate_stream.batch.wire.WireError": "a batch body restate-stream did not write",
    "restate_stream.batch.wire.NewerWireVersion": "a newer body: Restate retries the invocation",
    "restate_stream.windows.aggregate.WindowValueError": "a record value a window cannot add",
    "restate_stream.testing.memory.NoResponseError": "the in-memory kit's missing response",
    "restate_stream.runtime.failures.RejectedRecords": "a batched handler's partial success",
}


def _modules() -> list[str]:
    names = []
    for package in ("restate_stream", "connectors"):
        root = importlib.import_module(package)
        names.append(package)
        prefix = package + "."
        found = pkgutil.walk_packages(root.__path__, prefix)
        names.extend(m.name for m in found if not m.name.endswith(".__main__"))  # runs the CLI
    return names


def public_errors() -> dict[str, type[BaseException]]:
    """Every public exception class defined in a module of restate_stream or connectors."""
    found: dict[str, type[BaseException]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, Exception)
                and value.__module__ == name
                and not attr.startswith("_")
            ):
                found[f"{name}.{attr}"] = value
    return found


def test_the_families_sit_directly_under_the_root() -> None:
    for family in FAMILIES:
        assert family.__bases__ == (RestateStreamError,), family
    assert len(set(FAMILIES)) == len(FAMILIES)


def test_every_public_error_is_under_exactly_one_family() -> None:
    errors_found = public_errors()
    assert "connectors.producer.ProduceError" in errors_found  # the walk reached connectors
    outside = []
    for where, cls in errors_found.items():
        if where in INTERNAL or cls in FAMILIES or cls is RestateStreamError:
            continue
        families = [f for f in FAMILIES if issubclass(cls, f)]
        if len(families) != 1:
            outside.append(f"{where}: under {[f.__name__ for f in families]}")
    assert not outside, "\n".join(outside)


def test_internal_errors_are_still_there_and_outside_the_tree() -> None:
    errors_found = public_errors()
    for where in INTERNAL:
        assert where in errors_found, f"{where} is gone: drop it from INTERNAL"
        assert not issubclass(errors_found[where], RestateStreamError), where


def test_the_package_exports_the_root_and_every_family() -> None:
    exported = {getattr(restate_stream, n) for n in restate_stream.__all__}
    assert {RestateStreamError, *FAMILIES} <= exported
    assert {errors.__dict__[f.__name__] for f in FAMILIES} == set(FAMILIES)


def test_one_produce_error_for_one_record_and_for_many() -> None:
    from connectors import ProduceFailed
    from connectors.producer import ProduceError

    assert ProduceFailed is ProduceError  # the old exported name, kept as an alias
    one = ProduceError("t", b"k", "too large")
    assert str(one) == "producing to topic 't' (key 'k') failed: too large"
    many = ProduceError.of_many([(2, ProduceError("t", None, "x", retriable=True))], 4, "2 of 4")
    assert (str(many), many.retriable, many.total, many.reason) == ("2 of 4", True, 4, "x")
