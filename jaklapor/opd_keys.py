"""Per-OPD API keys, derived from one server secret: `<opd code>.<HMAC-SHA256(secret, opd code)>`.

Deriving instead of storing means no key table to leak or keep in sync across replicas; `jaklapor opd-key CODE`
prints an OPD's key for the operator to hand over. Rotating the secret rotates every key at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

#: the city's verifier (Biro Pemerintahan, services/intake/verification.py) has a key derived the same way, for this
#: code, which no OPD of the directory has; `jaklapor verifier-key` prints it
VERIFIER_CODE = "verifikator"


def derive_key(secret: str, opd_code: str) -> str:
    digest = hmac.new(secret.encode(), opd_code.encode(), hashlib.sha256).digest()
    return f"{opd_code}.{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"


def verify_key(secret: str, presented: str) -> str | None:
    """The OPD code a presented key belongs to, or None; compares in constant time."""
    if not presented.isascii():  # werkzeug decodes headers as latin-1; compare_digest refuses non-ASCII text
        return None
    opd_code, _, _ = presented.rpartition(".")
    if not opd_code:
        return None
    return opd_code if hmac.compare_digest(derive_key(secret, opd_code), presented) else None
