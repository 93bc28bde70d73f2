"""The code blocks of README.md and docs/*.md, checked as a reader would use them.

Every fenced ```python and ```yaml block is extracted with the line of its opening fence, so a
failure reads `docs/handlers.md:42: ...`. What a block gets:

- python: compiled; then run as a module, and each `test_*` function of it that takes no
  arguments is called (awaited if async). A block marked `<!-- docs-check: fragment -->` on the
  line(s) before it is only compiled: it continues an earlier block or leaves names undefined.
- yaml: parsed. A bindings file (a mapping with `bindings:` or `kafka:` at the top) is loaded
  and checked against the app its `worker.app` names, as `restate-stream validate` does; a
  `${VAR}` without a default gets a placeholder value. A fragment is only parsed.
- A fence with a title (```python title="app.py") writes the block as that file. A page that
  names files is a project of its own: its files are written to a scratch directory first, and
  all its blocks run there (so `load_bindings("bindings.yaml")` and `app: "app:app"` find
  them). The blocks of other pages run at the repository root, where `examples/` is.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import sys
import tempfile
import traceback
import types
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from restate_stream.bindings import BindingsError, load_checked

REPO = Path(__file__).resolve().parents[1]

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")
_MARK = re.compile(r"^\s*<!--\s*docs-check:\s*(?P<marks>.*?)\s*-->\s*$")
_TITLE = re.compile(r"""title=["']([^"']+)["']""")
_ENV = re.compile(r"\$\{(\w+)\}")  # ${VAR} without a default: the file needs it set
_LANGS = {"python": "python", "py": "python", "yaml": "yaml", "yml": "yaml"}
MARKS = frozenset({"fragment"})


@dataclass(frozen=True)
class Block:
    page: str  # the page's path as the report shows it
    line: int  # the opening fence's line, from 1
    lang: str  # "python" or "yaml"
    text: str
    file: str | None = None  # from title="..."
    fragment: bool = False

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass(frozen=True)
class Failure:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def extract(text: str, page: str) -> list[Block]:
    """The page's python and yaml blocks, with the marks written before each."""
    blocks: list[Block] = []
    marks: set[str] = set()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        mark = _MARK.match(lines[i])
        fence = _FENCE.match(lines[i])
        if mark:
            words = set(mark["marks"].split())
            unknown = words - MARKS
            if unknown:
                raise ValueError(f"{page}:{i + 1}: unknown docs-check mark {sorted(unknown)}")
            marks |= words
        elif fence:
            end, body = _fenced_body(lines, i + 1, fence["indent"], fence["fence"])
            info = fence["info"].strip()
            lang = _LANGS.get(info.split(" ", 1)[0].lower()) if info else None
            title = _TITLE.search(info)
            if lang:
                blocks.append(
                    Block(page, i + 1, lang, body, title[1] if title else None, "fragment" in marks)
                )
            marks = set()
            i = end
        elif lines[i].strip():
            marks = set()  # a mark belongs to the block right after it
        i += 1
    return blocks


def _fenced_body(lines: list[str], start: int, indent: str, fence: str) -> tuple[int, str]:
    """The index of the closing fence and the text between, the opening fence's indent removed."""
    body: list[str] = []
    for j in range(start, len(lines)):
        line = lines[j]
        if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
            return j, "\n".join(body) + "\n"
        body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
    return len(lines), "\n".join(body) + "\n"


def check_page(path: Path, *, text: str | None = None) -> list[Failure]:
    """Every failure of the page's blocks; an empty list when they all pass."""
    page = _shown(path)
    blocks = extract(path.read_text(encoding="utf-8") if text is None else text, page)
    with tempfile.TemporaryDirectory(prefix="docs-check-") as scratch:
        workdir = Path(scratch)
        named = [block for block in blocks if block.file]
        for block in named:
            target = workdir / str(block.file)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text, encoding="utf-8")
        cwd = workdir if named else REPO
        with _running_in(cwd, workdir):
            return [failure for block in blocks for failure in _check(block, workdir)]


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _check(block: Block, workdir: Path) -> list[Failure]:
    try:
        if block.lang == "python":
            return _check_python(block, workdir)
        return _check_yaml(block, workdir)
    except Exception as exc:  # a block's own error, with where it failed
        return [Failure(block.where, _describe(exc, block))]


