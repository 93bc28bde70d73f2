"""Who may reach the dashboard: on loopback, this machine (as before); anywhere else, only
browsers that name it by an allowed host name and present the access token.

The token comes from a file (--token-file) or the environment (RESTATE_STREAM_UI_TOKEN), never
from the command line, where every user of the machine can read it (ps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from restate_stream._util.ports import is_loopback
from restate_stream.errors import ConfigurationError

TOKEN_ENV = "RESTATE_STREAM_UI_TOKEN"
MIN_TOKEN_LENGTH = 16
MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


class DashboardAccessError(ConfigurationError, ValueError):
    pass


def read_access_token(token_file: Path | None, environ: Mapping[str, str]) -> str | None:
    """The token in `token_file` (surrounding whitespace dropped), else in TOKEN_ENV; None
    when neither gives one. A short or empty one is refused, naming where it came from."""
    if token_file is not None:
        try:
            token, where = token_file.read_text(encoding="utf-8").strip(), str(token_file)
        except (OSError, UnicodeDecodeError) as exc:
            raise DashboardAccessError(
                f"--token-file {token_file}: cannot read it ({exc})"
            ) from None
    elif environ.get(TOKEN_ENV):
        token, where = environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    else:
        return None
    if len(token) < MIN_TOKEN_LENGTH:
        raise DashboardAccessError(
            f"the access token in {where} has {len(token)} characters; expected at least "
            f"{MIN_TOKEN_LENGTH} (make one with: {MAKE_TOKEN})"
        )
    return token


def require_access_control(host: str, allowed: Sequence[str], token: str | None) -> None:
    """Off loopback, the dashboard needs both an allowed host name (against DNS rebinding)
    and an access token (against everyone who reaches the port): say what is missing."""
    if is_loopback(host):
        return
    missing = []
    if not allowed:
        missing.append(
            "--allowed-host NAME: the host name (or address) browsers reach it by, repeated "
            "for each"
        )
    if token is None:
        missing.append(
            f"an access token: --token-file FILE or the environment variable {TOKEN_ENV} "
            f"(at least {MIN_TOKEN_LENGTH} characters; make one with: {MAKE_TOKEN})"
        )
    if missing:
        raise DashboardAccessError(
            f"--host {host} exposes the dashboard, which can redrive dead letters and pause "
            f"bindings, beyond this machine; add {' and '.join(missing)}"
        )
