"""Async client for the Restate admin API (deployments, Kafka clusters, subscriptions, SQL).

Restate answers errors as JSON `{"message", "restate_code"}`; they surface as AdminApiError
with the HTTP status. While the server is still starting (connection refused, 503) requests
are retried with backoff until a deadline, then AdminUnavailableError says in one line which
URL did not answer and why (a dead node of a cluster: "... is not reachable: connection
refused ..."); any other transport failure (a reset, a read timeout) is one too.

What Restate answers is shown without the secrets the request carried (a Kafka cluster's SASL
password, a URL's password or token): an answer may quote what it was sent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from connectors.secrets import (
    redact_properties,
    redact_url,
    scrub,
    secret_values,
    split_userinfo,
)
from restate_stream._util.poll import PollTimeout, apoll
from restate_stream.errors import RestateServerError


class AdminApiError(RestateServerError, RuntimeError):
    def __init__(
        self, method: str, url: str, status: int, message: str, restate_code: str | None
    ) -> None:
        code = f" [{restate_code}]" if restate_code else ""
        super().__init__(f"{method} {url} -> {status}{code}: {message}")
        self.method = method
        self.url = url
        self.status = status
        self.message = message
        self.restate_code = restate_code


class AdminUnavailableError(RestateServerError, RuntimeError):
    pass


@dataclass(frozen=True)
class Subscription:
    id: str
    source: str
    sink: str
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Subscription:
        return cls(data["id"], data["source"], data["sink"], dict(data.get("options") or {}))


@dataclass(frozen=True)
class KafkaCluster:
    name: str
    properties: dict[str, str]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KafkaCluster:
        return cls(data["name"], dict(data.get("properties") or {}))

    def __repr__(self) -> str:  # no secrets in logs and tracebacks
        return f"KafkaCluster({self.name!r}, {redact_properties(self.properties)!r})"


@dataclass(frozen=True)
class Deployment:
    id: str
    uri: str | None
    services: list[str]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Deployment:
        services = [s["name"] if isinstance(s, Mapping) else str(s) for s in data["services"]]
        return cls(data["id"], data.get("uri"), services)


# Retried: the request never reached a server that could act on it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


class AdminClient:
    def __init__(
        self,
        admin_url: str,
        *,
        timeout: float = 30.0,
        startup_timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # Basic auth may come in the URL (https://user:password@host): it becomes the client's
        # auth, and the URL that messages, logs (httpx's own) and pages show has no password.
        bare, userinfo = split_userinfo(admin_url)
        self.admin_url = bare.rstrip("/")
        self._secrets = [secret for secret in userinfo or () if secret]
        self.startup_timeout = startup_timeout
        self._http = httpx.AsyncClient(
            base_url=self.admin_url, auth=userinfo, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:

        last: list[httpx.Response | httpx.HTTPError] = []  # what the final attempt saw
        secrets = [*self._secrets, *_secrets_in(json)]

        def shown(text: str) -> str:
            """An answer's text, as messages show it: Restate may quote what it was sent."""
            return scrub(redact_url(text), secrets)

        async def send() -> httpx.Response:
            try:
                response = await self._http.request(
                    method, path, json=json, params=params, headers=headers
                )
            except _NOT_SENT as exc:
                last[:] = [exc]
                raise
            last[:] = [response]
            return response

        try:
            # Not sent or 503 (still starting): safe to repeat; anything else is an answer.
            response = await apoll(
                send,
                until=lambda r: r.status_code != 503,
                what=f"Restate admin API at {self.admin_url} to answer {method} {path}",
                timeout=self.startup_timeout,
                interval=0.1,
                backoff=2.0,
                max_interval=2.0,
                retry_on=_NOT_SENT,
                describe=lambda r: f"{r.status_code} {shown(r.text)[:200]}",
            )
        except PollTimeout:
            raise AdminUnavailableError(self._unavailable(method, path, last, shown)) from None
        except httpx.HTTPError as exc:  # sent, and no answer: not repeated (may have acted)
            raise AdminUnavailableError(
                f"Restate admin API at {self.admin_url} did not answer {method} {path}: "
                f"{_reason(exc)}"
            ) from exc
        if response.status_code >= 400:
            message, code = response.text, None
            try:
                body = response.json()
                message, code = body.get("message", message), body.get("restate_code")
            except ValueError:
                pass
            url, status = str(response.url), response.status_code
            raise AdminApiError(method, url, status, shown(str(message)), code)
        return response

    def _unavailable(
        self,
        method: str,
        path: str,
        last: list[httpx.Response | httpx.HTTPError],
        shown: Callable[[str], str],
    ) -> str:
        """One line: which URL, what the last of the attempts saw, what to check."""
        retried = f"retried for {self.startup_timeout:g}s"
        seen = last[0] if last else None
        if isinstance(seen, httpx.Response):
            body = " ".join(shown(seen.text).split())[:200]
            return (
                f"Restate admin API at {self.admin_url} answered {method} {path} with "
                f"{seen.status_code} ({retried}): {body or 'no message'}; the server is "
                "starting, or its cluster lost the nodes it needs"
            )
        reason = "no answer" if seen is None else _reason(seen)
        return (
            f"Restate admin API at {self.admin_url} is not reachable: {reason} ({retried}); "
            "is the server running? Any live node of a Restate cluster serves the same admin API"
        )

    # --- health ---------------------------------------------------------------------------

    async def health(self) -> bool:
        try:
            response = await self._http.get("/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def wait_ready(self) -> None:
        await self._request("GET", "/health")

    async def version(self) -> dict[str, Any]:
        data: dict[str, Any] = (await self._request("GET", "/version")).json()
        return data

    # --- deployments ----------------------------------------------------------------------

    async def list_deployments(self) -> list[Deployment]:
        data = (await self._request("GET", "/deployments")).json()
        return [Deployment.from_json(d) for d in data["deployments"]]

    async def register_deployment(
        self, uri: str, *, force: bool = True, http1: bool = False
    ) -> Deployment:
        """Register (or with force, refresh) the deployment served at `uri`.

        With `http1`, Restate discovers and invokes it over HTTP/1.1 (request/response mode):
        one connection per in-flight invocation instead of a few multiplexed h2 connections.
        """
        body = {"uri": uri, "force": force, "use_http_11": http1}
        data = (await self._request("POST", "/deployments", json=body)).json()
        return Deployment.from_json({**data, "uri": uri})

    async def delete_deployment(self, deployment_id: str, *, force: bool = True) -> None:
        params = {"force": "true" if force else "false"}
        await self._request("DELETE", f"/deployments/{deployment_id}", params=params)

    async def list_services(self) -> list[dict[str, Any]]:
        services: list[dict[str, Any]] = (await self._request("GET", "/services")).json()[
            "services"
        ]
        return services

    # --- Kafka clusters -------------------------------------------------------------------

    async def list_kafka_clusters(self) -> list[KafkaCluster]:
        data = (await self._request("GET", "/kafka-clusters")).json()
        items = data["clusters"] if isinstance(data, Mapping) else data
        return [KafkaCluster.from_json(c) for c in items]

    async def get_kafka_cluster(self, name: str) -> KafkaCluster | None:
        try:
            return KafkaCluster.from_json(
                (await self._request("GET", f"/kafka-clusters/{name}")).json()
            )
        except AdminApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create_kafka_cluster(self, name: str, properties: Mapping[str, str]) -> None:
        body = {"name": name, "properties": dict(properties)}
        await self._request("POST", "/kafka-clusters", json=body)

    async def update_kafka_cluster(self, name: str, properties: Mapping[str, str]) -> None:
        body = {"properties": dict(properties)}
        await self._request("PATCH", f"/kafka-clusters/{name}", json=body)

    async def delete_kafka_cluster(self, name: str, *, force: bool = False) -> None:
        params = {"force": "true"} if force else None
        await self._request("DELETE", f"/kafka-clusters/{name}", params=params)

    # --- subscriptions --------------------------------------------------------------------

    async def list_subscriptions(self) -> list[Subscription]:
        data = (await self._request("GET", "/subscriptions")).json()
        return [Subscription.from_json(s) for s in data["subscriptions"]]

    async def create_subscription(
        self, source: str, sink: str, options: Mapping[str, str] | None = None
    ) -> Subscription:
        body = {"source": source, "sink": sink, "options": dict(options or {})}
        return Subscription.from_json(
            (await self._request("POST", "/subscriptions", json=body)).json()
        )

    async def delete_subscription(self, subscription_id: str) -> None:
        await self._request("DELETE", f"/subscriptions/{subscription_id}")

    # --- invocations ----------------------------------------------------------------------

    async def kill_invocation(self, invocation_id: str) -> None:
        """End an invocation now, without running compensations (unblocks a stuck key)."""
        await self._request("PATCH", f"/invocations/{invocation_id}/kill")

    async def cancel_invocation(self, invocation_id: str) -> None:
        """Ask an invocation to cancel: it gets a TerminalError and may compensate."""
        await self._request("PATCH", f"/invocations/{invocation_id}/cancel")

    # --- introspection --------------------------------------------------------------------

    async def query(self, sql: str) -> list[dict[str, Any]]:
        """Run SQL over Restate's introspection tables; rows as dicts."""
        response = await self._request(
            "POST", "/query", json={"query": sql}, headers={"Accept": "application/json"}
        )
        rows: list[dict[str, Any]] = response.json()["rows"]
        return rows


def _secrets_in(body: Any) -> list[str]:
    """The secrets a request body carries (of a Kafka cluster's properties, a subscription's
    options, at any depth), also as a JSON answer quoting them shows them: escaped (a `"` or
    `\\` in a password, a non-ASCII character)."""
    return [form for secret in _carried(body) for form in _as_quoted(secret)]


def _carried(body: Any) -> list[str]:
    if isinstance(body, Mapping):
        nested = (secret for value in body.values() for secret in _carried(value))
        return [*secret_values(body), *nested]
    if isinstance(body, list):
        return [secret for item in body for secret in _carried(item)]
    return []


def _as_quoted(secret: str) -> set[str]:
    """`secret` as written, and inside a JSON string (ASCII-escaped or not)."""
    return {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}


def _reason(exc: BaseException) -> str:
    """The OS's words for a failed connection ("connection refused"), else httpx's."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno is not None:
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def sql_literal(value: str) -> str:
    """A single-quoted SQL string literal for Restate's DataFusion dialect."""
    return "'" + value.replace("'", "''") + "'"
