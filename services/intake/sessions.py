"""Workbench sessions of the OPD API, with no I/O: an agency's key is exchanged once for a session, held by the
browser in an HttpOnly cookie; what a session is, when it ends, and the CSRF rule for requests made with it.

- The session token is 256 random bits, handed to the browser once (the cookie); the store keeps only its SHA-256
  (as tracking tokens, jaklapor.tokens), so a copy of the store opens no session.
- A session ends after `idle` without a request, `absolute` after sign-in at the latest, or at sign-out.
- A request made with the cookie that changes anything (POST, PUT, PATCH, DELETE) carries the session's CSRF token
  in `X-CSRF-Token`, and an `Origin` header, when the browser sends one, is the gateway's own: a page of another
  site can make the browser send the cookie (SameSite=Strict already stops most), never read or guess the token.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jaklapor.tokens import hash_token

SESSION_COOKIE = "jaklapor_opd_session"
CSRF_HEADER = "X-CSRF-Token"
#: methods that change something: they need the CSRF token when the caller is a session
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: 32 random bytes, URL-safe base64 without padding: 43 characters
SESSION_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta
    #: a session's idle expiry is moved forward at most this often (one store write per interval, not per request)
    touch_interval: timedelta = timedelta(minutes=1)


@dataclass(frozen=True)
class NewSession:
    token: str  # for the cookie, never stored
    document: dict[str, Any]  # what the store keeps


def new_session(opd_code: str, now: datetime, policy: SessionPolicy) -> NewSession:
    token = secrets.token_urlsafe(32)
    absolute = now + policy.absolute
    document = {
        "_id": hash_token(token),
        "opd_code": opd_code,
        "csrf_token": secrets.token_urlsafe(32),
        "created_at": now,
        "last_seen_at": now,
        "absolute_expires_at": absolute,
        # the moment the session ends if nothing happens; the store's TTL index deletes it then
        "expires_at": min(now + policy.idle, absolute),
    }
    return NewSession(token, document)


def session_id_or_none(token: str | None) -> str | None:
    """The stored id of a well-formed session token (its SHA-256), None for anything that cannot be one."""
    if not token or not SESSION_TOKEN_RE.fullmatch(token):
        return None
    return hash_token(token)


def is_alive(session: dict[str, Any] | None, now: datetime) -> bool:
    """A stored session still valid now (the store deletes expired ones only eventually)."""
    return session is not None and now < session["expires_at"]


def touched(session: dict[str, Any], now: datetime, policy: SessionPolicy) -> dict[str, Any] | None:
    """The fields that move a live session's idle expiry forward after a request, or None when it was moved less
    than `touch_interval` ago."""
    if now - session["last_seen_at"] < policy.touch_interval:
        return None
    return {"last_seen_at": now, "expires_at": min(now + policy.idle, session["absolute_expires_at"])}


def csrf_problem(
    method: str, session_csrf: str, presented: str | None, origin: str | None, own_origin: str
) -> str | None:
    """Why a request made with a session cookie is refused as a possible cross-site request forgery, or None."""
    if method.upper() not in STATE_CHANGING_METHODS:
        return None
    if origin is not None and origin != own_origin:
        return f"the request comes from another origin ({origin[:100]}); only {own_origin} may use this session"
    if not presented:
        return f"a request that changes something needs the session's CSRF token in the {CSRF_HEADER} header"
    if not hmac.compare_digest(presented.encode("utf-8", "replace"), session_csrf.encode("utf-8")):
        return f"the {CSRF_HEADER} header does not match this session's CSRF token"
    return None


def origin_problem(origin: str | None, own_origin: str) -> str | None:
    """Why a sign-in is refused: a browser said it comes from another site (a login CSRF), or None."""
    if origin is not None and origin != own_origin:
        return f"sign-in from another origin ({origin[:100]}) is refused; sign in on {own_origin}"
    return None
