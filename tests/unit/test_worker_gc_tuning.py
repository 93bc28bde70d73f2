"""A serving process tunes its collections once its app is built (_util/gc_pause.py): what it
loaded leaves the collected generations, so full collections stop walking them, and young
collections run every YOUNG_COLLECTION_THRESHOLD allocations, so a batch's objects are mostly
freed before one sees them."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from restate_stream._util.gc_pause import YOUNG_COLLECTION_THRESHOLD
from restate_stream.runtime import _asgi

APP = """\
import restate

counter = restate.VirtualObject("FrozenCounter")


@counter.handler()
async def count(ctx: restate.ObjectContext, value: int) -> None: ...


app = restate.app([counter])
"""


@pytest.fixture
def unfrozen() -> Iterator[None]:
    assert gc.get_freeze_count() == 0
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()  # the test process's objects are collected again
        gc.set_threshold(*thresholds)


def test_the_serving_process_tunes_its_collections_after_building_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    (tmp_path / "frozen_app.py").write_text(APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(_asgi.APP_ENV, "frozen_app:app")
    monkeypatch.delenv(_asgi.BINDINGS_ENV, raising=False)
    monkeypatch.setattr(_asgi, "configure_logging", lambda **_: None)  # not this process's
    monkeypatch.setattr(_asgi, "configure_tracing", lambda: None)
    app = _asgi._from_environment()
    assert app is not None
    import frozen_app  # built by then: its objects are among the frozen ones

    frozen = gc.get_freeze_count()
    assert frozen > 1000
    assert not any(o is frozen_app.counter for o in gc.get_objects())  # no generation holds it
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD
