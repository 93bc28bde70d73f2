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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import restate

from restate_stream.runtime._sdk import handler_target
from restate_stream.runtime.formats import to_jsonable
from restate_stream.runtime.publisher import Outgoing, Published, Publisher


@dataclass(frozen=True)
class Call:
    """A call or one-way send a handler made to another handler (recorded, not run)."""

    service: str
    handler: str
    key: str | None
    arg: Any
    send: bool
    delay: timedelta | None = None

    @property
    def target(self) -> str:
        return f"{self.service}/{self.handler}"


class NoResponseError(LookupError):
    pass


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
        # Calls and sends the handler made, in order; a call's result comes from `responses`
        # ("Service/handler" -> a value, or a function of (key, arg) returning one).
        self.calls: list[Call] = []
        self.responses: dict[str, Any] = {}

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

    # --- calls and sends: recorded; a call answers from `responses` ---------------------------

    def _record(self, handler_ref: Any, key: str | None, arg: Any, send: bool, delay: Any) -> Call:
        service, handler = handler_target(handler_ref)
        call = Call(service, handler, key, _stored(to_jsonable(arg)), send, delay)
        self.calls.append(call)
        return call

    def _answer(self, call: Call) -> Any:
        if call.target not in self.responses:
            raise NoResponseError(
                f"the handler called {call.target} (key {call.key!r}); give the in-memory "
                f'context its answer first: ctx.responses["{call.target}"] = value '
                "(or a function of key and argument)"
            )
        answer = self.responses[call.target]
        value = answer(call.key, call.arg) if callable(answer) else answer

        async def result() -> Any:
            return value

        return result()

    def object_send(
        self, tpe: Any, key: str, arg: Any, send_delay: timedelta | None = None, **_: Any
    ) -> None:
        self._record(tpe, key, arg, True, send_delay)

    def service_send(
        self, tpe: Any, arg: Any, send_delay: timedelta | None = None, **_: Any
    ) -> None:
        self._record(tpe, None, arg, True, send_delay)

    def workflow_send(
        self, tpe: Any, key: str, arg: Any, send_delay: timedelta | None = None, **_: Any
    ) -> None:
        self._record(tpe, key, arg, True, send_delay)

    def object_call(self, tpe: Any, key: str, arg: Any, **_: Any) -> Any:
        return self._answer(self._record(tpe, key, arg, False, None))

    def service_call(self, tpe: Any, arg: Any, **_: Any) -> Any:
        return self._answer(self._record(tpe, None, arg, False, None))

    def workflow_call(self, tpe: Any, key: str, arg: Any, **_: Any) -> Any:
        return self._answer(self._record(tpe, key, arg, False, None))

    def generic_send(
        self,
        service: str,
        handler: str,
        arg: bytes,
        key: str | None = None,
        send_delay: timedelta | None = None,
        **_: Any,
    ) -> None:
        call = Call(service, handler, key, json.loads(arg) if arg else None, True, send_delay)
        self.calls.append(call)

    def generic_call(
        self, service: str, handler: str, arg: bytes, key: str | None = None, **_: Any
    ) -> Any:
        """Answered from `responses`, as JSON bytes (what the called handler would return)."""
        call = Call(service, handler, key, json.loads(arg) if arg else None, False, None)
        self.calls.append(call)
        answer = self._answer(call)

        async def encoded() -> bytes:
            value = await answer
            return value if isinstance(value, bytes) else json.dumps(to_jsonable(value)).encode()

        return encoded()

    def sends(self) -> list[Call]:
        return [c for c in self.calls if c.send]


def _stored(value: Any) -> Any:
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class Sent:
    topic: str
    key: str | None
    value: Any
    event_type: str | None
    retry_forever: bool
    event_id: str | None = None


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
        event_id: str | None = None,
    ) -> Published:
        if self.refuse is not None:
            raise self.refuse
        # As the real Publisher's JSON: pydantic models and dataclasses are published too.
        event_id = event_id or str(ctx.uuid())
        self.sent.append(
            Sent(topic, key, _stored(to_jsonable(value)), event_type, retry_forever, event_id)
        )
        offset = sum(1 for s in self.sent if s.topic == topic) - 1
        return Published(event_id, topic, 0, offset)

    async def publish_many(
        self,
        ctx: restate.Context,
        records: Iterable[Outgoing],
        *,
        event_type: str | None = None,
        codec: Any = None,
        envelope: bool = True,
        retry_forever: bool = False,
    ) -> list[Published]:
        return [
            await self.publish(
                ctx,
                r.topic,
                r.key,
                r.value,
                event_type=r.event_type or event_type,
                retry_forever=retry_forever,
            )
            for r in records
        ]

    async def close(self) -> None:
        return None


def as_context(ctx: MemoryContext) -> restate.ObjectContext:
    """The MemoryContext typed as what handlers declare (it implements what they use)."""
    return cast(restate.ObjectContext, ctx)


async def invoke(service: Any, handler: str, ctx: MemoryContext, payload: Any) -> Any:
    """Call `service`'s handler as Restate would: bound handlers take the record's raw bytes."""
    fn = service.handlers[handler].fn
    return await fn(as_context(ctx), payload)
