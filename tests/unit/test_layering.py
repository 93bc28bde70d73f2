"""The layering rules of docs/architecture.md ("Rules the tree keeps"), checked over the source.

Every module of `restate_stream` and `connectors` is parsed with ast (nothing is imported) and
each import is checked against the rules; a break is reported as `file:line: rule: what`. The
few imports that break a rule on purpose are listed below with the reason, each one exactly:
an entry that no longer matches an import fails too, so the lists only ever shrink.
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("restate_stream", "connectors")

# The SDK's public surface: the `restate` package (its __all__) and the serde module its
# handler options take (`input_serde=restate.serde.BytesSerde()`). Anything else under
# `restate.` is an internal, used only through the gate below.
SDK_PUBLIC = frozenset({"restate", "restate.serde"})
SDK_GATE = "restate_stream.runtime._sdk"

# Private modules shared beyond their own package: `_util` is the project's private
# utilities (all of restate_stream); `runtime._sdk` is the one way to the SDK's internals, for
# every package of restate_stream that needs one. Neither is for `connectors`.
SHARED_PRIVATE = frozenset({"restate_stream._util", SDK_GATE})

# The local engines and developer tools; what runs in production never imports them.
DEV_STACK = frozenset(
    f"restate_stream.{p}" for p in ("stack", "containers", "cli", "ui", "testing", "scaffold")
)

# Modules every other module may import without a cycle: the error tree's root (with the
# families connectors raises in), the secrets policy and the garbage collection pause. They
# import only the standard library.
LEAVES = frozenset({"connectors.base_errors", "connectors.secrets", "connectors.gc_pause"})

_OPTIONAL = "an optional extra, imported only when used"
_METRICS = (
    "prometheus_client reads PROMETHEUS_MULTIPROC_DIR when imported: after the worker sets it"
)

# (rule, importing module, imported module) -> why this import breaks the rule on purpose.
EXCEPTIONS: dict[tuple[str, str, str], str] = {
    ("function-level-import", "connectors.producer", "aiokafka"): _OPTIONAL + " (aiokafka)",
    ("function-level-import", "connectors.producer", "aiokafka.errors"): _OPTIONAL + " (aiokafka)",
    ("function-level-import", "connectors.producer", "aiokafka.helpers"): _OPTIONAL + " (aiokafka)",
    ("function-level-import", "restate_stream.cli.worker", "restate_stream.ui"): (
        "the dashboard (starlette, its pages) only for `worker --ui`: off the CLI's start-up path"
    ),
    ("function-level-import", "restate_stream.cli.worker", "restate_stream.ui.guard"): (
        "the dashboard (starlette, its pages) only for `worker --ui`: off the CLI's start-up path"
    ),
    ("function-level-import", "restate_stream.runtime._asgi", "restate_stream.telemetry.metrics"): (
        _METRICS
    ),
    (
        "function-level-import",
        "restate_stream.runtime.worker",
        "restate_stream.telemetry.metrics",
    ): (_METRICS),
    ("function-level-import", "restate_stream.runtime.worker", "prometheus_client"): (_METRICS),
    **{
        ("function-level-import", "restate_stream.telemetry.tracing", m): _OPTIONAL + " (otel)"
        for m in (
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
            "opentelemetry.sdk.resources",
            "opentelemetry.sdk.trace",
            "opentelemetry.sdk.trace.export",
        )
    },
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    path: Path
    line: int
    target: str  # the imported module, absolute
    names: tuple[str, ...]  # `from target import names`; empty for `import target`
    top_level: bool  # at module level (also under `if TYPE_CHECKING:` / `try:`)


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    rule: str
    what: str
    importer: str
    module: str  # the imported module the rule is about

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.what}"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """The package a module belongs to for these rules: `restate_stream.<subpackage>`, the
    root `restate_stream` for its top-level modules (errors), `connectors` as one package."""
    parts = module.split(".")
    if parts[0] != "restate_stream" or len(parts) < 2:
        return parts[0]
    subpackage = ROOT / "restate_stream" / parts[1]
    return ".".join(parts[:2]) if subpackage.is_dir() else "restate_stream"


def _is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def imports_of(tree: ast.Module, module: str, path: Path) -> Iterator[Import]:
    is_package = path.name == "__init__.py"

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        return ".".join([*base, *([node.module] if node.module else [])])

    def walk(node: ast.AST, top_level: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(module, path, child.lineno, alias.name, (), top_level)
            elif isinstance(child, ast.ImportFrom):
                names = tuple(a.name for a in child.names)
                yield Import(module, path, child.lineno, resolve(child), names, top_level)
            else:
                inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                yield from walk(child, top_level and not inner)

    yield from walk(tree, True)


def _private_owner(target: str) -> str | None:
    """The package a private module belongs to: the part before its first `_x` part."""
    parts = target.split(".")
    for i, part in enumerate(parts):
        if _is_private(part):
            prefix = ".".join(parts[: i + 1])
            for shared in SHARED_PRIVATE:
                if prefix == shared or prefix.startswith(shared + "."):
                    return "restate_stream"
            return ".".join(parts[:i]) or None
    return None


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


def check_import(imp: Import) -> Iterator[Violation]:
    """Every rule `imp` breaks, exceptions included (the caller drops those)."""
    target, importer = imp.target, imp.module

    def v(rule: str, what: str, module: str = target) -> Violation:
        return Violation(imp.path, imp.line, rule, what, importer, module)

    ours = target.split(".")[0] in CHECKED
    other_package = package_of(target) != package_of(importer)
    # (a) connectors stands alone
    if _within(importer, "connectors") and _within(target, "restate_stream"):
        yield v("connectors-standalone", f"{importer} imports {target}")
    # (b) a private module stays in its package; a private name does not cross packages
    modules = [target] + [
        f"{target}.{n}" for n in imp.names if ours and _is_module(f"{target}.{n}")
    ]
    for module in modules if ours else []:
        owner = _private_owner(module)
        if owner is not None and not _within(importer, owner):
            yield v("private-module", f"{importer} imports {module}, private to {owner}", module)
    if ours and other_package:
        for name in imp.names:
            if _is_private(name) and f"{target}.{name}" not in modules:
                yield v("private-name", f"{importer} imports {name} from {target}")
    # (c) SDK internals only through the gate
    if (target == "restate" or target.startswith("restate.")) and importer != SDK_GATE:
        if target not in SDK_PUBLIC:
            yield v("sdk-internal", f"{importer} imports {target}; go through {SDK_GATE}")
        for name in imp.names:
            if _is_private(name):
                yield v("sdk-internal", f"{importer} imports {name} from {target}")
            elif (
                target in SDK_PUBLIC
                and f"{target}.{name}" not in SDK_PUBLIC
                and (importlib.util.find_spec(f"{target}.{name}") is not None)
            ):  # `from restate import server`: a module, not a name of the public API
                yield v(
                    "sdk-internal", f"{importer} imports {target}.{name}; go through {SDK_GATE}"
                )
    # (d) the runtime never imports the dev stack
    if not any(_within(importer, p) for p in DEV_STACK):
        for dev in DEV_STACK:
            if _within(target, dev):
                yield v("runtime-imports-dev-stack", f"{importer} imports {target}")
    # (e) imports across packages (third-party ones too) at module top
    if other_package and not imp.top_level:
        yield v("function-level-import", f"{importer} imports {target} inside a function")
    # (f) a leaf imports the standard library only
    if importer in LEAVES and target.split(".")[0] not in sys.stdlib_module_names:
        yield v("leaf", f"{importer} is a leaf but imports {target}")


def unexcused(violations: Iterator[Violation] | list[Violation]) -> list[Violation]:
    return [v for v in violations if (v.rule, v.importer, v.module) not in EXCEPTIONS]


def check_source(source: str, path: Path, module: str) -> list[Violation]:
    tree = ast.parse(source, filename=str(path))
    return unexcused(v for imp in imports_of(tree, module, path) for v in check_import(imp))


def source_files(root: Path = ROOT) -> list[Path]:
    return sorted(p for pkg in CHECKED for p in (root / pkg).rglob("*.py"))


def all_imports(root: Path = ROOT) -> list[Import]:
    found: list[Import] = []
    for path in source_files(root):
        tree = ast.parse(path.read_text(), filename=str(path))
        found.extend(imports_of(tree, module_name(path, root), path.relative_to(root)))
    return found


def test_the_tree_keeps_the_layering_rules() -> None:
    violations = unexcused([v for imp in all_imports() for v in check_import(imp)])
    assert not violations, "\n".join(map(str, violations))


def test_every_listed_exception_is_still_needed() -> None:
    """A fixed exception leaves the list: a stale entry would let the break come back."""
    broken = {(v.rule, v.importer, v.module) for i in all_imports() for v in check_import(i)}
    assert not [k for k in EXCEPTIONS if k not in broken]


def test_every_exception_gives_a_reason() -> None:
    assert all(reason.strip() for reason in EXCEPTIONS.values())


def test_every_module_is_parsed() -> None:
    names = {module_name(p) for p in source_files()}
    assert {"restate_stream.runtime._sdk", "connectors.producer", "restate_stream.errors"} <= names


PLANTED = """\
import json
from restate_stream.stack.kafka import KafkaBroker
from restate.server_context import current_context
from restate_stream.runtime.bound import _private_helper


