"""Webhook signatures: HMAC-SHA256 over `<unix timestamp>.<raw body>`, sent as

    X-Jaklapor-Signature: t=1764291723,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

A receiver recomputes the HMAC with the shared secret over the timestamp, a dot and the exact bytes of the body it
received (before any JSON parsing), compares it in constant time with every `v1` value, and refuses a timestamp
older than a few minutes (a replayed request). `verify_signature` below needs only the standard library: other
systems can copy it as it is. `jaklapor verify-webhook` runs it from the command line.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Jaklapor-Signature"
DELIVERY_HEADER = "X-Jaklapor-Delivery"
EVENT_HEADER = "X-Jaklapor-Event"
ATTEMPT_HEADER = "X-Jaklapor-Attempt"
DEFAULT_TOLERANCE_SECONDS = 300


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    return hmac.new(secret.encode("utf-8"), f"{int(timestamp)}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: float | None = None) -> str:
    """The value of the X-Jaklapor-Signature header for `body`, signed now (or at `timestamp`)."""
    moment = int(time.time() if timestamp is None else timestamp)
    return f"t={moment},v1={compute_signature(secret, moment, body)}"


# --- copy from here into a receiving system (Python 3, standard library only) ------------------------------------
def verify_signature(
    secret: str, header: str, body: bytes, tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None
) -> bool:
    """True if `header` (the X-Jaklapor-Signature value) signs `body` (the raw request bytes) with `secret`, and its
    timestamp is within `tolerance` seconds of now. Several `v1=` values (a secret being rotated) may be present."""
    timestamp, candidates = None, []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not timestamp.isdigit() or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    signed = timestamp.encode("ascii") + b"." + body
    expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


# --- end of the copyable part ---------------------------------------------------------------------------------------
