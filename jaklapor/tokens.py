"""Tracking tokens: 192 random bits handed to the citizen once; services keep and exchange only the hash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_tracking_token() -> str:
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_hash_or_none(token: str) -> str | None:
    """The hash of a well-formed token, None for anything that cannot be one (no store lookup needed)."""
    return hash_token(token) if TOKEN_RE.fullmatch(token) else None


def tracking_token_for_retry(secret: str, idempotency_key: str) -> str:
    """The tracking token of a submission made with an Idempotency-Key, derived so a retry gets it back.

    Only the token's hash is stored; a phone that never saw the first answer retries with the same key and the
    gateway derives the same token again. The key must be long and random (it becomes as secret as the token).
    """
    digest = hmac.new(secret.encode(), b"tracking-token\0" + idempotency_key.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:32]
