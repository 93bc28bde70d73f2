"""The value types of the YAML's settings, and the base of every mapping: shared by the bindings
file's schema (schema.py) and the features that bring their own settings (windows/, tables/).

Each value type says in words what it expects (`Expect`); a problem reads
`expected <that>; got <what was written>`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from restate_stream.bindings._yaml import WrittenFloat, WrittenInt

Format = Literal["json", "avro", "bytes", "string"]
AvroWire = Literal["plain", "confluent"]
Start = Literal["earliest", "latest"]
WorkerServer = Literal["granian", "hypercorn"]  # the h2c servers a worker can serve with

DEFAULT_ADMIN_URL = "http://127.0.0.1:9070"
DEFAULT_INGRESS_URL = "http://127.0.0.1:8080"
DEFAULT_WORKER_URI = "http://127.0.0.1:9080"
BOOTSTRAP_KEYS = ("bootstrap.servers", "metadata.broker.list")

_DURATION = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class Expect:
    """What a value should be, in the words a problem uses: `expected <text>; got ...`."""

    def __init__(self, text: str) -> None:
        self.text = text


def rule(message: str, *at: str) -> PydanticCustomError:
    """A broken rule, reported as written (at key `at` inside the value, if given)."""
    return PydanticCustomError("rule", message, {"at": at})


def parse_duration(value: Any) -> timedelta | None:
    """A timedelta from 200ms / 1.5s / 10s / 2m / 1h; None for anything else (bare numbers too)."""
    if not isinstance(value, str) or not (match := _DURATION.fullmatch(value.strip())):
        return None
    return timedelta(seconds=float(match["number"]) * _UNIT_SECONDS[match["unit"]])


def _as_text(value: Any) -> Any:
    """Text fields take scalars as written: `topic: 2024` is the topic "2024", `yes` is "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, WrittenInt | WrittenFloat):
        return value.text
    return value


def _matching(pattern: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(text: str) -> str:
        if not compiled.fullmatch(text):
            raise ValueError("no match")
        return text

    return AfterValidator(check)


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("not a URL")
    return text


def _duration(value: Any) -> Any:
    # A unit is required: a bare 100 read as seconds, when 100ms was meant, is a silent 1000x.
    # (A timedelta comes from code building a spec, not from YAML.)
    duration = value if isinstance(value, timedelta) else parse_duration(value)
    if duration is None or duration <= timedelta(0):
        raise ValueError("not a duration")
    return duration


_TEXT = BeforeValidator(_as_text)
_NOT_EMPTY = Field(min_length=1)

Text = Annotated[str, _TEXT, _NOT_EMPTY]
# Any string, even empty: librdkafka properties, topic configs, subscription options.
Value = Annotated[str, _TEXT, Expect("a string value")]
TopicName = Annotated[
    str,
    _TEXT,
    _matching(r"(?!\.{1,2}$)[A-Za-z0-9._-]{1,249}"),
    Expect("a Kafka topic name (letters, digits, '.', '_' and '-', at most 249 characters)"),
]
BindingName = Annotated[
    str,
    _TEXT,
    _matching(r"[a-z0-9][a-z0-9._-]*"),
    Expect(
        "a name of lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
    ),
]
# Restate turns cluster names into hosts of kafka:// URIs, so they must be hostname labels.
ClusterName = Annotated[
    str,
    _matching(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"),
    Expect(
        "a hostname label, as Restate requires of cluster names: lowercase letters, digits "
        "and '-', 1 to 63 characters, not starting or ending with '-'"
    ),
]
HandlerRef = Annotated[
    str,
    _TEXT,
    _matching(r"[^/\s]+/[^/\s]+"),
    Expect('"Service/handler" like driver-digital-twin/handle_location'),
]
AppRef = Annotated[
    str,
    _TEXT,
    _matching(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"),
    Expect('"module.path:attribute" like examples.food_ordering.app:app'),
]
IdentityKey = Annotated[
    str, _TEXT, _matching(r"publickeyv1_\S+"), Expect("a Restate public key (publickeyv1_...)")
]
Url = Annotated[str, _TEXT, AfterValidator(_url), Expect("an http:// or https:// URL")]
PositiveInt = Annotated[int, Field(ge=1), Expect("an integer >= 1")]
Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    Expect("a duration with a unit, like 200ms, 1.5s, 10s, 2m, 1h"),
]


def _has_bootstrap(properties: dict[str, str]) -> dict[str, str]:
    if not any(key in properties for key in BOOTSTRAP_KEYS):
        raise rule(
            "missing required property 'bootstrap.servers' (or 'metadata.broker.list'), "
            "like bootstrap.servers: 127.0.0.1:9092"
        )
    for key in BOOTSTRAP_KEYS:
        if properties.get(key) == "":
            raise rule("must not be empty", key)
    return properties


ClusterProperties = Annotated[
    dict[str, Value], AfterValidator(_has_bootstrap), Expect("a mapping of librdkafka properties")
]


class SpecModel(BaseModel):
    """A mapping of the file: only the keys declared, each value of its declared type.

    A field named like a BaseModel attribute gets a trailing `_` and its key as alias.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_unwritten(cls, data: Any) -> Any:
        """`key:` with no value (null) means the same as leaving the key out."""
        if not isinstance(data, dict):
            return data
        known = {f.alias or name for name, f in cls.model_fields.items()}
        return {k: v for k, v in data.items() if v is not None or k not in known}
