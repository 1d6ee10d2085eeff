"""Duplicates' entrypoints, inherited by IntakeService: a citizen supports a report instead of filing it again, an OPD
merges a report into another and undoes it, merged reports follow each status change of their primary, and the OPD's
view of a report shows supporters, merged reports and routing's suggested duplicates.

Thin: the rules are in duplicates.py, the changes in the Report aggregate (report.py), the writes in
dependencies.py.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from jaklapor.contacts import encrypt_contact
from jaklapor.events import ContactRegistered, ReportStatusChanged, parse_event
from jaklapor.messaging import PermanentFailure, work_consumer, work_queue
from jaklapor.tokens import token_hash_or_none
from jaklapor.vocabulary import FINAL_STATUSES, response_deadline, utcnow
from jaklapor.web import ApiError, api, json_response, read_fields
from services.intake.dependencies import VersionConflict
from services.intake.domain import is_report_number, report_summary
from services.intake.duplicates import (
    PrimaryChange,
    changes_to_follow,
    decide_merge,
    decide_unmerge,
    may_act_on_duplicates,
    primary_change_of_event,
    status_steps,
    supporter_hash,
)
from services.intake.nearby import OPEN_STATUSES
from services.intake.report import Report
from services.intake.schemas import MergeForm, SupportForm, UnmergeForm, parse_form
from services.intake.settings import IntakeSettings

log = logging.getLogger(__name__)

#: as the submissions' Idempotency-Key (service.py)
SUPPORTER_KEY_RE = re.compile(r"^[\x21-\x7e]{16,128}$")
SUPPORTER_KEY_HELP = (
    "Idempotency-Key must be 16-128 printable ASCII characters: a random value the device keeps and sends with every "
    "support, so one person pressing twice counts once"
)
NO_STORE = {"Cache-Control": "no-store"}


def _optional_fields(request: Request) -> dict[str, str]:
    """A body's text fields; an empty body (no contact) is no fields."""
    if not request.mimetype and not request.content_length:
        return {}
    fields, _files = read_fields(request)
    return fields


