"""jaklapor.web's domain error tables: a domain raises errors without HTTP statuses, the gateway answers them."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from nameko.web.handlers import HttpRequestHandler
from werkzeug.exceptions import HTTPException

from jaklapor.web import ApiEndpoint, ApiError, DomainErrors, DomainErrorTable


class Refused(Exception):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


class Rejected(Exception):
    field = "photo"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


ERRORS = DomainErrors(
    DomainErrorTable(Refused, {"not_yet": 409, "not_yours": 404}, headers={"not_yet": {"Retry-After": "1"}}),
    DomainErrorTable(Rejected, {"too_large": 413}, default_status=422, code_prefix="photo_"),
)


def test_a_listed_code_gets_its_status_and_headers() -> None:
    error = ERRORS.api_error(Refused("not_yet", "still routing", "status"))
    assert error is not None
    assert (error.status, error.code, error.message, error.field) == (409, "not_yet", "still routing", "status")
    assert error.headers == {"Retry-After": "1"}
    assert ERRORS.api_error(Refused("not_yours", "no such report")).headers == {}  # type: ignore[union-attr]


def test_a_prefix_names_the_codes_and_a_default_covers_the_rest() -> None:
    large, corrupt = ERRORS.api_error(Rejected("too_large", "big")), ERRORS.api_error(Rejected("corrupt", "bad"))
    assert large is not None and corrupt is not None
    assert (large.status, large.code, large.field) == (413, "photo_too_large", "photo")
    assert (corrupt.status, corrupt.code) == (422, "photo_corrupt")


def test_what_no_table_maps_is_left_alone() -> None:
    assert ERRORS.api_error(Refused("unheard_of", "?")) is None  # no default: a server error, not a guess
    assert ERRORS.api_error(ValueError("x")) is None
    api_error = ApiError(400, "bad", "bad request")
    assert ERRORS.api_error(api_error) is api_error
    assert ERRORS.types == (Refused, Rejected)


def test_an_endpoint_answers_its_service_domain_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HttpRequestHandler, "setup", lambda self: None)  # no web server to register with
    endpoint = ApiEndpoint("POST", "/reports")
    endpoint.container = SimpleNamespace(service_cls=SimpleNamespace(domain_errors=ERRORS))  # type: ignore[assignment]
    endpoint.setup()
    assert endpoint.expected_exceptions == (ApiError, HTTPException, Refused, Rejected)  # logged as expected

    response = endpoint.response_from_exception(Refused("not_yet", "still routing", "status"))
    assert (response.status_code, response.headers["Retry-After"]) == (409, "1")
    assert json.loads(response.get_data()) == {
        "error": {"code": "not_yet", "message": "still routing", "field": "status"}
    }
    assert endpoint.response_from_exception(RuntimeError("boom")).status_code == 500


def test_an_endpoint_of_a_service_without_domain_errors_answers_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HttpRequestHandler, "setup", lambda self: None)
    endpoint = ApiEndpoint("GET", "/x")
    endpoint.container = SimpleNamespace(service_cls=object)  # type: ignore[assignment]
    endpoint.setup()
    assert endpoint.expected_exceptions == (ApiError, HTTPException)
    assert endpoint.response_from_exception(ApiError(404, "nope", "no")).status_code == 404
    assert endpoint.response_from_exception(Refused("not_yet", "x")).status_code == 500
