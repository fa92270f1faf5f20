"""Time-based one-time passwords (RFC 6238): HMAC-SHA1, 6 digits, 30-second steps.

Authenticator apps accept any base32 secret, including the 16-character (80-bit) ones many QR
codes hold, so this accepts every secret that decodes; the broker's server is what judges it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time

DIGITS = 6
STEP = 30  # seconds
_BASE32 = re.compile(r"^[A-Z2-7]+$")


def decode_secret(secret: str) -> bytes:
    """The key of a base32 secret as authenticator apps show it: case, spaces, hyphens and
    missing ``=`` padding aside. ValueError (without the secret in it) when it does not decode."""
    cleaned = "".join(secret.split()).replace("-", "").upper().rstrip("=")
    if not cleaned:
        raise ValueError("empty")
    if not _BASE32.match(cleaned):
        raise ValueError("not base32: letters A-Z and digits 2-7 only")
    try:
        return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except binascii.Error:
        raise ValueError(f"not base32: {len(cleaned)} characters is not a whole secret") from None


def code(key: bytes, at: float | None = None) -> str:
    """The one-time password of ``key`` for the step holding ``at`` (now, by default)."""
    counter = int((time.time() if at is None else at) // STEP)
    digest = hmac.new(key, counter.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F  # RFC 4226 dynamic truncation
    value = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)
