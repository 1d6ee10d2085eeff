"""The citizen's word on `selesai`, entrypoints inherited by IntakeService: confirm the fix (with a rating) or reopen
the report, by its tracking token. Thin: the rules are services/intake/citizen_feedback.py's.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from werkzeug.wrappers import Request, Response

from jaklapor.tokens import token_hash_or_none
from jaklapor.vocabulary import utcnow
from jaklapor.web import ApiError, api, json_response, read_fields
from services.intake import metrics
from services.intake.citizen_feedback import (
    MAX_REOPEN_PHOTOS,
    check_reopen,
    confirm,
    confirm_replay,
    feedback_view,
    idempotency_key_hash,
    reopen,
    reopen_replay,
)
from services.intake.dependencies import VersionConflict
from services.intake.domain import public_view
from services.intake.report import Report
from services.intake.schemas import ConfirmForm, ReopenForm, parse_form
from services.intake.settings import IntakeSettings
from services.intake.uploads import delete_photos, store_new_photos

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{16,128}$")
ATTEMPTS = 3


class CitizenFeedbackEndpoints:
    """Mixed into IntakeService, whose dependencies these are."""

    settings: IntakeSettings
    store: Any
    photos: Any
    photo_cleaner: Any
    relay: Any
    opd_streams: Any

    def _feedback_window(self) -> timedelta:
        return timedelta(days=self.settings.citizen_feedback_window_days)

    def _tracked(self, token: str) -> dict[str, Any]:
        token_hash = token_hash_or_none(token)
        report = self.store.by_token_hash(token_hash) if token_hash else None
        if report is None:
            raise ApiError(404, "report_not_found", "no report has this tracking token")
        return report

    def tracking_view(self, report: dict[str, Any], token: str) -> dict[str, Any]:
        """The tracking view of the token's holder: the public view, the live stream, and what they may do now."""
        settings = self.settings
        view = public_view(report, settings.public_url, settings.notify_public_url, token)
        view["citizen_feedback"] = feedback_view(report, utcnow(), self._feedback_window())
        return view

    def _answer(self, report: dict[str, Any], token: str, replayed: bool = False) -> Response:
        headers = {"Cache-Control": "no-store", **({"Idempotent-Replayed": "true"} if replayed else {})}
        return json_response(self.tracking_view(report, token), headers=headers)

    @api("POST", "/api/v1/reports/<token>/confirm")
    def confirm_report(self, request: Request, token: str) -> Response:
        """The citizen confirms a selesai report is fixed, with an optional rating (1-5) and comment."""
        self._tracked(token)  # an unknown token is a 404 whatever the body
        # every field is optional: an empty body confirms without a rating
        # (an HTTP server may give a body-less request a default Content-Type: the length decides)
        empty = request.content_length == 0 or (
            request.content_length is None and "Transfer-Encoding" not in request.headers
        )
        fields = {} if empty else read_fields(request)[0]
        form: ConfirmForm = parse_form(ConfirmForm, fields)
        for _attempt in range(ATTEMPTS):
            stored = self._tracked(token)
            if confirm_replay(stored, form.rating, form.comment):
                return self._answer(stored, token, replayed=True)
            report = Report(stored, self.settings.public_url)
            change = confirm(report, form.rating, form.comment, self._feedback_window(), utcnow())
            try:
                updated = self.store.save(report, change)
            except VersionConflict:
                continue
            self.relay.publish_soon(report.id)
            metrics.CITIZEN_FEEDBACK.labels("confirmed").inc()
            log.info("report confirmed by its citizen", extra={"report_id": report.id, "rating": form.rating})
            return self._answer(updated, token)
        raise ApiError(409, "concurrent_update", "the report changed while this request was handled; retry")

    @api("POST", "/api/v1/reports/<token>/reopen")
    def reopen_report(self, request: Request, token: str) -> Response:
        """The citizen says a selesai report is not fixed: a reason and an optional photo; it goes back to its OPD."""
        key = request.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY_RE.match(key):
            raise ApiError(
                400,
                "invalid_idempotency_key",
                "Idempotency-Key must be 16-128 printable ASCII characters (a random UUID is ideal)",
            )
        key_hash = idempotency_key_hash(key) if key is not None else None
        fields, photo_parts = read_fields(request, "photo", max_files=MAX_REOPEN_PHOTOS)
        form: ReopenForm = parse_form(ReopenForm, fields)
        window = self._feedback_window()
        for _attempt in range(ATTEMPTS):
            stored = self._tracked(token)
            if reopen_replay(stored, form.reason, key_hash):
                return self._answer(stored, token, replayed=True)
            report = Report(stored, self.settings.public_url)
            check_reopen(report, form.reason, window, utcnow())  # refused before any photo is stored
            photos = store_new_photos(photo_parts, self.photo_cleaner, self.photos)
            photo_ids = [photo["photo_id"] for photo in photos]
            try:
                change = reopen(
                    report,
                    form.reason,
                    photo_ids,
                    window,
                    utcnow(),
                    rework_seconds=self.settings.rework_deadline_seconds,
                    key_hash=key_hash,
                )
                updated = self.store.save(report, change)
            except VersionConflict:
                delete_photos(self.photos, photos)
                continue
            except BaseException:
                delete_photos(self.photos, photos)  # nothing half-written: no photo without its reopen
                raise
            self.relay.publish_soon(report.id)
            opd_code = (report.assigned_opd or {}).get("code")
            if opd_code:
                self.opd_streams.wake_all([opd_code])
            metrics.CITIZEN_FEEDBACK.labels("reopened").inc()
            log.info("report reopened by its citizen", extra={"report_id": report.id, "opd": opd_code})
            return self._answer(updated, token)
        raise ApiError(409, "concurrent_update", "the report changed while this request was handled; retry")
