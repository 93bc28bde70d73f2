"""A minimal Confluent Schema Registry client: Avro schemas by id, and registration.

Synchronous over httpx with an in-memory cache: a schema id names one immutable schema, so
each id is fetched once per client and decoding stays off the network after the first record.
Schema references (schemas importing other subjects) are not supported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import fastavro
import httpx

from connectors.base_errors import RecordFormatError
from connectors.secrets import split_userinfo

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SCHEMA_NOT_FOUND = 40403  # the registry's error_code for an unknown schema id
_FASTAVRO_KEYS = {"__fastavro_parsed", "__named_schemas"}


class SchemaRegistryError(RecordFormatError, RuntimeError):
    def __init__(
        self,
        method: str,
        url: str,
        status: int | None,
        message: str,
        error_code: int | None = None,
    ) -> None:
        outcome = "failed" if status is None else str(status)
        code = f" [error_code {error_code}]" if error_code is not None else ""
        super().__init__(f"schema registry {method} {url} -> {outcome}{code}: {message}")
        self.url = url
        self.status = status
        self.error_code = error_code
        self.message = message


class SchemaRegistryClient:
    def __init__(
        self,
        url: str,
        auth: tuple[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        # Basic auth may come in the URL (https://user:password@host); the password is kept
        # out of self.url, which errors and logs show.
        bare, userinfo = split_userinfo(url)
        self.url = bare.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            auth=auth or userinfo,
            transport=transport,
            timeout=timeout,
            headers={"Accept": _CONTENT_TYPE},
        )
        self._by_id: dict[int, Any] = {}
        self._registered: dict[tuple[str, str], int] = {}

    def knows(self, schema_id: int) -> bool:
        """Whether `schema_id` is cached: schema_by_id answers without a request."""
        return schema_id in self._by_id

    def schema_by_id(self, schema_id: int) -> Any:
        """The parsed (fastavro) Avro schema registered under `schema_id`."""
        if schema_id not in self._by_id:
            body = self._request("GET", f"/schemas/ids/{schema_id}")
            kind = body.get("schemaType", "AVRO")
            if kind != "AVRO":
                raise SchemaRegistryError(
                    "GET",
                    f"{self.url}/schemas/ids/{schema_id}",
                    200,
                    f"schema {schema_id} is a {kind} schema, not Avro",
                )
            self._by_id[schema_id] = fastavro.parse_schema(json.loads(body["schema"]))
        return self._by_id[schema_id]

    def register(self, subject: str, schema: Mapping[str, Any] | str) -> int:
        """Register `schema` (as written, JSON text or a mapping) under `subject`; its id.

        Registering a schema the subject already has returns the existing id.
        """
        text = schema if isinstance(schema, str) else json.dumps(_unparsed(schema))
        if (subject, text) not in self._registered:
            path = f"/subjects/{quote(subject, safe='')}/versions"
            body = self._request("POST", path, {"schema": text})
            self._registered[subject, text] = int(body["id"])
        return self._registered[subject, text]

    def _request(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        url = f"{self.url}{path}"
        content = None if payload is None else json.dumps(payload).encode()
        headers = None if payload is None else {"Content-Type": _CONTENT_TYPE}
        try:
            response = self._http.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise SchemaRegistryError(method, url, None, str(exc) or type(exc).__name__) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        if isinstance(body, dict) and "message" in body:
            raise SchemaRegistryError(
                method, url, response.status_code, str(body["message"]), body.get("error_code")
            )
        raise SchemaRegistryError(method, url, response.status_code, response.text[:200])

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _unparsed(schema: Any) -> Any:
    """Drop the bookkeeping keys fastavro's parse_schema adds, should a parsed schema come in."""
    if isinstance(schema, Mapping):
        return {k: _unparsed(v) for k, v in schema.items() if k not in _FASTAVRO_KEYS}
    if isinstance(schema, list):
        return [_unparsed(v) for v in schema]
    return schema
