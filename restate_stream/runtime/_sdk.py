"""Every use of restate-sdk internals, in one module, checked against the installed SDK.

The SDK's public API configures a handler when it is declared: `@obj.handler(accept=...,
input_serde=..., idempotency_retention=..., invocation_retry_policy=...)`. bind() has to
change a handler the app already declared, and the public route does not serve for that:
the decorator refuses a second handler under the same name, and a re-registered handler
would be a new object while the user's function still points at the old one (ctx calls and
restate.create_client find a handler through that function, so callers would get the old
input serde). So bind() changes the one Handler object in place, through the fields of the
SDK's Handler and HandlerIO dataclasses, here and nowhere else.

A serving process hears SIGTERM only through the SDK once the SDK's app served a request: the
SDK takes the signal on the event loop for itself then (restate.server.install_shutdown_hook,
one dispatcher per loop and signal, replacing the server's handler), so on_sigterm joins the
SDK's own hook list.

The worker's request-signature check (identity keys) uses the SDK's verifier and its route
parsing around the user's app as it is, instead of rebuilding it with `restate.app(services,
identity_keys=...)`: the public route, but one that drops what the user's app was built with
(journal value codec, protocol, any ASGI middleware around it).

check_sdk() verifies that those fields (and the other internals below) are still there; bind
runs it, and tests/unit/test_sdk_internals.py runs it with a behaviour check, so an SDK upgrade
that moves them fails loudly with the SDK version and the attribute, not with a wrong result.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import signal
from asyncio import AbstractEventLoop
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import restate
from restate._internal import (  # type: ignore[import-not-found]
    IdentityKeyException,
    IdentityVerificationException,
    PyIdentityVerifier,
)
from restate.client import Client
from restate.endpoint import Endpoint
from restate.handler import Handler, HandlerIO, handler_from_callable
from restate.serde import BytesSerde
from restate.server import install_shutdown_hook, parse_path, send_status
from restate.server_context import (
    DisconnectedException,
    current_context,
    restate_context_is_replaying,
)

from restate_stream.errors import ConfigurationError, WorkerError

__all__ = [
    "Client",
    "DisconnectedException",
    "Endpoint",
    "SdkInternalsChangedError",
    "check_sdk",
    "current_invocation_id",
    "handler_function",
    "identity_checked",
    "on_sigterm",
    "registered_handler",
    "replaying",
    "sdk_version",
    "take_raw_input",
]

AnyService = restate.Service | restate.VirtualObject | restate.Workflow

# Written by take_raw_input, read by handler_function and registered_handler.
HANDLER_FIELDS = ("fn", "arity", "handler_io", "idempotency_retention", "invocation_retry_policy")
HANDLER_IO_FIELDS = ("input_serde", "accept", "input_type")


class SdkInternalsChangedError(WorkerError, RuntimeError):
    pass


class IdentityKeyError(ConfigurationError, ValueError):
    pass


def sdk_version() -> str:
    return importlib.metadata.version("restate-sdk")


@functools.cache
def check_sdk() -> None:
    """Raise SdkInternalsChangedError naming the SDK version and what is missing."""
    missing = [
        f"{cls.__module__}.{cls.__name__}.{name}"
        for cls, names in ((Handler, HANDLER_FIELDS), (HandlerIO, HANDLER_IO_FIELDS))
        for name in names
        if name not in {f.name for f in dataclasses.fields(cls)}
    ]
    if not isinstance(getattr(restate.VirtualObject("probe"), "handlers", None), dict):
        missing.append("restate.VirtualObject.handlers (a dict of name -> Handler)")
    if missing:
        raise SdkInternalsChangedError(
            f"restate-sdk {sdk_version()} no longer has {', '.join(missing)}, which "
            "restate_stream/runtime/_sdk.py uses to bind handlers (written against restate-sdk "
            "1.3); pin restate-sdk to the version restate-stream supports or update _sdk.py"
        )


def registered_handler(service: AnyService, name: str) -> Handler[Any, Any]:
    handler: Handler[Any, Any] = service.handlers[name]
    return handler


def handler_function(handler: Handler[Any, Any]) -> Callable[..., Awaitable[Any]]:
    """What the SDK calls for `handler` (after take_raw_input: the wrapper passed to it)."""
    return handler.fn


def handler_target(handler_ref: Any) -> tuple[str, str]:
    """("Service", "handler") of a decorated handler function, as passed to ctx.object_send."""
    handler: Handler[Any, Any] = handler_from_callable(handler_ref)
    return handler.service_tag.name, handler.name


def take_raw_input(
    handler: Handler[Any, Any],
    fn: Callable[[Any, bytes], Awaitable[Any]],
    *,
    idempotency_retention: timedelta,
    retry_policy: restate.InvocationRetryPolicy | None,
) -> None:
    """Make the SDK call `fn(ctx, body)` with the request body as bytes, whatever its content
    type, as `@obj.handler(accept="*/*", input_serde=BytesSerde(), ...)` would."""
    check_sdk()
    handler.fn = fn
    handler.arity = 2  # the SDK passes the input only to handlers of two parameters
    handler.handler_io.input_serde = BytesSerde()
    handler.handler_io.accept = "*/*"
    handler.handler_io.input_type = None  # no JSON schema in discovery: any bytes are taken
    handler.idempotency_retention = idempotency_retention
    if retry_policy is not None:
        handler.invocation_retry_policy = retry_policy


def current_invocation_id() -> str | None:
    """The id of the invocation this code runs in; None outside a handler."""
    try:
        ctx = current_context()
    except LookupError:
        return None
    return ctx.request().id if ctx is not None else None


def replaying() -> bool:
    """Whether the current handler is replaying its journal (what restate.getLogger checks)."""
    return restate_context_is_replaying.get()


AsgiApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def identity_checked(app: AsgiApp, keys: list[str]) -> AsgiApp:
    """`app` answering only requests signed by a Restate server holding the private half of
    one of `keys` (401 otherwise), as restate.app(identity_keys=...) checks them: every HTTP
    request except the health check. The user's app itself is left as it is; a WebSocket
    (which the SDK's app refuses, but the user's middleware may route) is checked too."""
    verifier = identity_verifier(keys)

    def signed(scope: dict[str, Any]) -> bool:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        try:
            verifier.verify(headers, scope["path"])
        except IdentityVerificationException:
            return False
        return True

    async def checked(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and parse_path(scope["path"])["type"] != "health":
            if not signed(scope):
                await send_status(send, receive, 401)
                return
        elif scope["type"] == "websocket" and not signed(scope):
            await send({"type": "websocket.close", "code": 1008})  # before accept: a 403
            return
        await app(scope, receive, send)

    return checked


def identity_verifier(keys: list[str]) -> Any:
    """The SDK's verifier of `keys`; IdentityKeyError names a key it cannot read."""
    for index, key in enumerate(keys):
        try:
            PyIdentityVerifier([key])
        except IdentityKeyException as exc:
            raise IdentityKeyError(
                f"worker.identity_keys[{index}] is not a Restate public key ({exc}); expected "
                "publickeyv1_ followed by the base58 of an Ed25519 public key"
            ) from None
    return PyIdentityVerifier(keys)


def on_sigterm(loop: AbstractEventLoop, hook: Callable[[], None]) -> None:
    """Run `hook` when SIGTERM reaches `loop`, beside the SDK's own shutdown hook (it tells the
    invocations in flight). The SDK's dispatcher takes SIGTERM on the loop from now on, replacing
    any handler the server put there, as the SDK's first request would have anyway."""
    install_shutdown_hook(loop, hook, signal.SIGTERM)
