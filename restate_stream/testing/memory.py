"""An in-memory kit to unit-test handlers (bound or not) without Kafka or Restate.

`MemoryContext` stands in for a `restate.ObjectContext`: one object's state (JSON round-tripped,
as Restate would store it), the invocation's id and headers, a deterministic `uuid()`, and
`run`/`run_typed` that simply call the function. `MemoryPublisher` stands in for the durable
`Publisher`: it records what was published, or refuses with the error you give it.

    ctx = MemoryContext("acct-1", headers=kafka_headers("payments", offset=7, key="acct-1"))
    await invoke(service, "apply_payment", ctx, b'{"amount": 5}')
    assert ctx.state["balance"] == 5

No journal, no suspension, no retries: a handler that raises here raises to the test, which
plays Restate's part (call again for a retry).
"""

from __future__ import annotations

import base64
import inspect
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import restate

from restate_stream.runtime.publisher import Published, Publisher


@dataclass
class MemoryRequest:
    id: str
    headers: dict[str, str]
    attempt_headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    idempotency_key: str | None = None


def kafka_headers(
    topic: str,
    *,
    partition: int = 0,
    offset: int = 0,
    key: str | bytes | None = None,
    timestamp: datetime | None = None,
    subscription_id: str = "sub_memory",
) -> dict[str, str]:
    """The invocation headers Restate sets when a subscription delivers a Kafka record."""
    headers = {
        "kafka.topic": topic,
        "kafka.partition": str(partition),
        "kafka.offset": str(offset),
        "restate.subscription.id": subscription_id,
    }
    if key is not None:
        raw = key.encode() if isinstance(key, str) else key
        headers["kafka.key"] = base64.b64encode(raw).decode()
    if timestamp is not None:
        headers["kafka.timestamp"] = str(int(timestamp.timestamp() * 1000))
    return headers


class MemoryContext:
    """One virtual object's state and one invocation, in memory (see the module docstring)."""

    def __init__(
        self,
        key: str = "key",
        *,
        state: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        invocation_id: str = "inv_memory",
    ) -> None:
        self.object_key = key
        self.state: dict[str, Any] = {k: _stored(v) for k, v in (state or {}).items()}
        self.invocation_id = invocation_id
        self.headers = dict(headers or {})
        self._uuids = 0

    def key(self) -> str:
        return self.object_key

    def request(self) -> MemoryRequest:
        return MemoryRequest(self.invocation_id, dict(self.headers))

    async def get(self, name: str, *_: Any, **__: Any) -> Any:
        # A copy, as a fresh deserialisation would be: mutating it does not change the state.
        return _stored(self.state[name]) if name in self.state else None

    def set(self, name: str, value: Any, *_: Any, **__: Any) -> None:
        self.state[name] = _stored(value)

    def clear(self, name: str, *_: Any, **__: Any) -> None:
        self.state.pop(name, None)

    def clear_all(self, *_: Any, **__: Any) -> None:
        self.state.clear()

    async def state_keys(self) -> list[str]:
        return list(self.state)

    def uuid(self) -> uuid.UUID:
        self._uuids += 1
        return uuid.UUID(int=self._uuids)

    async def run(self, name: str, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = action(*args)
        return await result if inspect.isawaitable(result) else result

    async def run_typed(
        self, name: str, action: Callable[..., Any], options: Any = None, /, *args: Any, **kw: Any
    ) -> Any:
        result = action(*args, **kw)
        return await result if inspect.isawaitable(result) else result


def _stored(value: Any) -> Any:
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class Sent:
    topic: str
    key: str | None
    value: Any
    event_type: str | None
    retry_forever: bool


class MemoryPublisher(Publisher):
    """A Publisher that keeps what handlers publish in `sent` (or raises `refuse` instead)."""

    def __init__(self) -> None:
        super().__init__({})
        self.sent: list[Sent] = []
        self.refuse: BaseException | None = None

    async def publish(
        self,
        ctx: restate.Context,
        topic: str,
        key: str | None,
        value: Any,
        *,
        event_type: str | None = None,
        codec: Any = None,
        envelope: bool = True,
        retry_forever: bool = False,
    ) -> Published:
        if self.refuse is not None:
            raise self.refuse
        self.sent.append(Sent(topic, key, _stored(value), event_type, retry_forever))
        offset = sum(1 for s in self.sent if s.topic == topic) - 1
        return Published(str(ctx.uuid()), topic, 0, offset)

    async def close(self) -> None:
        return None


def as_context(ctx: MemoryContext) -> restate.ObjectContext:
    """The MemoryContext typed as what handlers declare (it implements what they use)."""
    return cast(restate.ObjectContext, ctx)


async def invoke(service: Any, handler: str, ctx: MemoryContext, payload: Any) -> Any:
    """Call `service`'s handler as Restate would: bound handlers take the record's raw bytes."""
    fn = service.handlers[handler].fn
    return await fn(as_context(ctx), payload)
