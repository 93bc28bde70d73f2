"""The restate-sdk internals runtime/_sdk.py relies on: still there, and still doing the job.

If one of these fails after an SDK upgrade, read restate_stream/runtime/_sdk.py first: it is the
only module touching SDK internals, and its docstring says why each is needed.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
import restate
from restate.discovery import compute_discovery_json
from restate.endpoint import Endpoint
from restate.handler import handler_from_callable, invoke_handler

from restate_stream.runtime import _sdk

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
