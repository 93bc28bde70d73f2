"""The restate-sdk internals runtime/_sdk.py relies on: still there, and still doing the job.

If one of these fails after an SDK upgrade, read restate_stream/runtime/_sdk.py first: it is the
only module touching SDK internals, and its docstring says why each is needed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import restate
from restate.discovery import compute_discovery_json
from restate.endpoint import Endpoint
from restate.handler import handler_from_callable, invoke_handler

from restate_stream.runtime import _sdk
from tests.identity import ed25519_keys, signed_headers

TRIED_WITH = "1.3"


def test_the_installed_sdk_has_what_sdk_py_uses() -> None:
    _sdk.check_sdk.cache_clear()
    _sdk.check_sdk()  # raises SdkInternalsChangedError naming the attribute otherwise
    if not _sdk.sdk_version().startswith(TRIED_WITH + "."):
        pytest.fail(
            f"restate-sdk {_sdk.sdk_version()} is installed; runtime/_sdk.py was checked "
            f"against {TRIED_WITH}.x. Review it (and tests/integration/test_formats.py, "
            f"test_dead_letters.py), then update TRIED_WITH here"
        )


def test_a_missing_internal_is_named_with_the_sdk_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sdk, "HANDLER_FIELDS", (*_sdk.HANDLER_FIELDS, "renamed_away"))
    _sdk.check_sdk.cache_clear()
    try:
        with pytest.raises(_sdk.SdkInternalsChangedError) as caught:
            _sdk.check_sdk()
    finally:
        _sdk.check_sdk.cache_clear()
    message = str(caught.value)
    assert f"restate-sdk {_sdk.sdk_version()}" in message
    assert "restate.handler.Handler.renamed_away" in message


def _declared() -> tuple[restate.VirtualObject, Any]:
    obj = restate.VirtualObject("Orders")

    @obj.handler()
    async def add(ctx: restate.ObjectContext, order: dict[str, int]) -> str:
        return f"json {order}"

    return obj, add


def test_take_raw_input_makes_the_sdk_pass_the_body_as_bytes() -> None:
    obj, user_fn = _declared()
    handler = _sdk.registered_handler(obj, "add")
    got: list[bytes] = []

    async def raw(ctx: Any, body: bytes) -> str:
        got.append(body)
        return "raw"

    policy = restate.InvocationRetryPolicy(max_attempts=3, on_max_attempts="pause")
    _sdk.take_raw_input(handler, raw, idempotency_retention=timedelta(days=30), retry_policy=policy)

    assert _sdk.handler_function(handler) is raw
    # Not JSON, not even UTF-8: the SDK hands it over untouched.
    out = asyncio.run(invoke_handler(handler, None, b"\xff\x00avro"))
    assert got == [b"\xff\x00avro"] and json.loads(out) == "raw"
    # The user's function still leads to this handler (what ctx calls and create_client use).
    assert handler_from_callable(user_fn) is handler

    endpoint = Endpoint()
    endpoint.bind(obj)
    discovery = json.loads(compute_discovery_json(endpoint, 4, "bidi"))
    (declared,) = discovery["services"][0]["handlers"]
    assert declared["input"]["contentType"] == "*/*"
    assert "jsonSchema" not in declared["input"] or declared["input"]["jsonSchema"] is None
    assert declared["idempotencyRetention"] == 30 * 24 * 3600 * 1000
    assert declared["retryPolicyMaxAttempts"] == 3


# --- the request-signature check in front of the user's app ----------------------------------

Message = dict[str, Any]


def call(app: Any, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Message:
    """One GET over HTTP/2, as Restate sends it; the response's status, headers and body."""
    return asyncio.run(serve_one(app, path, headers))


async def serve_one(
    app: Any, path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> Message:
    """call(), in the running event loop."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": "2",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers or [],
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return {"status": start["status"], "headers": dict(start.get("headers", [])), "body": body}


@pytest.fixture
def signing(tmp_path: Path) -> tuple[Path, str]:
    return ed25519_keys(tmp_path)


def test_identity_checked_answers_only_requests_restate_signed(
    signing: tuple[Path, str], tmp_path: Path
) -> None:
    pem, public_key = signing
    (tmp_path / "other").mkdir()
    other_pem, _ = ed25519_keys(tmp_path / "other")
    obj, _ = _declared()
    app = _sdk.identity_checked(restate.app([obj]), [public_key])
    assert call(app, "/discover", signed_headers(pem, "/discover"))["status"] == 200
    assert call(app, "/discover")["status"] == 401
    assert call(app, "/discover", signed_headers(other_pem, "/discover"))["status"] == 401
    # Signed for another path: a captured signature does not open other handlers.
    assert call(app, "/invoke/Orders/add", signed_headers(pem, "/discover"))["status"] == 401
    assert call(app, "/health")["status"] == 200  # as the SDK's own check: probes pass


def test_identity_checked_closes_an_unsigned_websocket_unseen_by_the_app(
    signing: tuple[Path, str],
) -> None:
    """A user's app may route WebSockets (Starlette around the SDK's app): with keys, an
    unsigned one never reaches it."""
    _, public_key = signing
    reached: list[str] = []

    async def users_app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["type"])
        await send({"type": "websocket.accept"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    app = _sdk.identity_checked(users_app, [public_key])
    asyncio.run(app(scope, receive, send))
    assert reached == []
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_a_key_the_sdk_cannot_read_is_named() -> None:
    with pytest.raises(_sdk.IdentityKeyError, match=r"worker.identity_keys\[1\]"):
        _sdk.identity_verifier(["publickeyv1_5Tb6EYXwWXxgRNtQDo5bxxrCPMzKkuD5aNt1JeKo3FcT", "x"])


USER_APP = """
import restate

counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, amount: int) -> int:
    return amount


inner = restate.app([counter], protocol="request_response")


async def app(scope, receive, send):
    # The user's own middleware: marks every response it passes on.
    async def marked(message):
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message["headers"], (b"x-user-middleware", b"1")]}
        await send(message)

    await inner(scope, receive, marked)
"""


def test_identity_keys_keep_the_users_app_as_built(
    signing: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With keys, the worker serves the user's app (its middleware, its protocol, its codec)
    behind the check, not an app rebuilt from its services."""
    from restate_stream.runtime._asgi import build_app

    pem, public_key = signing
    (tmp_path / "keys_user_app.py").write_text(USER_APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    app = build_app("keys_user_app:app", [public_key])
    found = call(app, "/discover", signed_headers(pem, "/discover"))
    assert found["status"] == 200, found
    assert found["headers"].get(b"x-user-middleware") == b"1"
    assert json.loads(found["body"])["protocolMode"] == "REQUEST_RESPONSE"
    assert call(app, "/discover")["status"] == 401


async def test_on_sigterm_hears_the_signal_the_sdk_takes_from_the_server() -> None:
    loop = asyncio.get_running_loop()
    server: list[str] = []
    ours: list[str] = []
    loop.add_signal_handler(signal.SIGTERM, server.append, "stop")  # as granian's loop has it
    try:
        _sdk.on_sigterm(loop, lambda: ours.append("stop"))
        obj, _ = _declared()
        assert (await serve_one(restate.app([obj]), "/health"))["status"] == 200
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            if ours:
                break
            await asyncio.sleep(0.01)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    # The SDK's dispatcher holds SIGTERM (what granian_signals.py works around) and runs ours.
    assert server == [] and ours == ["stop"]