def later() -> None:
    from restate_stream.batch import handler
"""


def test_a_planted_forbidden_import_is_reported_with_file_and_line() -> None:
    path = Path("restate_stream/runtime/planted.py")
    found = {str(v) for v in check_source(PLANTED, path, "restate_stream.runtime.planted")}
    assert found == {
        f"{path}:2: runtime-imports-dev-stack: restate_stream.runtime.planted imports "
        "restate_stream.stack.kafka",
        f"{path}:3: sdk-internal: restate_stream.runtime.planted imports "
        "restate.server_context; go through restate_stream.runtime._sdk",
        f"{path}:8: function-level-import: restate_stream.runtime.planted imports "
        "restate_stream.batch inside a function",
    }
    # the same private name from another package is reported
    other = Path("restate_stream/batch/planted.py")
    assert [str(v) for v in check_source(PLANTED, other, "restate_stream.batch.planted")][2:3] == [
        f"{other}:4: private-name: restate_stream.batch.planted imports _private_helper from "
        "restate_stream.runtime.bound"
    ]


def test_connectors_importing_restate_stream_is_reported() -> None:
    path = Path("connectors/planted.py")
    source = "from restate_stream._util.ports import free_ports\n"
    assert [str(v) for v in check_source(source, path, "connectors.planted")] == [
        f"{path}:1: connectors-standalone: connectors.planted imports restate_stream._util.ports",
        f"{path}:1: private-module: connectors.planted imports restate_stream._util.ports, "
        "private to restate_stream",
    ]


def test_forbidden_imports_planted_in_a_copy_of_the_tree_fail_the_check(tmp_path: Path) -> None:
    """The whole-tree check, run over a copy with three imports planted, reports exactly
    those: the cycles this tree cut (connectors -> restate_stream, a bound handler importing
    the batched one inside bind()) and a leaf importing beyond the standard library."""
    for package in CHECKED:
        shutil.copytree(ROOT / package, tmp_path / package)
    plant = {
        "connectors/errors.py": "from restate_stream.errors import RestateStreamError\n",
        "connectors/secrets.py": "import connectors.errors\n",
        "restate_stream/runtime/bound.py": (
            "\n\ndef planted() -> None:\n    from restate_stream.batch import handler\n"
        ),
    }
    for name, line in plant.items():
        path = tmp_path / name
        path.write_text(path.read_text() + line)
    found = {
        (v.rule, v.importer, v.module)
        for v in unexcused([v for imp in all_imports(tmp_path) for v in check_import(imp)])
    }
    assert found == {
        ("connectors-standalone", "connectors.errors", "restate_stream.errors"),
        ("leaf", "connectors.secrets", "connectors.errors"),
        ("function-level-import", "restate_stream.runtime.bound", "restate_stream.batch"),
    }
    # the untouched tree passes (the same check, over the real files)
    assert not unexcused([v for imp in all_imports() for v in check_import(imp)])


def test_an_sdk_module_imported_by_name_from_the_package_is_reported() -> None:
    path = Path("restate_stream/runtime/planted.py")
    source = "from restate import server, VirtualObject\n"
    assert [str(v) for v in check_source(source, path, "restate_stream.runtime.planted")] == [
        f"{path}:1: sdk-internal: restate_stream.runtime.planted imports restate.server; "
        "go through restate_stream.runtime._sdk"
    ]
