"""What counts as a secret, decided once: every place that shows configuration asks here.

Secret-bearing keys are recognised by name (librdkafka's, Java clients' and Schema Registry
clients'): passwords, client secrets, private keys and their passphrases, JAAS configs, basic
auth user info, OAUTHBEARER configs. URLs can carry a secret too: the password of
`https://user:password@host` (a Schema Registry with basic auth). Redacting more than needed
only hides a value from a display; redacting less leaks it, so the markers are broad.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"  # also what Restate returns for the secret properties of a Kafka cluster

# Substrings of a lowercased key that make its value a secret.
_SECRET_MARKERS = (
    "password",  # sasl.password, ssl.key.password, ssl.keystore.password, ...
    "passphrase",  # sasl.oauthbearer.assertion.private.key.passphrase
    "secret",  # sasl.oauthbearer.client.secret, and any *secret* of the user's own
    "private.key",  # sasl.oauthbearer.assertion.private.key.pem / .file contents
    "jaas.config",  # sasl.jaas.config: holds username and password
    "key.pem",  # ssl.key.pem: the client's private key
    "user.info",  # basic.auth.user.info, schema.registry.basic.auth.user.info: "user:password"
    "oauthbearer.config",  # sasl.oauthbearer.config: may hold a principal's credentials
    "credential",
    "api.key",
    "token",
)
# Keys that contain a marker but name no secret (a token's URL is not a token).
_NOT_SECRET_SUFFIXES = (".url", ".location", ".ms", ".endpoint", ".method", ".file")


def is_secret(key: str) -> bool:
    """Whether the value of configuration key `key` is a secret (never shown)."""
    lowered = key.lower().replace("_", ".")
    if lowered.endswith(_NOT_SECRET_SUFFIXES) and "private.key" not in lowered:
        return False
    return any(marker in lowered for marker in _SECRET_MARKERS)


def redact_properties(properties: Mapping[str, str]) -> dict[str, str]:
    """`properties` with every secret value replaced by REDACTED (for display, logs, JSON)."""
    return {k: REDACTED if is_secret(k) else redact_url(v) for k, v in properties.items()}


def secret_values(properties: Mapping[str, object]) -> list[str]:
    """The secrets among `properties`' text values (and URL passwords), longest first.
    Client configs also hold callables (a logger, callbacks): those are no secrets."""
    texts = {k: v for k, v in properties.items() if isinstance(v, str)}
    found = {v for k, v in texts.items() if is_secret(k) and v}
    found.update(p for v in texts.values() if (p := url_password(v)))
    return sorted(found, key=len, reverse=True)


def url_password(url: str) -> str | None:
    """The password in `url`'s user info (scheme://user:password@host), else None."""
    if "@" not in url or "://" not in url:
        return None
    try:
        parts = urlsplit(url)
        return parts.password or None
    except ValueError:
        return None


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """(`url` without user info, (user, password) from it, or None when it has none)."""
    if "@" not in url or "://" not in url:
        return url, None
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return url, None
    if user is None and password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, (unquote(user or ""), unquote(password or ""))


def redact_url(text: str) -> str:
    """`text` with the password of a URL's user info replaced by REDACTED."""
    if url_password(text) is None:
        return text
    parts = urlsplit(text)
    user, host = parts.netloc.rpartition("@")[0], parts.netloc.rpartition("@")[2]
    name = user.partition(":")[0]
    netloc = f"{name}:{REDACTED}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# A quoted run: from a quote to the same quote, or to the end of the text (cut short).
_QUOTED = re.compile(r"""(?=(["'`])(.*?)(?:\1|\Z))""", re.DOTALL)
# Shorter quoted words ("PLAIN", 'orders') are too likely to begin a secret by chance.
_MIN_PREFIX = 8


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` (an error message, a log line) with each of `secrets` replaced by REDACTED.

    librdkafka cuts its messages at ~256 bytes, so a long secret it quotes (a JAAS config,
    a token, a PEM key) may show only as its beginning, unclosed: `Invalid value "eyJhbG...`.
    A quoted run that begins a secret (at least _MIN_PREFIX characters of it) is hidden too.
    """
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    for secret in ordered:
        text = text.replace(secret, REDACTED)
    prefixes = {
        m.group(2)
        for m in _QUOTED.finditer(text)
        if len(m.group(2)) >= _MIN_PREFIX and any(s.startswith(m.group(2)) for s in ordered)
    }
    for prefix in sorted(prefixes, key=len, reverse=True):
        text = text.replace(prefix, REDACTED)
    return text
