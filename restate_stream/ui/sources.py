"""Where the dashboard's data comes from: the same functions as the command line's."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from connectors import TopicAdmin
from connectors.consume import ConsumedRecord
from restate_stream.bindings import BindingsFile, load_checked
from restate_stream.bindings.edit import set_paused
from restate_stream.control.admin import AdminClient
from restate_stream.control.apply import ApplyReport, apply_bindings
from restate_stream.control.status import BindingStatus, binding_statuses
from restate_stream.dlq import Listing, RedriveResult, find_binding, load_listing, run_redrive
from restate_stream.topics.publish import resolve_target
from restate_stream.topics.tail import tail
from restate_stream.ui.contents import (
    Contents,
    ContentsError,
    table_contents,
    window_contents,
)

Coordinates = tuple[str, int, int]  # a source record: topic, partition, offset


@dataclass
class PauseOutcome:
    changed: bool  # False: the file already said so (apply still ran)
    report: ApplyReport


class Source(Protocol):
    """What the pages read and do. LiveSource asks the engines; tests pass fakes."""

    def spec(self) -> BindingsFile: ...

    async def statuses(self) -> list[BindingStatus]: ...

    async def listing(self, binding: str) -> Listing: ...

    async def redrive(self, binding: str, only: set[Coordinates] | None) -> list[RedriveResult]: ...

    async def set_paused(self, binding: str, paused: bool) -> PauseOutcome: ...

    async def tail(self, topic: str, last: int) -> list[ConsumedRecord]: ...

    async def contents(self, binding: str, limit: int) -> Contents: ...


class LiveSource:
    """The bindings file (read again for every request: pause/resume rewrite it) and the
    engines it names."""

    def __init__(self, path: Path, *, wait: float = 10.0, redrive_timeout: float = 60.0) -> None:
        self.path = path
        self.wait = wait
        self.redrive_timeout = redrive_timeout

    def spec(self) -> BindingsFile:
        return load_checked(self.path, check_app=False)

    def _admin(self, spec: BindingsFile) -> AdminClient:
        return AdminClient(spec.restate.admin_url, startup_timeout=self.wait)

    async def statuses(self) -> list[BindingStatus]:
        spec = self.spec()
        async with self._admin(spec) as admin:
            return await binding_statuses(spec, admin, TopicAdmin)

    async def listing(self, binding: str) -> Listing:
        spec = self.spec()
        return await asyncio.to_thread(load_listing, spec, find_binding(spec, binding))

    async def redrive(self, binding: str, only: set[Coordinates] | None) -> list[RedriveResult]:
        spec = self.spec()
        found = find_binding(spec, binding)
        # run_redrive runs its own event loop (as `dlq redrive` does): a thread of its own.
        return await asyncio.to_thread(run_redrive, spec, found, self.redrive_timeout, only=only)

    async def set_paused(self, binding: str, paused: bool) -> PauseOutcome:
        """As `restate-stream pause|resume`: edit the file, then apply that binding."""
        changed = await asyncio.to_thread(set_paused, self.path, binding, paused)
        spec = load_checked(self.path)
        async with self._admin(spec) as admin:
            _, report = await apply_bindings(spec, admin, only=binding)
        return PauseOutcome(changed, report)

    async def tail(self, topic: str, last: int) -> list[ConsumedRecord]:
        target = resolve_target(self.spec(), topic, None, None)
        records: list[ConsumedRecord] = []
        await asyncio.to_thread(tail, target, last=last, follow=False, show=records.append)
        return records

    async def contents(self, binding: str, limit: int) -> Contents:
        """A table binding's rows, or a window binding's open windows (contents.py)."""
        spec = self.spec()
        # Not dlq's find_binding: a table or window binding may well have no dead letters.
        found = next((b for b in spec.bindings if b.name == binding), None)
        if found is None or (found.window is None and not found.table):
            raise ContentsError(f"{spec.path}: no table or window binding named {binding!r}")
        async with self._admin(spec) as admin:
            if found.window is not None:
                return await window_contents(admin, spec.restate.ingress_url, binding, limit)
            return await table_contents(admin, binding, limit)
