"""A hostile bindings file is answered at once, with the place, instead of eating time and memory.

Each file is loaded in a child process with a memory cap and a timeout: a guard against a hang
(the timeout is generous, not a measure of speed), so a regression fails here instead of
taking the test run, or the machine, down with it.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from restate_stream.bindings import BindingsError, load_bindings
from restate_stream.bindings._compose import MAX_DEPTH, MAX_VALUES
from restate_stream.bindings.loader import MAX_PROBLEMS

HANG_GUARD_SECONDS = 20
MEMORY_CAP = 2 * 1024**3

HEADER = "kafka:\n  clusters:\n    local: {bootstrap.servers: 'k:9092'}\n"

_LOAD = """\
import sys
from restate_stream.bindings import BindingsError, load_bindings
try:
    load_bindings(sys.argv[1], {})
except BindingsError as exc:
    print(exc)
else:
    print("loaded")
"""


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def answer(tmp_path: Path, text: str) -> str:
    """What `load_bindings` says of `text` in a child process: its BindingsError, or "loaded"."""
    path = tmp_path / "bindings.yaml"
    path.write_text(text)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _LOAD, str(path)],
            capture_output=True,
            text=True,
            timeout=HANG_GUARD_SECONDS,
            preexec_fn=_cap_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"no answer within {HANG_GUARD_SECONDS}s")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.replace(str(path), "bindings.yaml").strip()


def laughs(levels: int, width: int) -> str:
    """The billion-laughs file: each level a list of `width` aliases of the level before."""
    lines = ["l0: &l0 [lol]"]
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"l{level}: &l{level} [{aliases}]")
    return HEADER + "\n".join(lines) + "\n"


def test_aliases_that_expand_past_the_bound_are_refused_at_the_alias(tmp_path: Path) -> None:
    text = laughs(levels=9, width=9)
    assert len(text) < 600
    said = answer(tmp_path, text)
    # Each list is 1 + 9 times the one before: l4 holds 13 942 values, and the file 15 700 when
    # l5's list starts. Its first *l4 passes 25 000.
    assert said == (
        f"bindings.yaml:9:{len('l5: &l5 [') + 1}: aliases expand to more than {MAX_VALUES} "
        "values (each use of an alias counts every value under its anchor); a bindings file "
        "needs far fewer"
    )


@pytest.mark.parametrize(
    ("text", "line", "column", "anchor"),
    [
        ("a: &x [*x]\n", 4, 8, "x"),
        ("a: &x {b: 1, <<: *x}\n", 4, 18, "x"),  # a merge of itself
        ("a: &x\n  b: [1, {c: *x}]\n", 5, 14, "x"),
    ],
)
def test_a_value_that_contains_itself_is_a_bindings_error(
    tmp_path: Path, text: str, line: int, column: int, anchor: str
) -> None:
    said = answer(tmp_path, HEADER + text)
    assert said == (
        f"bindings.yaml:{line}:{column}: alias *{anchor} is inside the value &{anchor} it names "
        "(a value that contains itself)"
    )


def test_deep_nesting_is_refused_where_it_passes_the_bound(tmp_path: Path) -> None:
    said = answer(tmp_path, HEADER + "a: " + "[" * 500 + "]" * 500 + "\n")
    # The mapping at the top is 1 deep, so the 100th list is 101 deep.
    assert (
        said
        == f"bindings.yaml:4:{len('a: ') + MAX_DEPTH}: values nested more than {MAX_DEPTH} deep"
    )


def test_too_many_values_are_refused_without_aliases(tmp_path: Path) -> None:
    said = answer(tmp_path, HEADER + "bindings: [" + "1, " * MAX_VALUES + "1]\n")
    assert said.startswith("bindings.yaml:4:")
    assert f"the file holds more than {MAX_VALUES} values" in said


def test_a_file_too_large_is_not_read(tmp_path: Path) -> None:
    said = answer(tmp_path, HEADER + "# " + "x" * (2 * 1024 * 1024) + "\n")
    assert (
        said == "bindings.yaml:1:1: the file is larger than 1 MiB; a bindings file needs far less"
    )


def test_many_problems_are_cut_short(tmp_path: Path) -> None:
    """Within the bounds, a file of thousands of wrong values still answers with the first."""
    path = tmp_path / "bindings.yaml"
    path.write_text(HEADER + "bindings:\n" + "  - 1\n" * 5000)
    with pytest.raises(BindingsError) as raised:
        load_bindings(path, {})
    problems = raised.value.problems
    assert len(problems) == MAX_PROBLEMS + 1
    assert str(problems[0]) == f"{path}:5:5: bindings[0]: expected a mapping (a binding); got 1"
    more = problems[-1]
    assert (more.line, more.message) == (
        5 + MAX_PROBLEMS,
        f"and up to {5000 - MAX_PROBLEMS} more problems, not listed until these are fixed",
    )
