"""A Confluent Schema Registry stand-in on a loopback port, for Avro tests over real HTTP."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SchemaRegistryStub:
    """Answers the one call decoding needs, GET /schemas/ids/{id}, from `schemas`; unknown
    ids get the registry's 404. `requests` lists the paths asked for, in order. With `auth`
    (user, password), a request without those basic-auth credentials gets the registry's 401
    (and is counted in `unauthorized`), as a registry behind basic auth answers.

        registry = SchemaRegistryStub({7: schema})
        registry.start()
        try:
            ... registry.url ...
        finally:
            registry.stop()
    """

    def __init__(
        self, schemas: Mapping[int, Mapping[str, Any]], auth: tuple[str, str] | None = None
    ) -> None:
        self.schemas = {schema_id: dict(schema) for schema_id, schema in schemas.items()}
        self.requests: list[str] = []
        self.unauthorized = 0
        self._authorization = (
            "Basic " + base64.b64encode(":".join(auth).encode()).decode() if auth else None
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.requests.append(self.path)
                if stub._authorization not in (None, self.headers.get("Authorization")):
                    stub.unauthorized += 1
                    self._send(401, {"error_code": 401, "message": "Unauthorized"})
                    return
                _, _, last = self.path.rpartition("/")
                schema = stub.schemas.get(int(last)) if last.isdigit() else None
                body: dict[str, Any]
                if self.path.startswith("/schemas/ids/") and schema is not None:
                    body, status = {"schema": json.dumps(schema)}, 200
                else:
                    body = {"error_code": 40403, "message": f"Schema {last} not found"}
                    status = 404
                self._send(status, body)

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass  # keep test output clean

        return Handler
