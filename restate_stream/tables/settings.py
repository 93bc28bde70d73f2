"""A binding's `table: true`: the topic materialised as the last value per key.

    - name: restaurants
      topic: restaurants
      table: true

A table binding has no `handler:`: restate-stream serves an object named after the binding,
whose `put` handler the records go to and whose shared `get` handler any handler reads through
(restate_stream.tables.Table). Its values are kept as JSON in object state, so the format must
decode to JSON values.
"""

from __future__ import annotations

# Formats whose values are JSON once decoded (bytes would not be).
TABLE_FORMATS = ("json", "avro", "string")


def table_format_problem(format_: str) -> str | None:
    if format_ not in TABLE_FORMATS:
        return (
            f"a table keeps values as JSON in object state: format must be one of "
            f"{', '.join(TABLE_FORMATS)} (format is {format_})"
        )
    return None
