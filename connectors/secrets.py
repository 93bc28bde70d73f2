"""What counts as a secret, decided once: every place that shows configuration asks here.

Secret-bearing keys are recognised by name (librdkafka's, Java clients' and Schema Registry
clients'): passwords, client secrets, private keys and their passphrases, JAAS configs, basic
auth user info, OAUTHBEARER configs, private keys' contents (`*.key`). URLs can carry a secret
too: the password of `https://user:password@host` (a Schema Registry with basic auth), or the
whole user info of `https://TOKEN@host` (a token as the user name). Redacting more than needed
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
# A key's contents, PEM: ssl.keystore.key (Java clients), and any other `*.key`.
_SECRET_SUFFIXES = (".key",)
# Keys that contain a marker but name no secret (a token's URL is not a token).
_NOT_SECRET_SUFFIXES = (".url", ".location", ".ms", ".endpoint", ".method", ".file")


def is_secret(key: str) -> bool:
    """Whether the value of configuration key `key` is a secret (never shown)."""
    lowered = key.lower().replace("_", ".")
    if lowered.endswith(_NOT_SECRET_SUFFIXES) and "private.key" not in lowered:
        return False
    return lowered.endswith(_SECRET_SUFFIXES) or any(m in lowered for m in _SECRET_MARKERS)


def redact_properties(properties: Mapping[str, str]) -> dict[str, str]:
    """`properties` with every secret value replaced by REDACTED (for display, logs, JSON)."""
    return {k: REDACTED if is_secret(k) else redact_url(v) for k, v in properties.items()}


def secret_values(properties: Mapping[str, object]) -> list[str]:
    """The secrets among `properties`' text values (and those of URLs in them), longest first.
    Client configs also hold callables (a logger, callbacks): those are no secrets."""
    texts = {k: v for k, v in properties.items() if isinstance(v, str)}
    found = {v for k, v in texts.items() if is_secret(k) and v}
    found.update(secret for v in texts.values() for secret in url_secrets(v))
    return sorted(found, key=len, reverse=True)


# The user info of a URL anywhere in a text: up to the last `@` before the host (as urlsplit
# reads it), which holds no `/`, `?`, `#` or space.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#]*)@")


def _secret_of(userinfo: str) -> str:
    """The secret part of a URL's user info: the password of `user:password`, else all of it
    (`TOKEN@host`: a token given as the user name)."""
    user, colon, password = userinfo.partition(":")
    return password if colon else user


def url_secrets(text: str) -> list[str]:
    """The secrets in the user info of the URLs in `text` (passwords, tokens), as written."""
    if "@" not in text:
        return []
    return [s for m in _URL_USERINFO.finditer(text) if (s := _secret_of(m["userinfo"]))]


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
    """`text` (a URL, or a message quoting URLs) with the secret of each URL's user info
    replaced by REDACTED: `https://user:***@host`, `https://***@host`."""
    if "@" not in text:
        return text

    def redacted(match: re.Match[str]) -> str:
        userinfo = match["userinfo"]
        shown = userinfo[: len(userinfo) - len(_secret_of(userinfo))]  # `user:`, or nothing
        return f"{match['scheme']}{shown}{REDACTED}@" if shown != userinfo else match[0]

    return _URL_USERINFO.sub(redacted, text)


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