def _describe(exc: BaseException, block: Block) -> str:
    """The exception, and the block's line it was raised from when the block raised it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == block.where]
    at = f" (block line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{at}"


def _check_python(block: Block, workdir: Path) -> list[Failure]:
    try:
        code = compile(block.text, block.where, "exec")
    except SyntaxError as exc:
        line = block.line + (exc.lineno or 0)
        return [Failure(f"{block.page}:{line}", f"SyntaxError: {exc.msg}")]
    if block.fragment:
        return []
    module = _run_module(block, code, workdir)
    failures = []
    for name, test in vars(module).items():
        if name.startswith("test_") and inspect.isfunction(test) and not _parameters(test):
            try:
                result = test()
                if inspect.isawaitable(result):
                    asyncio.run(_awaited(result))
            except Exception as exc:
                failures.append(Failure(block.where, f"{name}: {_describe(exc, block)}"))
    return failures


async def _awaited(result: Any) -> Any:
    return await result


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def _run_module(block: Block, code: types.CodeType, workdir: Path) -> types.ModuleType:
    """A titled top-level .py block runs as the module of that name (so other blocks importing
    it get this one); any other as a module of its own (`tests/test_app.py` must not meet the
    repository's own `tests` package)."""
    if block.file and block.file.endswith(".py") and "/" not in block.file:
        module = types.ModuleType(block.file.removesuffix(".py"))
        module.__file__ = str(workdir / block.file)
        sys.modules[module.__name__] = module
    else:  # registered too: type hints of its handlers resolve through sys.modules
        module = types.ModuleType(f"docs_block_{block.line}")
        module.__file__ = str(workdir / f"block-{block.line}.py")
        sys.modules[module.__name__] = module
    exec(code, module.__dict__)
    return module


def _check_yaml(block: Block, workdir: Path) -> list[Failure]:
    try:
        documents = list(yaml.safe_load_all(block.text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = block.line + 1 + (mark.line if mark else 0)
        return [Failure(f"{block.page}:{line}", f"YAML: {exc}")]
    is_bindings = (
        len(documents) == 1
        and isinstance(documents[0], dict)
        and bool({"bindings", "kafka"} & documents[0].keys())
    )
    if block.fragment or not is_bindings:
        return []
    path = workdir / (block.file or f"block-{block.line}.yaml")
    path.write_text(block.text, encoding="utf-8")
    try:
        with _placeholders_for(_ENV.findall(block.text)):
            load_checked(path)
    except BindingsError as exc:
        return [
            Failure(f"{block.page}:{block.line + p.line}", f"{p.field}: {p.message}")
            for p in exc.problems
        ]
    return []


@contextlib.contextmanager
def _placeholders_for(names: list[str]) -> Iterator[None]:
    missing = [name for name in names if name not in os.environ]
    for name in missing:
        os.environ[name] = f"docs-check-{name.lower()}"
    try:
        yield
    finally:
        for name in missing:
            del os.environ[name]


@contextlib.contextmanager
def _running_in(cwd: Path, workdir: Path) -> Iterator[None]:
    """cwd and sys.path as a user's project has them; the page's modules are forgotten after,
    so the next page's `app` is its own."""
    before_cwd, before_path = Path.cwd(), list(sys.path)
    before_modules = set(sys.modules)
    os.chdir(cwd)
    sys.path.insert(0, str(cwd))
    try:
        yield
    finally:
        os.chdir(before_cwd)
        sys.path[:] = before_path
        for name in set(sys.modules) - before_modules:
            file = getattr(sys.modules[name], "__file__", None) or ""
            if file.startswith(str(workdir.resolve())) or file.startswith(str(workdir)):
                del sys.modules[name]


def pages() -> list[Path]:
    """README.md and every page of the documentation site."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def slug(heading: str) -> str:
    """The anchor Python-Markdown's toc (mkdocs) gives a heading."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", re.sub(r"`|\*\*?", "", text)).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def broken_links(path: Path, *, text: str | None = None) -> list[Failure]:
    """Relative links of a page that lead outside the repository, to a missing file, or to a
    missing heading of a Markdown page. mkdocs --strict checks docs/ among themselves; this
    covers README.md and the rule that nothing points outside the repository."""
    page = _shown(path)
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    failures = []
    in_fence = False
    for number, line in enumerate(lines, 1):
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence:
            continue
        for target in _LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"[a-z]+:", target):
                continue  # a public site (https:, mailto:)
            problem = _link_problem(path, target)
            if problem:
                failures.append(Failure(f"{page}:{number}", f"link {target}: {problem}"))
    return failures


def _link_problem(page: Path, target: str) -> str | None:
    file, _, anchor = target.partition("#")
    resolved = (page.parent / file).resolve() if file else page.resolve()
    if not resolved.is_relative_to(REPO):
        return "points outside the repository"
    if not resolved.exists():
        return "no such file in the repository"
    if anchor and resolved.suffix == ".md":
        headings = [slug(m[1]) for m in map(_HEADING.match, resolved.read_text().splitlines()) if m]
        if anchor not in headings:
            return f"{resolved.name} has no heading with the anchor #{anchor}"
    return None
