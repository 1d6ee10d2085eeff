"""Tracking tokens: 192 random bits handed to the citizen once; services keep and exchange only the hash."""

from __future__ import annotations

import hashlib
import re
import secrets

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def new_tracking_token() -> str:
    return secrets.token_urlsafe(24)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_hash_or_none(token: str) -> str | None:
    """The hash of a well-formed token, None for anything that cannot be one (no store lookup needed)."""
    return hash_token(token) if TOKEN_RE.match(token) else None
