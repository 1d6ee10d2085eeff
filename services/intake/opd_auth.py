"""Who is calling the OPD API: the OPD whose API key the request carries."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from jaklapor.opd_keys import verify_key
from jaklapor.web import ApiError


def authenticate_opd(request: Request, key_secret: str, directory: Any) -> Any:
    """The OPD of the request's `Authorization: Bearer <key>`; 401 without a key or with one that is not valid."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        error = ApiError(401, "unauthenticated", "send the OPD's API key as `Authorization: Bearer <key>`")
        error.headers["WWW-Authenticate"] = 'Bearer realm="jaklapor-opd"'
        raise error
    opd_code = verify_key(key_secret, presented.strip())
    opd = directory.get(opd_code) if opd_code else None
    if opd is None:
        error = ApiError(401, "invalid_key", "the API key is not valid")
        error.headers["WWW-Authenticate"] = 'Bearer realm="jaklapor-opd", error="invalid_token"'
        raise error
    return opd
