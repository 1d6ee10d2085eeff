"""Who is calling the OPD API, in HTTP terms: an agency's key in `Authorization: Bearer <key>` (agency systems), or
a workbench session's cookie (browsers; services/intake/sessions.py has the rules), and the answers refusing them."""

from __future__ import annotations

from werkzeug.http import dump_cookie

from jaklapor.web import ApiError
from services.intake.sessions import SESSION_COOKIE

BEARER_CHALLENGE = 'Bearer realm="jaklapor-opd"'


def presented_key(authorization: str) -> str:
    """The key of an `Authorization: Bearer <key>` header; 401 for any other form of the header."""
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise unauthenticated()
    return presented.strip()


def unauthenticated() -> ApiError:
    error = ApiError(
        401,
        "unauthenticated",
        "send the OPD's API key as `Authorization: Bearer <key>`, or sign in (POST /api/v1/opd/session) for a session",
    )
    error.headers["WWW-Authenticate"] = BEARER_CHALLENGE
    return error


def invalid_key() -> ApiError:
    error = ApiError(401, "invalid_key", "the API key is not valid")
    error.headers["WWW-Authenticate"] = f'{BEARER_CHALLENGE}, error="invalid_token"'
    return error


def too_many_wrong_keys(retry_after: int) -> ApiError:
    error = ApiError(429, "too_many_failures", f"too many wrong keys from this client; try again in {retry_after} s")
    error.headers["Retry-After"] = str(retry_after)
    return error


def session_ended(secure: bool) -> ApiError:
    """The cookie's session is unknown, expired or signed out: sign in again (and the browser forgets the cookie)."""
    error = ApiError(401, "session_expired", "the session has ended (signed out or expired); sign in again")
    error.headers["Set-Cookie"] = cleared_session_cookie(secure)
    return error


def csrf_failed(problem: str) -> ApiError:
    return ApiError(403, "csrf_failed", problem)


def session_cookie(token: str, max_age_seconds: int, secure: bool) -> str:
    """The Set-Cookie value handing a session to the browser: script cannot read it, other sites cannot send it."""
    return dump_cookie(
        SESSION_COOKIE, token, max_age=max_age_seconds, path="/", secure=secure, httponly=True, samesite="Strict"
    )


def cleared_session_cookie(secure: bool) -> str:
    return dump_cookie(SESSION_COOKIE, "", max_age=0, path="/", secure=secure, httponly=True, samesite="Strict")
