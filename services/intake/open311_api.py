"""Open311 GeoReport v2 at `/open311/v2` (services/intake/open311.py says how jaklapor maps onto it): HTTP
entrypoints mixed into IntakeService, each answering XML (the spec's required format) or JSON by the path's
extension, errors included (`[{code, description}]`, the HTTP status as `code`).

POST requests go through the native submission (`IntakeService._accept`): the same validation, rate limit,
Idempotency-Key and privacy (email / phone and names go only to notify, encrypted; no GET shows them). The photo
comes as the v2.1 draft's multipart part `media`; `media_url` is refused (open311.MEDIA_URL_REFUSED says why).
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from pymongo.errors import PyMongoError
from werkzeug.wrappers import Request, Response

from jaklapor.tokens import token_hash_or_none
from jaklapor.web import ApiError, api, read_fields
from services.intake.domain import MAX_PHOTOS_PER_REPORT, is_report_number
from services.intake.http_errors import INTAKE_ERRORS
from services.intake.nearby import MAX_CANDIDATES
from services.intake.open311 import (
    FORMATS,
    MEDIA_URL_REFUSED,
    Open311Error,
    check_format,
    check_jurisdiction,
    discovery,
    parse_submission,
    plan_requests,
    service_definition,
    service_list,
    service_request,
    within_circle,
)
from services.intake.open311_xml import xml_document
from services.intake.public_reports import LISTING_FIELDS, mongo_filter, newest_first
from services.intake.schemas import SubmissionForm, parse_form
from services.intake.visibility import for_public, only_public

log = logging.getLogger(__name__)

PREFIX = "/open311/v2"


def open311_response(fmt: str, root: str, value: Any, status: int = 200, cache: str = "no-cache") -> Response:
    """`value` in the format asked for; XML under `root` (the JSON mapping is the bare list or object)."""
    if fmt == "json":
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    else:
        body = xml_document(root, value)
    return Response(
        body,
        status=status,
        content_type=FORMATS[fmt],
        headers={"Cache-Control": cache, "Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff"},
    )


def as_open311_error(exc: Exception) -> Open311Error | None:
    """The spec's error for what the native path raised: its 422 (a field is wrong) is the spec's 400."""
    if isinstance(exc, Open311Error):
        return exc
    if isinstance(exc, PyMongoError):
        log.error("report store unavailable: %r", exc)
        return Open311Error(503, "reports cannot be read or stored right now; try again shortly")
    error = INTAKE_ERRORS.api_error(exc)
    if error is None:
        return None
    status = 400 if error.status == 422 else error.status
    field = f" (field {error.field})" if error.field else ""
    return Open311Error(status, f"{error.message}{field}")


def answer_error(fmt: str, exc: Exception) -> Response:
    error = as_open311_error(exc)
    if error is None:
        raise exc
    response = open311_response(fmt if fmt in FORMATS else "xml", "errors", error.body(), error.status, "no-store")
    if isinstance(exc, ApiError):
        response.headers.update(exc.headers)  # Retry-After of a 429
    return response


class Open311Endpoints:
    """GeoReport v2 (mixed into IntakeService, which provides the store, reference data, settings and `_accept`)."""

    settings: Any
    store: Any
    reference: Any

    def _open311(self, fmt: str, action: Any) -> Response:
        try:
            check_format(fmt)
            return action()
        except Exception as exc:
            return answer_error(fmt, exc)

    @api("GET", "/open311/discovery.<fmt>")
    def open311_discovery(self, request: Request, fmt: str) -> Response:
        return self._open311(fmt, lambda: self._discovery(fmt))

    @api("GET", f"{PREFIX}/discovery.<fmt>")
    def open311_v2_discovery(self, request: Request, fmt: str) -> Response:
        return self._open311(fmt, lambda: self._discovery(fmt))

    def _discovery(self, fmt: str) -> Response:
        document = discovery(self.settings.public_url, f"{self.settings.public_url.rstrip('/')}/openapi.json")
        return open311_response(fmt, "discovery", document, cache="public, max-age=3600")

    @api("GET", f"{PREFIX}/services.<fmt>")
    def open311_services(self, request: Request, fmt: str) -> Response:
        def answer() -> Response:
            check_jurisdiction(request.args.get("jurisdiction_id"))
            services = service_list(self.reference.categories)
            return open311_response(fmt, "services", services, cache="public, max-age=3600")

        return self._open311(fmt, answer)

    @api("GET", f"{PREFIX}/services/<service_code>.<fmt>")
    def open311_service_definition(self, request: Request, service_code: str, fmt: str) -> Response:
        def answer() -> Response:
            check_jurisdiction(request.args.get("jurisdiction_id"))
            category = self.reference.categories.get(service_code)
            if category is None:
                raise Open311Error(404, f"service_code {service_code!r} was not found; GET services.{fmt} lists them")
            return open311_response(
                fmt, "service_definition", service_definition(category), cache="public, max-age=3600"
            )

        return self._open311(fmt, answer)

    @api("GET", f"{PREFIX}/requests.<fmt>")
    def open311_requests(self, request: Request, fmt: str) -> Response:
        def answer() -> Response:
            categories = self.reference.categories
            plan = plan_requests(request.args.to_dict(flat=False), categories)
            query = mongo_filter(plan.filter, categories)
            base_url = self.settings.public_url
            if plan.circle is None:
                found = only_public(newest_first(self.store.reports, query, plan.skip, plan.limit), categories)
            else:
                # the circle is checked on the published points, then paged: read the box's candidates first
                candidates = only_public(newest_first(self.store.reports, query, 0, MAX_CANDIDATES), categories)
                inside = [report for report in candidates if within_circle(report, *plan.circle)]
                found = inside[plan.skip : plan.skip + plan.limit]
            requests = [service_request(report, categories, base_url, plan.extensions) for report in found]
            return open311_response(fmt, "service_requests", requests)

        return self._open311(fmt, answer)

    @api("GET", f"{PREFIX}/requests/<report_id>.<fmt>")
    def open311_request(self, request: Request, report_id: str, fmt: str) -> Response:
        def answer() -> Response:
            check_jurisdiction(request.args.get("jurisdiction_id"))
            categories = self.reference.categories
            stored = (
                self.store.reports.find_one({"_id": report_id}, dict.fromkeys(LISTING_FIELDS, 1))
                if is_report_number(report_id)
                else None
            )
            report = for_public(stored, categories) if stored is not None else None
            if report is None:  # a private category's report is not found either
                raise Open311Error(404, f"service_request_id {report_id!r} was not found")
            extensions = request.args.get("extensions") == "true"
            view = service_request(report, categories, self.settings.public_url, extensions)
            return open311_response(fmt, "service_requests", [view])

        return self._open311(fmt, answer)

    @api("GET", f"{PREFIX}/tokens/<token>.<fmt>")
    def open311_token(self, request: Request, token: str, fmt: str) -> Response:
        def answer() -> Response:
            check_jurisdiction(request.args.get("jurisdiction_id"))
            token_hash = token_hash_or_none(token)
            report = self.store.by_token_hash(token_hash) if token_hash else None
            if report is None:
                raise Open311Error(404, "token was not found")
            found = [{"service_request_id": report["_id"], "token": token}]
            return open311_response(fmt, "service_requests", found, cache="no-store")

        return self._open311(fmt, answer)

    @api("POST", f"{PREFIX}/requests.<fmt>")
    def open311_create_request(self, request: Request, fmt: str) -> Response:
        def answer() -> Response:
            self._check_rate(request)  # type: ignore[attr-defined]  # IntakeService's
            idempotency_key = self._idempotency_key(request)  # type: ignore[attr-defined]
            fields, media = read_fields(request, "media", max_files=MAX_PHOTOS_PER_REPORT)
            self._check_api_key(fields.get("api_key"))
            submission = parse_submission(fields)
            check_jurisdiction(submission.jurisdiction_id)
            if submission.media_url:
                raise Open311Error(400, MEDIA_URL_REFUSED)
            if submission.service_code not in self.reference.categories:
                raise Open311Error(
                    404, f"service_code {submission.service_code!r} was not found; GET services.{fmt} lists them"
                )
            form: SubmissionForm = parse_form(
                SubmissionForm,
                {
                    "category": submission.service_code,
                    "description": submission.description,
                    "lat": submission.lat,
                    "lon": submission.long,
                    **({"contact": submission.contact} if submission.contact else {}),
                },
            )
            accepted = self._accept(form, media, idempotency_key, submission.name)  # type: ignore[attr-defined]
            receipt = [
                {
                    "service_request_id": accepted.report["_id"],
                    # the tracking token, shown this once: the token lookup and the native tracking view take it
                    "token": accepted.token,
                    "service_notice": "Laporan diterima; simpan token untuk melacak laporan ini",
                    "account_id": None,
                }
            ]
            response = open311_response(fmt, "service_requests", receipt, status=201, cache="no-store")
            if accepted.replayed:
                response.headers["Idempotent-Replayed"] = "true"
            return response

        return self._open311(fmt, answer)

    def _check_api_key(self, given: str | None) -> None:
        keys = [key.strip() for key in self.settings.open311_api_keys.split(",") if key.strip()]
        if not keys:
            return  # anonymous submissions, as the native API takes them
        if not given or not any(hmac.compare_digest(given.encode(), key.encode()) for key in keys):
            raise Open311Error(403, "api_key was not provided or is not valid")
