"""Every python and yaml block of README.md and docs/ runs or validates (tests/docs_blocks.py
says how); and the checker itself reports a broken block at its file:line."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tests.docs_blocks import REPO, broken_links, check_page, extract, pages, slug

FENCE = "```"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_the_blocks_of_the_page_run_or_validate(page: Path) -> None:
    failures = check_page(page)
    assert not failures, "\n".join(str(f) for f in failures)


def page(text: str) -> str:
    return textwrap.dedent(text).replace("~~~", FENCE)


def run(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "page.md"
    path.write_text(page(text), encoding="utf-8")
    return [str(f) for f in check_page(path)]


def test_blocks_are_found_with_the_line_of_their_fence_and_their_marks() -> None:
    text = page(
        """\
        # Title

        ~~~python title="app.py"
        x = 1
        ~~~

        <!-- docs-check: fragment -->
        ~~~yaml
        a: 1
        ~~~

        - a list item:

          ~~~py
          y = 2
          ~~~
        ~~~bash
        echo not checked
        ~~~
        """
    )
    blocks = extract(text, "p.md")
    assert [(b.line, b.lang, b.file, b.fragment) for b in blocks] == [
        (3, "python", "app.py", False),
        (8, "yaml", None, True),
        (14, "python", None, False),
    ]
    assert blocks[2].text == "y = 2\n"


def test_a_mark_applies_only_to_the_block_right_after_it() -> None:
    text = page(
        """\
        <!-- docs-check: fragment -->
        Some prose in between.
        ~~~python
        x = 1
        ~~~
        """
    )
    assert not extract(text, "p.md")[0].fragment


def test_an_unknown_mark_is_refused_with_its_line() -> None:
    with pytest.raises(ValueError, match=r"p.md:2: unknown docs-check mark \['fragmnet'\]"):
        extract("\n<!-- docs-check: fragmnet -->\n", "p.md")


def test_a_python_syntax_error_is_reported_at_its_line_in_the_page(tmp_path: Path) -> None:
    failures = run(
        """\
        Text.

        ~~~python
        x = 1
        def broken(:
        ~~~
        """,
        tmp_path,
    )
    assert len(failures) == 1
    assert re.match(r".*page\.md:5: SyntaxError", failures[0]), failures


def test_a_python_block_runs_and_its_error_names_the_block(tmp_path: Path) -> None:
    failures = run(
        """\
        ~~~python
        import json
        json.loads("{oops")
        ~~~
        """,
        tmp_path,
    )
    assert len(failures) == 1
    assert re.match(r".*page\.md:1: JSONDecodeError: .*\(block line 2\)", failures[0]), failures


def test_a_fragment_is_compiled_but_not_run(tmp_path: Path) -> None:
    text = """\
        <!-- docs-check: fragment -->
        ~~~python
        undefined_name.call()
        ~~~
        """
    assert run(text, tmp_path) == []
    assert "NameError" in run(text.replace("<!-- docs-check: fragment -->", ""), tmp_path)[0]


def test_test_functions_of_a_block_are_called(tmp_path: Path) -> None:
    failures = run(
        """\
        ~~~python
        async def test_passes() -> None:
            assert 1 + 1 == 2


        async def test_fails() -> None:
            assert 1 + 1 == 3, "arithmetic"


        def test_with_a_fixture(restate_stream_stack: object) -> None:
            raise AssertionError("not called: it needs the engines")
        ~~~
        """,
        tmp_path,
    )
    assert len(failures) == 1
    assert "test_fails: AssertionError: arithmetic" in failures[0], failures


def test_a_yaml_syntax_error_is_reported_at_its_line(tmp_path: Path) -> None:
    failures = run(
        """\
        ~~~yaml
        a: 1
        b: [unclosed
        ~~~
        """,
        tmp_path,
    )
    assert len(failures) == 1
    assert re.match(r".*page\.md:[34]: YAML: ", failures[0]), failures


def test_a_bindings_file_is_validated_with_each_problem_at_its_line(tmp_path: Path) -> None:
    failures = run(
        """\
        ~~~yaml
        kafka:
          clusters:
            local: {bootstrap.servers: "${DOCS_CHECK_UNSET_VAR}"}
        bindings:
          - name: orders
            topic: orders
            handler: totals/on_order
            retyr: {max_attempts: 3}
        ~~~
        """,
        tmp_path,
    )
    assert len(failures) == 1
    assert re.match(r".*page\.md:9: bindings\[0\]\.retyr: .*did you mean 'retry'", failures[0])


def test_a_bindings_file_is_checked_against_the_app_the_page_names(tmp_path: Path) -> None:
    text = """\
        ~~~python title="app.py"
        import restate

        totals = restate.VirtualObject("totals")


        @totals.handler()
        async def on_order(ctx: restate.ObjectContext, event: dict[str, int]) -> None:
            return None


        app = restate.app([totals])
        ~~~

        ~~~yaml title="bindings.yaml"
        kafka:
          clusters:
            local: {bootstrap.servers: "127.0.0.1:9092"}
        worker: {app: "app:app", uri: "http://127.0.0.1:9080"}
        bindings:
          - {name: orders, topic: orders, handler: totals/on_order}
        ~~~

        ~~~python
        from app import totals

        assert "on_order" in totals.handlers
        ~~~
        """
    assert run(text, tmp_path) == []
    failures = run(text.replace("totals/on_order}", "totals/on_ordr}"), tmp_path)
    assert len(failures) == 1
    assert (
        "page.md:21: bindings[0].handler: service 'totals' has no handler 'on_ordr'" in failures[0]
    )


def test_other_yaml_is_parsed_only(tmp_path: Path) -> None:
    assert run("~~~yaml\nservices: {worker: {image: x}}\n~~~\n", tmp_path) == []


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_the_links_of_the_page_stay_in_the_repository_and_resolve(page: Path) -> None:
    failures = broken_links(page)
    assert not failures, "\n".join(str(f) for f in failures)


def test_a_link_out_of_the_repository_or_to_a_missing_anchor_is_reported() -> None:
    text = page(
        """\
        See [the design](../shared/DESIGN.md), [restate](https://restate.dev),
        [batching](docs/batching.md#per-partiton) and [ok](docs/batching.md#a-batched-binding).

        ~~~text
        [not a link](../inside/a/fence.md)
        ~~~
        `[code](../neither.md)` and [missing](docs/nope.md).
        """
    )
    failures = [str(f) for f in broken_links(REPO / "README.md", text=text)]
    assert failures == [
        "README.md:1: link ../shared/DESIGN.md: points outside the repository",
        "README.md:2: link docs/batching.md#per-partiton: batching.md has no heading with the "
        "anchor #per-partiton",
        "README.md:7: link docs/nope.md: no such file in the repository",
    ]


def test_slugs_are_the_anchors_mkdocs_makes() -> None:
    assert slug("Many keys, or aggregations: `per: partition`") == (
        "many-keys-or-aggregations-per-partition"
    )
    assert slug("The worker's HTTP server") == "the-workers-http-server"
