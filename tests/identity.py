"""Restate's request identity for tests: an Ed25519 key pair made with openssl, and requests
signed the way a Restate server holding the private key signs them (a JWT, EdDSA, whose
audience is the request path)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, digit = divmod(number, 58)
        out = _BASE58[digit] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def ed25519_keys(directory: Path) -> tuple[Path, str]:
    """A private key PEM for Restate and the matching `publickeyv1_...` for the SDK."""
    pem = directory / "signing.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(pem)], check=True)
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(pem), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return pem, "publickeyv1_" + base58(der[-32:])  # the raw key ends the DER structure


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_headers(pem: Path, path: str) -> list[tuple[bytes, bytes]]:
    """The headers Restate adds to a request for `path` (ASGI form)."""
    now = int(time.time())
    header = _b64(json.dumps({"alg": "EdDSA", "typ": "JWT"}).encode())
    claims = _b64(json.dumps({"aud": path, "nbf": now - 60, "exp": now + 60}).encode())
    # Ed25519 signs in one shot: openssl needs the input as a file, not a pipe.
    signed = pem.with_suffix(".jwt-input")
    signed.write_text(f"{header}.{claims}")
    signature = subprocess.run(
        ["openssl", "pkeyutl", "-sign", "-inkey", str(pem), "-rawin", "-in", str(signed)],
        check=True,
        capture_output=True,
    ).stdout
    token = f"{header}.{claims}.{_b64(signature)}"
    return [(b"x-restate-signature-scheme", b"v1"), (b"x-restate-jwt-v1", token.encode())]
