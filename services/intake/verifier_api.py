"""The verifier's API, inherited by IntakeService: the reports pending verification of every OPD (with the
evidence, the citizen's photos and the automatic verdicts) and the decision on each, approve or refuse with a reason.

The verifier signs in as an OPD does (its key `jaklapor verifier-key` as Bearer, or a workbench session); an OPD's key
here answers 403 not_a_verifier. Thin: the rules are in verification.py and evidence.py.
"""

from __future__ import annotations

import logging
from typing import Any

from werkzeug.wrappers import Request, Response

from jaklapor.events import EvidenceCheck
from jaklapor.vocabulary import VERIFICATION_APPROVED, VERIFICATION_REFUSED, iso, utcnow
from jaklapor.web import ApiError, api, json_response, read_fields
from services.intake import metrics
from services.intake.dependencies import VersionConflict
from services.intake.domain import photo_url, public_view
from services.intake.evidence import summary
from services.intake.report import Report
from services.intake.verification import (
    VerificationRefused,
    already_decided,
    approve,
    is_pending,
    is_verifier,
    refuse,
)

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}
QUEUE_LIMIT = 200


class VerifierEndpoints:
    """Mixed into IntakeService (after OpdEndpoints, whose authentication it uses)."""

    settings: Any
    store: Any
    relay: Any
    reference: Any
    opd_streams: Any
    _authenticate: Any
    _wake_lists: Any

    def _verifier(self, request: Request) -> Any:
        principal = self._authenticate(request).opd
        if not is_verifier(principal):
            raise VerificationRefused("not_a_verifier", "only the city's verifier approves or refuses completions")
        return principal

    def _verification_view(self, report: dict[str, Any]) -> dict[str, Any]:
        """A report as the verifier reads it: the public view, the OPD's completion (note, evidence) and the
        automatic verdict on each evidence photo, in words."""
        base_url = self.settings.public_url
        view = public_view(report, base_url)
        record = report.get("verification") or {}
        opd_code = record.get("opd") or (report.get("assigned_opd") or {}).get("code")
        opd = self.reference.directory.get(opd_code) if opd_code else None
        view["completion"] = {
            "opd": {"code": opd_code, "name": opd.name if opd is not None else opd_code},
            "note": record.get("note", ""),
            "submitted_at": iso(record.get("submitted_at")),
            "round": record.get("round", 1),
            "evidence_photos": [photo_url(base_url, p) for p in record.get("evidence_photos") or []],
            "checks": [summary(EvidenceCheck.model_validate(c)) for c in record.get("checks") or []],
        }
        return view

    @api("GET", "/api/v1/verifier/reports")
    def verification_queue(self, request: Request) -> Response:
        """The reports of every OPD waiting for verification, the longest waiting first."""
        self._verifier(request)
        pending = self.store.pending_verification(QUEUE_LIMIT)
        items = [self._verification_view(report) for report in pending]
        return json_response({"reports": items, "count": len(items)}, headers=NO_STORE)

    @api("GET", "/api/v1/verifier/reports/<report_id>")
    def verification_report(self, request: Request, report_id: str) -> Response:
        self._verifier(request)
        report = self.store.by_id(report_id)
        if report is None or not report.get("verification"):
            raise ApiError(404, "report_not_found", f"no report {report_id} has a completion to verify")
        return json_response(self._verification_view(report), headers=NO_STORE)

    @api("POST", "/api/v1/verifier/reports/<report_id>/approve")
    def verification_approve(self, request: Request, report_id: str) -> Response:
        """Approve the OPD's completion: the report closes as selesai. Idempotent: approving again answers 200."""
        self._verifier(request)
        return self._decide(report_id, VERIFICATION_APPROVED, None)

    @api("POST", "/api/v1/verifier/reports/<report_id>/refuse")
    def verification_refuse(self, request: Request, report_id: str) -> Response:
        """Refuse with a `reason`: the report goes back to the same OPD as dikerjakan, with a new deadline.
        Idempotent: the same refusal again answers 200."""
        self._verifier(request)
        fields, _files = read_fields(request)
        reason = str(fields.get("reason") or "")
        if not reason.strip():
            raise VerificationRefused(
                "missing_reason", "a refusal needs a reason the OPD and the citizen read", "reason"
            )
        return self._decide(report_id, VERIFICATION_REFUSED, reason)

    def _decide(self, report_id: str, outcome: str, reason: str | None) -> Response:
        for _attempt in range(3):
            stored = self.store.by_id(report_id)
            if stored is None or not stored.get("verification"):
                raise ApiError(404, "report_not_found", f"no report {report_id} has a completion to verify")
            if not is_pending(stored) and already_decided(stored, outcome, reason):
                return json_response(self._verification_view(stored))  # a retry of a decision already made
            report = Report(stored, self.settings.public_url)
            now = utcnow()
            if outcome == VERIFICATION_APPROVED:
                change = approve(report, now)
            else:
                opd_code = (stored.get("verification") or {}).get("opd", "")
                opd = self.reference.directory.get(opd_code)
                name = opd.name if opd is not None else opd_code
                change = refuse(report, reason or "", name, now, self.settings.rework_deadline_seconds)
            try:
                updated = self.store.save(report, change)
            except VersionConflict:
                continue
            self.relay.publish_soon(report_id)
            self._wake_lists([(stored.get("assigned_opd") or {}).get("code", "")])
            metrics.VERIFICATIONS.labels(outcome).inc()
            log.info("completion verified", extra={"report_id": report_id, "outcome": outcome})
            return json_response(self._verification_view(updated))
        raise ApiError(409, "concurrent_update", "the report changed while this request was handled; retry")
