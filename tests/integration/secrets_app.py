"""The worker app of the secrets test: typed JSON orders and Avro payments (a registry)."""

from __future__ import annotations

import restate

from tests.integration import formats_app, poison_app

app = restate.app([poison_app.sink, formats_app.sink])