class DuplicateEndpoints:
    """Mixed into IntakeService (before OpdEndpoints, whose `_opd_view` it extends)."""

    settings: IntakeSettings
    store: Any
    relay: Any
    reference: Any

    # the service's own helpers (service.py, opd_api.py)
    _check_rate: Any
    _authenticate: Any
    _not_assigned: Any
    _wake_lists: Any

    # ---- citizens: support a report instead of filing it again --------------------------------------------------

    @api("POST", "/api/v1/reports/public/<report_id>/supporters")
    def support_report(self, request: Request, report_id: str) -> Response:
        """Count the caller once among the supporters of an open report (its device's key in Idempotency-Key); an
        optional `contact` receives the report's notifications. A merged report's support goes to its primary."""
        self._check_rate(request)
        key = self._supporter_key(request)
        if not is_report_number(report_id):
            raise ApiError(
                400, "invalid_report_number", "a report number is written like JK-20261127-000042", field="report_id"
            )
        form: SupportForm = parse_form(SupportForm, _optional_fields(request))
        report = self.store.by_id(report_id)
        if report is None:
            raise ApiError(404, "report_not_found", f"no report has the number {report_id}")
        return self._support(report, key, form)

    @api("POST", "/api/v1/reports/<token>/supporters")
    def support_report_by_token(self, request: Request, token: str) -> Response:
        """The same, for a client that holds the report's tracking link (shared with it) rather than its number."""
        self._check_rate(request)
        key = self._supporter_key(request)
        form: SupportForm = parse_form(SupportForm, _optional_fields(request))
        token_hash = token_hash_or_none(token)
        report = self.store.by_token_hash(token_hash) if token_hash else None
        if report is None:
            raise ApiError(404, "report_not_found", "no report has this tracking token")
        return self._support(report, key, form)

    @staticmethod
    def _supporter_key(request: Request) -> str:
        key = request.headers.get("Idempotency-Key")
        if key is None or not SUPPORTER_KEY_RE.match(key):
            raise ApiError(400, "invalid_idempotency_key", SUPPORTER_KEY_HELP)
        return key

    def _support(self, report: dict[str, Any], key: str, form: SupportForm) -> Response:
        if report.get("merged_into"):  # the problem is followed on its primary
            report = self.store.by_id(report["merged_into"]) or report
        target = str(report["_id"])
        supporter = supporter_hash(target, key)
        messages = []
        if form.contact is not None:
            bundle = json.dumps({"contact": form.contact, "tracking_url": self._public_link(target)})
            messages.append(
                ContactRegistered(
                    report_id=target,
                    tracking_token_hash=report["tracking_token_hash"],
                    contact_ciphertext=encrypt_contact(self.settings.contact_key, bundle),
                    supporter_hash=supporter,
                )
            )
        counted = self.store.add_supporter(target, supporter, messages, list(OPEN_STATUSES))
        current = self.store.by_id(target) or report
        if not counted and supporter not in (current.get("supporter_hashes") or []):
            raise ApiError(
                409, "report_closed", f"{target} is {current['status']}: a closed report takes no more supporters"
            )
        if counted and messages:
            self.relay.publish_soon(target)
        log.info("report supported" if counted else "support repeated", extra={"report_id": target})
        body = {"report_id": target, "supporters": int(current.get("supporters") or 0), "counted": counted}
        return json_response(body, status=201 if counted else 200, headers=NO_STORE)

    def _public_link(self, report_id: str) -> str:
        return f"{self.settings.public_url.rstrip('/')}/api/v1/reports/public/{report_id}"

    # ---- OPDs: merge and unmerge -----------------------------------------------------------------------------

    @api("POST", "/api/v1/opd/reports/<report_id>/merge")
    def merge_report(self, request: Request, report_id: str) -> Response:
        """Merge a report this OPD holds into another (`primary_id`): it follows the primary from now on."""
        opd = self._authenticate(request).opd
        fields, _files = read_fields(request)
        form: MergeForm = parse_form(MergeForm, fields)
        for _attempt in range(3):
            stored = self.store.by_id(report_id)
            if stored is None:
                raise self._not_assigned(report_id, opd)
            primary = self.store.by_id(form.primary_id) if is_report_number(form.primary_id) else None
            followers = self.store.has_merged_reports(report_id)
            decision = decide_merge(stored, primary, opd, form.note, followers)  # or TransitionRefused
            report = Report(stored, self.settings.public_url)
            try:
                updated = self.store.save(report, report.merge(decision, utcnow()))
            except VersionConflict:
                continue
            self.relay.publish_soon(report_id)
            # a change of the primary between its reading and this write finds no follower yet: catch up with it
            latest = self.store.by_id(decision.primary_id)
            missed = status_steps(latest, decision.primary_version) if latest is not None else []
            if missed:
                updated = self._follow(report_id, missed[-1], latest) or updated
            self._wake_lists([opd.code])
            log.info("report merged", extra={"report_id": report_id, "primary_id": decision.primary_id})
            return json_response(self._opd_view(updated, opd), headers=NO_STORE)
        raise ApiError(409, "concurrent_update", "the report changed while this request was handled; retry")

    @api("POST", "/api/v1/opd/reports/<report_id>/unmerge")
    def unmerge_report(self, request: Request, report_id: str) -> Response:
        """Undo a merge (a mistake): the report goes back to the status it had when merged, in its OPD's list."""
        opd = self._authenticate(request).opd
        fields = _optional_fields(request)
        form: UnmergeForm = parse_form(UnmergeForm, fields)
        for _attempt in range(3):
            stored = self.store.by_id(report_id)
            if stored is None:
                raise self._not_assigned(report_id, opd)
            primary = self.store.by_id(stored["merged_into"]) if stored.get("merged_into") else None
            decision = decide_unmerge(stored, primary, opd, form.note)  # or TransitionRefused
            report = Report(stored, self.settings.public_url)
            now = utcnow()
            category = self.reference.categories.get(stored["category"])
            deadline = response_deadline(now, getattr(category, "response_days", None))
            try:
                updated = self.store.save(report, report.unmerge(decision, deadline, now))
            except VersionConflict:
                continue
            self.relay.publish_soon(report_id)
            self._wake_lists([(stored.get("assigned_opd") or {}).get("code", ""), opd.code])
            log.info("report unmerged", extra={"report_id": report_id, "primary_id": decision.primary_id})
            if (updated.get("assigned_opd") or {}).get("code") != opd.code:
                return json_response({"report_id": report_id, "status": updated["status"]}, headers=NO_STORE)
            return json_response(self._opd_view(updated, opd), headers=NO_STORE)
        raise ApiError(409, "concurrent_update", "the report changed while this request was handled; retry")

    # ---- merged reports follow their primary ---------------------------------------------------------------------

    @work_consumer(work_queue("intake.merge-followers", [("intake", "report_status_changed")]))
    def follow_primary(self, body: dict[str, Any]) -> None:
        """Each status change of a primary becomes a change of every report merged into it, through each one's own
        aggregate (its history, event and notifications). Idempotent: a report records the primary version it has
        followed, and a redelivered change is older than that."""
        try:
            event = parse_event(body)
        except ValueError as exc:
            raise PermanentFailure(str(exc)) from exc
        if not isinstance(event, ReportStatusChanged) or event.merged_into:
            return  # a follower's own change: merged reports have no followers
        change = primary_change_of_event(event)
        followers = self.store.merged_into(event.report_id)
        if followers:
            primary = self.store.by_id(event.report_id)  # the steps a follower may have missed before this one
            for follower in followers:
                self._follow(follower["_id"], change, primary)

    def _follow(self, report_id: str, change: PrimaryChange, primary: dict[str, Any] | None) -> dict[str, Any] | None:
        """Take `change` of the primary, after any of its steps this report missed, one stored change each."""
        for _attempt in range(5):
            stored = self.store.by_id(report_id)
            steps = changes_to_follow(stored, change, primary) if stored is not None else []
            if stored is None or not steps:
                return None
            try:
                for step in steps:
                    report = Report(stored, self.settings.public_url)
                    stored = self.store.save(report, report.follow_primary(step, utcnow()))
                    self.relay.publish_soon(report_id)
                    followed = {"report_id": report_id, "status": step.status}
                    log.info("merged report followed its primary", extra=followed)
            except VersionConflict:
                continue  # read again: the steps taken are not taken twice
            return dict(stored)
        raise VersionConflict(report_id)  # the message is retried

    # ---- what the OPD sees of a report -------------------------------------------------------------------------

    def _opd_view(self, report: dict[str, Any], opd: Any) -> dict[str, Any]:
        view: dict[str, Any] = super()._opd_view(report, opd)  # type: ignore[misc]
        base_url = self.settings.public_url
        merged = self.store.merged_into(report["_id"])
        suggested = [
            other
            for other in self._reports(self._suggestions(report))
            if other["_id"] != report["_id"] and other["status"] not in FINAL_STATUSES and not other.get("merged_into")
        ]
        holder = (report.get("assigned_opd") or {}).get("code")
        may_act = may_act_on_duplicates(opd, (holder,))
        view.update(
            merged_reports=[report_summary(other, base_url) for other in merged],
            possible_duplicates=[report_summary(other, base_url) for other in suggested],
            may_merge=may_act and not report.get("merged_into") and report["status"] not in FINAL_STATUSES,
            may_unmerge=may_act and bool(report.get("merged_into")),
        )
        if report.get("merged_into"):
            view["allowed_transitions"] = []  # a merged report moves with its primary only
            view["disposisi_target"] = None
        return view

    @staticmethod
    def _suggestions(report: dict[str, Any]) -> list[str]:
        """Routing's suggested duplicates, recorded with the routing result of the report's submission: an OPD that
        receives it later (a hand-over, an escalation) sees them too."""
        for entry in report.get("history") or []:
            if entry.get("kind") == "routed" and entry.get("possible_duplicates"):
                return list(entry["possible_duplicates"])
        return []

    def _reports(self, report_ids: Iterable[str]) -> list[dict[str, Any]]:
        found = [self.store.by_id(report_id) for report_id in report_ids]
        return [report for report in found if report is not None]
