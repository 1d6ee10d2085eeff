"""Intake: the HTTP gateway for citizens and OPDs; owns reports, their history and photos."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from typing import IO, Any

from pymongo.errors import PyMongoError
from werkzeug.wrappers import Request, Response

from jaklapor.config import setting
from jaklapor.contacts import CONTACTS_QUEUE, encrypt_contact
from jaklapor.events import (
    AreaRef,
    ContactRegistered,
    Event,
    Location,
    OpdRef,
    PhotoRef,
    ReportEscalated,
    ReportForwarded,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportUnroutable,
    new_event_id,
    parse_event,
)
from jaklapor.messaging import (
    PermanentFailure,
    broker_reachable,
    event_exchange,
    work_consumer,
    work_queue,
)
from jaklapor.opd_keys import verify_key
from jaklapor.operations import OperationsEndpoints, SecretGuard
from jaklapor.reference import slugify
from jaklapor.storage import PhotoNotFound, PhotoStorage, StorageUnavailable
from jaklapor.timers import timer_from_config
from jaklapor.tokens import hash_token, new_tracking_token, token_hash_or_none, tracking_token_for_retry
from jaklapor.vocabulary import (
    MENUNGGU,
    NOTE_SUBMITTED,
    STATUS_LABELS,
    WAITING_STATUSES,
    iso,
    note_escalated,
    note_overdue_at_top,
    note_routed,
    utcnow,
)
from jaklapor.web import ApiError, api, json_response, read_fields
from services.intake import metrics
from services.intake.dependencies import (
    OutboxRelay,
    PhotoCleaner,
    Reference,
    ReportStore,
    SubmissionLimiter,
    VersionConflict,
    insert_new_report,
)
from services.intake.domain import (
    MAX_PHOTOS_PER_REPORT,
    ReportState,
    SubmissionRetry,
    TransitionRefused,
    TransitionRequest,
    decide_transition,
    escalation_target,
    format_report_number,
    history_entry,
    new_photo_id,
    photo_url,
    public_view,
    report_day,
    submission_fingerprint,
)
from services.intake.openapi import openapi_document
from services.intake.photos import PhotoRejected, SanitizedPhoto
from services.intake.ratelimit import client_address
from services.intake.schemas import SubmissionForm, TransitionForm, parse_form

log = logging.getLogger(__name__)

PHOTO_ID_RE = re.compile(r"^[A-Za-z0-9_-]{24}$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{16,128}$")


def sha256_of(part: IO[bytes]) -> bytes:
    """The SHA-256 of an uploaded file, read in blocks; the file is left at its start."""
    part.seek(0)
    digest = hashlib.file_digest(part, "sha256").digest()
    part.seek(0)
    return digest


def outbox_entry(event: Event) -> dict[str, Any]:
    return {
        "message_id": event.event_id,
        "exchange": event_exchange(event.source).name,
        "routing_key": event.type_name,
        "body": event.to_message(),
    }


def opd_ref(opd: Any) -> dict[str, str]:
    return OpdRef(code=opd.code, name=opd.name, level=opd.level).model_dump()


class IntakeService(OperationsEndpoints):
    name = "intake"
    # the outbox keeps accepting reports while the broker is away: a broker outage degrades, it does not stop intake
    required_checks = ("mongo", "object_store")

    secrets = SecretGuard("OPD_KEY_SECRET", "TOKEN_SECRET", "CONTACT_KEY", "S3_SECRET_KEY")
    store = ReportStore()
    photos = PhotoStorage()
    photo_cleaner = PhotoCleaner()
    relay = OutboxRelay()
    reference = Reference()
    limiter = SubmissionLimiter()

    # ---- citizens -------------------------------------------------------------------------------------------

    @api("GET", "/openapi.json")
    def openapi(self, request: Request) -> Response:
        document = openapi_document(
            setting(self.config, "PUBLIC_URL", "http://127.0.0.1:8000"), list(self.reference.categories)
        )
        return json_response(document, headers={"Access-Control-Allow-Origin": "*"})

    @api("GET", "/api/v1/categories")
    def list_categories(self, request: Request) -> Response:
        categories = [
            {"code": c.code, "name": c.name, "name_en": c.name_en, "description": c.description}
            for c in self.reference.categories.values()
        ]
        return json_response({"categories": categories})

    @api("POST", "/api/v1/reports")
    def submit_report(self, request: Request) -> Response:
        try:
            self._check_rate(request)
            return self._submit(request)
        except ApiError as exc:
            metrics.SUBMISSIONS_REFUSED.labels(exc.code).inc()
            raise

    def _check_rate(self, request: Request) -> None:
        client = client_address(
            request.remote_addr,
            request.headers.get("X-Forwarded-For"),
            int(setting(self.config, "TRUSTED_PROXY_HOPS", 0)),
        )
        verdict = self.limiter.take(client)
        if not verdict.allowed:
            error = ApiError(
                429, "rate_limited", f"too many reports from this client; retry in {verdict.retry_after} s"
            )
            error.headers["Retry-After"] = str(verdict.retry_after)
            raise error

    def _submit(self, request: Request) -> Response:
        idempotency_key = request.headers.get("Idempotency-Key")
        if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.match(idempotency_key):
            raise ApiError(
                400,
                "invalid_idempotency_key",
                "Idempotency-Key must be 16-128 printable ASCII characters (a random UUID is ideal)",
            )
        fields, photo_parts = read_fields(request, "photo", max_files=MAX_PHOTOS_PER_REPORT)
        form: SubmissionForm = parse_form(SubmissionForm, fields)
        category = self._category(form.category)

        retry = None
        if idempotency_key is not None:
            retry = SubmissionRetry(
                key_hash=hashlib.sha256(b"idempotency-key\0" + idempotency_key.encode()).hexdigest(),
                fingerprint=submission_fingerprint(form, category.code, [sha256_of(part) for part in photo_parts]),
                token=tracking_token_for_retry(setting(self.config, "TOKEN_SECRET"), idempotency_key),
            )
            existing = self.store.by_idempotency_key(retry.key_hash)
            if existing is not None:
                return self._replay(existing, retry)

        # photos are what JAKI sends; channels without a camera (SMS relays, call centre) may omit them
        photos = self._store_new_photos(photo_parts)
        now = utcnow()
        token = retry.token if retry else new_tracking_token()
        try:
            day = report_day(now)
            report_id = format_report_number(day, self.store.next_sequence(day))
            report = self._new_report(report_id, token, form, category.code, photos, now, retry)
            existing = insert_new_report(self.store, report)
        except PyMongoError as exc:
            self._delete_photos(photos)
            log.error("report store unavailable: %r", exc)
            raise ApiError(503, "store_unavailable", "reports cannot be stored right now; try again shortly") from None
        if existing is not None:  # a concurrent retry with the same Idempotency-Key stored it first
            self._delete_photos(photos)
            return self._replay(existing, retry)
        self.relay.publish_soon(report_id)
        metrics.SUBMISSIONS.labels(category.code).inc()
        log.info("report submitted", extra={"report_id": report_id, "category": category.code})
        return json_response(
            self._receipt(report, token),
            status=201,
            headers={"Location": self._tracking_url(token)},
        )

    def _replay(self, report: dict[str, Any], retry: SubmissionRetry | None) -> Response:
        """The answer to a retried submission: the same report and token, unless the key was reused for another."""
        if retry is None or report.get("idempotency_fingerprint") != retry.fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different report; use a new key for a new report",
            )
        metrics.SUBMISSIONS_REPLAYED.inc()
        return json_response(
            self._receipt(report, retry.token),
            status=201,
            headers={"Location": self._tracking_url(retry.token), "Idempotent-Replayed": "true"},
        )

    def _category(self, text: str) -> Any:
        category = self.reference.categories.get(text)
        if category is None:
            raise ApiError(
                422,
                "unknown_category",
                f"unknown category {text!r}; GET /api/v1/categories lists the valid codes",
                field="category",
            )
        return category

    def _sanitize(self, data: bytes) -> SanitizedPhoto:
        started = time.perf_counter()
        try:
            photo = self.photo_cleaner(data)
        except PhotoRejected as exc:
            raise ApiError(exc.status, f"photo_{exc.code}", exc.message, field="photo") from None
        metrics.PHOTO_SECONDS.observe(time.perf_counter() - started)
        return photo

    def _store_new_photos(self, parts: list[IO[bytes]]) -> list[dict[str, Any]]:
        """Check, clean and store the uploaded photos one at a time; the records for the report document.

        All or nothing: when one photo is refused or cannot be stored, those already stored are deleted.
        """
        stored: list[dict[str, Any]] = []
        try:
            for part in parts:
                part.seek(0)  # a retried transition reads its evidence again
                photo = self._sanitize(part.read())
                photo_id = new_photo_id()
                self._store_photo(photo_id, photo)
                stored.append(
                    dict(photo_id=photo_id, width=photo.width, height=photo.height, content_type=photo.content_type)
                )
        except BaseException:
            self._delete_photos(stored)
            raise
        return stored

    def _delete_photos(self, photos: list[dict[str, Any]]) -> None:
        for photo in photos:
            self.photos.delete(self._photo_key(photo["photo_id"]))

    @staticmethod
    def _photo_key(photo_id: str) -> str:
        return f"photos/{photo_id}.jpg"

    def _store_photo(self, photo_id: str, photo: SanitizedPhoto) -> None:
        try:
            self.photos.put(self._photo_key(photo_id), photo.content, photo.content_type)
        except StorageUnavailable as exc:
            log.error("photo store unavailable: %s", exc)
            raise ApiError(503, "storage_unavailable", "photos cannot be stored right now; try again shortly") from None

    def _new_report(
        self,
        report_id: str,
        token: str,
        form: SubmissionForm,
        category: str,
        photos: list[dict[str, Any]],
        now: Any,
        retry: SubmissionRetry | None,
    ) -> dict[str, Any]:
        base_url = setting(self.config, "PUBLIC_URL", "http://127.0.0.1:8000")
        token_hash = hash_token(token)
        location = Location(lat=form.lat, lon=form.lon)
        submitted = ReportSubmitted(
            report_id=report_id,
            version=1,
            category=category,
            description=form.description,
            location=location,
            photos=[PhotoRef(photo_id=p["photo_id"], url=photo_url(base_url, p["photo_id"])) for p in photos],
            submitted_at=now,
            tracking_token_hash=token_hash,
            has_contact=form.contact is not None,
        )
        outbox = [outbox_entry(submitted)]
        if form.contact is not None:
            key = setting(self.config, "CONTACT_KEY")
            outbox.append(
                {
                    "message_id": new_event_id(),
                    "exchange": "",
                    "routing_key": CONTACTS_QUEUE,
                    "body": ContactRegistered(
                        report_id=report_id,
                        tracking_token_hash=token_hash,
                        # notify needs the tracking link for its messages; it travels encrypted with the contact
                        contact_ciphertext=encrypt_contact(
                            key, json.dumps({"contact": form.contact, "tracking_url": self._tracking_url(token)})
                        ),
                    ).to_message(),
                }
            )
        report: dict[str, Any] = {
            "_id": report_id,
            "tracking_token_hash": token_hash,
            "category": category,
            "description": form.description,
            "location": location.model_dump(),
            "photos": photos,
            "status": MENUNGGU,
            "version": 1,
            "hop": 0,
            "assigned_opd": None,
            "area": None,
            "submitted_at": now,
            "updated_at": now,
            "history": [history_entry("submitted", now, MENUNGGU, note=NOTE_SUBMITTED)],
            "applied_events": [],
            "outbox": outbox,
            "outbox_due": now,
        }
        if retry is not None:
            report["idempotency_key_hash"] = retry.key_hash
            report["idempotency_fingerprint"] = retry.fingerprint
        return report

    def _tracking_url(self, token: str) -> str:
        return f"{setting(self.config, 'PUBLIC_URL', 'http://127.0.0.1:8000').rstrip('/')}/api/v1/reports/{token}"

    def _stream_url(self, token: str) -> str:
        base = setting(self.config, "NOTIFY_PUBLIC_URL", "http://127.0.0.1:8001").rstrip("/")
        return f"{base}/api/v1/reports/{token}/stream"

    def _receipt(self, report: dict[str, Any], token: str) -> dict[str, Any]:
        return {
            "report_id": report["_id"],
            "tracking_token": token,
            "status": report["status"],
            "status_label": STATUS_LABELS[report["status"]],
            "category": report["category"],
            "submitted_at": iso(report["submitted_at"]),
            "tracking_url": self._tracking_url(token),
            "stream_url": self._stream_url(token),
        }

    @api("GET", "/api/v1/reports/<token>")
    def track_report(self, request: Request, token: str) -> Response:
        token_hash = token_hash_or_none(token)
        report = self.store.by_token_hash(token_hash) if token_hash else None
        if report is None:
            raise ApiError(404, "report_not_found", "no report has this tracking token")
        base_url = setting(self.config, "PUBLIC_URL", "http://127.0.0.1:8000")
        notify_url = setting(self.config, "NOTIFY_PUBLIC_URL", "http://127.0.0.1:8001")
        return json_response(public_view(report, base_url, notify_url, token), headers={"Cache-Control": "no-store"})

    @api("GET", "/api/v1/photos/<photo_id>")
    def get_photo(self, request: Request, photo_id: str) -> Response:
        if not PHOTO_ID_RE.match(photo_id):
            raise ApiError(404, "photo_not_found", "no such photo")
        try:
            stored = self.photos.get(self._photo_key(photo_id))
        except PhotoNotFound:
            raise ApiError(404, "photo_not_found", "no such photo") from None
        except StorageUnavailable:
            raise ApiError(503, "storage_unavailable", "photos cannot be read right now; try again shortly") from None
        return Response(
            stored.content,
            content_type=stored.content_type,
            headers={
                "Cache-Control": "private, max-age=86400",
                "X-Content-Type-Options": "nosniff",
            },
        )

    # ---- agencies (OPD API) -------------------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            error = ApiError(401, "unauthenticated", "send the OPD's API key as `Authorization: Bearer <key>`")
            error.headers["WWW-Authenticate"] = 'Bearer realm="jaklapor-opd"'
            raise error
        opd_code = verify_key(setting(self.config, "OPD_KEY_SECRET"), presented.strip())
        opd = self.reference.directory.get(opd_code) if opd_code else None
        if opd is None:
            error = ApiError(401, "invalid_key", "the API key is not valid")
            error.headers["WWW-Authenticate"] = 'Bearer realm="jaklapor-opd", error="invalid_token"'
            raise error
        return opd

    def _opd_view(self, report: dict[str, Any]) -> dict[str, Any]:
        base_url = setting(self.config, "PUBLIC_URL", "http://127.0.0.1:8000")
        view = public_view(report, base_url, "", None)
        view["hop"] = report.get("hop", 0)
        return view

    @api("GET", "/api/v1/opd/me")
    def whoami(self, request: Request) -> Response:
        opd = self._authenticate(request)
        return json_response({"opd": opd_ref(opd)})

    @api("GET", "/api/v1/opd/reports/<report_id>")
    def opd_get_report(self, request: Request, report_id: str) -> Response:
        opd = self._authenticate(request)
        report = self.store.by_id(report_id)
        if report is None or (report.get("assigned_opd") or {}).get("code") != opd.code:
            raise ApiError(404, "report_not_found", f"no report {report_id} is assigned to {opd.code}")
        return json_response(self._opd_view(report))

    @api("POST", "/api/v1/opd/reports/<report_id>/transitions")
    def transition(self, request: Request, report_id: str) -> Response:
        opd = self._authenticate(request)
        fields, evidence_parts = read_fields(request, "photo", max_files=1)
        form: TransitionForm = parse_form(TransitionForm, fields)
        for _attempt in range(3):
            report = self.store.by_id(report_id)
            if report is None:
                raise ApiError(404, "report_not_found", f"no report {report_id} is assigned to {opd.code}")
            state = ReportState(
                report_id=report_id,
                status=report["status"],
                assigned_opd=(report.get("assigned_opd") or {}).get("code"),
                kota_slug=(report.get("area") or {}).get("kota_slug"),
            )
            request_ = TransitionRequest(
                status=form.status.lower(),
                note=form.note,
                target_opd=form.target_opd or None,
                reason=form.reason or None,
                has_evidence=bool(evidence_parts),
            )
            try:
                decision = decide_transition(state, opd, request_, self.reference.directory)
            except TransitionRefused as exc:
                error = ApiError(exc.status, exc.code, exc.message, field=exc.field)
                if exc.code == "not_routed_yet":
                    error.headers["Retry-After"] = "1"
                raise error from None
            evidence = self._store_new_photos(evidence_parts)
            try:
                updated = self._apply_decision(report, decision, [p["photo_id"] for p in evidence])
            except VersionConflict:
                self._delete_photos(evidence)
                continue
            self.relay.publish_soon(report_id)
            metrics.TRANSITIONS.labels(decision.to_status).inc()
            log.info(
                "report status changed",
                extra={"report_id": report_id, "status": decision.to_status, "actor_opd": opd.code},
            )
            return json_response(self._opd_view(updated))
        raise ApiError(409, "concurrent_update", "the report changed while this request was handled; retry")

    def _apply_decision(self, report: dict[str, Any], decision: Any, evidence_ids: list[str]) -> dict[str, Any]:
        now = utcnow()
        base_url = setting(self.config, "PUBLIC_URL", "http://127.0.0.1:8000")
        version = report["version"] + 1
        area = AreaRef.model_validate(report["area"]) if report.get("area") else None
        assigned = report.get("assigned_opd")
        # any answer of the assigned OPD stops its response clock; a hand-over starts a new one when routed
        changes: dict[str, Any] = {"status": decision.to_status, "updated_at": now, "response_deadline": None}
        outbox: list[dict[str, Any]] = []
        hop = report.get("hop", 0)
        if decision.forwards:
            hop += 1
            assigned = opd_ref(decision.target_opd)
            changes.update({"assigned_opd": assigned, "hop": hop})
        evidence_refs = [PhotoRef(photo_id=p, url=photo_url(base_url, p)) for p in evidence_ids]
        outbox.append(
            outbox_entry(
                ReportStatusChanged(
                    report_id=report["_id"],
                    version=version,
                    occurred_at=now,
                    from_status=decision.from_status,
                    to_status=decision.to_status,
                    actor_opd=decision.actor_opd,
                    note=decision.note,
                    category=report["category"],
                    assigned_opd=assigned["code"] if assigned else None,
                    target_opd=decision.target_opd.code if decision.forwards else None,
                    reason=decision.reason,
                    area=area,
                    submitted_at=report["submitted_at"],
                    evidence_photos=evidence_refs,
                )
            )
        )
        if decision.forwards:
            forwarded = self._forwarded(
                report, version, now, decision.actor_opd, decision.target_opd.code, decision.to_status, decision.note
            )
            outbox.append(outbox_entry(forwarded.model_copy(update={"hop": hop, "kind": decision.to_status})))
        history = history_entry(
            "transition",
            now,
            decision.to_status,
            actor=decision.actor_opd,
            note=decision.note,
            opd=assigned if decision.forwards else None,
            reason=decision.reason,
            photos=evidence_ids or None,
        )
        extra_push = {"evidence_photos": {"$each": [{"photo_id": p} for p in evidence_ids]}} if evidence_ids else None
        return self.store.update_versioned(report["_id"], report["version"], changes, history, outbox, extra_push)

    def _forwarded(
        self, report: dict[str, Any], version: int, now: Any, from_opd: str, target_opd: str, status: str, note: str
    ) -> ReportForwarded:
        base_url = setting(self.config, "PUBLIC_URL", "http://127.0.0.1:8000")
        return ReportForwarded(
            report_id=report["_id"],
            version=version,
            occurred_at=now,
            category=report["category"],
            description=report["description"],
            location=Location.model_validate(report["location"]),
            photos=[PhotoRef(photo_id=p["photo_id"], url=photo_url(base_url, p["photo_id"])) for p in report["photos"]],
            submitted_at=report["submitted_at"],
            area=AreaRef.model_validate(report["area"]) if report.get("area") else None,
            from_opd=from_opd,
            target_opd=target_opd,
            status=status,
            note=note,
            hop=report.get("hop", 0) + 1,
        )

    # ---- deadlines ------------------------------------------------------------------------------------------------

    @timer_from_config("DEADLINE_CHECK_SECONDS", 30)
    def escalate_overdue(self) -> None:
        """Move every report whose OPD missed its response deadline one step up the chain."""
        waiting = sorted(WAITING_STATUSES)
        for _ in range(500):  # bounded per tick; the next tick continues
            now = utcnow()
            report = self.store.claim_overdue(now, waiting)
            if report is None:
                return
            try:
                self._escalate(report, now)
            except VersionConflict:
                # the OPD answered in the meantime (or another change won): nothing to escalate now
                log.info("escalation skipped: report changed", extra={"report_id": report["_id"]})

    def _escalate(self, report: dict[str, Any], now: Any) -> None:
        directory = self.reference.directory
        missed = report["assigned_opd"]
        target = escalation_target(directory, missed["code"], report["category"])
        deadline = report["response_deadline"]
        missed_name = missed["name"]
        if target is None:
            note = note_overdue_at_top(missed_name)
            history = history_entry("overdue", now, report["status"], actor="sistem", note=note, deadline=deadline)
            changes = {"response_deadline": None, "escalation_exhausted": True, "updated_at": now}
            self.store.update_versioned(report["_id"], report["version"], changes, history, [])
            log.warning("report overdue at the top of the chain", extra={"report_id": report["_id"]})
            return
        version = report["version"] + 1
        ref = opd_ref(target)
        note = note_escalated(missed_name, target.name)
        forwarded = self._forwarded(report, version, now, missed["code"], target.code, report["status"], note)
        escalated = ReportEscalated(
            report_id=report["_id"],
            version=version,
            occurred_at=now,
            category=report["category"],
            status=report["status"],
            from_opd=missed["code"],
            to_opd=target.code,
            deadline=deadline,
            hop=forwarded.hop,
            area=forwarded.area,
            submitted_at=report["submitted_at"],
        )
        changes = {
            "assigned_opd": ref,
            "hop": forwarded.hop,
            "response_deadline": None,
            "escalation_exhausted": False,
            "updated_at": now,
        }
        history = history_entry(
            "escalated",
            now,
            report["status"],
            actor="sistem",
            note=note,
            opd=ref,
            from_opd=missed["code"],
            deadline=deadline,
        )
        outbox = [outbox_entry(escalated), outbox_entry(forwarded.model_copy(update={"kind": "escalation"}))]
        self.store.update_versioned(report["_id"], report["version"], changes, history, outbox)
        self.relay.publish_soon(report["_id"])
        missed_opd = directory.get(missed["code"])
        metrics.ESCALATIONS.labels(missed_opd.level if missed_opd else "unknown").inc()
        log.info(
            "report escalated", extra={"report_id": report["_id"], "from_opd": missed["code"], "to_opd": target.code}
        )

    # ---- routing results ----------------------------------------------------------------------------------------

    @work_consumer(
        work_queue(
            "intake.routing-results",
            [("routing", "report_routed"), ("routing", "report_unroutable")],
        )
    )
    def apply_routing(self, body: dict[str, Any]) -> None:
        try:
            event = parse_event(body)
        except ValueError as exc:
            raise PermanentFailure(str(exc)) from exc
        if not isinstance(event, ReportRouted | ReportUnroutable):
            raise PermanentFailure(f"intake.routing-results does not handle {event.event_type}")
        report = self.store.by_id(event.report_id)
        if report is None:
            raise LookupError(f"routing result for unknown report {event.report_id}")  # retried, then dead-lettered
        area = event.area.model_dump() if event.area else None
        if area is not None:
            area["kota_slug"] = slugify(area["kota"])
        if isinstance(event, ReportRouted):
            opd = event.opd.model_dump()
            changes = {
                "assigned_opd": opd,
                "area": area or report.get("area"),
                "assigned_at": event.occurred_at,
                "response_deadline": event.response_deadline if report["status"] in WAITING_STATUSES else None,
                "updated_at": utcnow(),
            }
            note = note_routed(event.opd.name)
            history = history_entry(
                "routed",
                event.occurred_at,
                report["status"],
                actor="routing",
                note=note,
                opd=opd,
                hop=event.hop,
                response_deadline=event.response_deadline,
            )
        else:
            triage = self.reference.directory.triage
            opd = opd_ref(triage)
            changes = {
                "assigned_opd": opd,
                "area": area or report.get("area"),
                "triage_reason": event.reason,
                "updated_at": utcnow(),
            }
            history = history_entry(
                "triage",
                event.occurred_at,
                report["status"],
                actor="routing",
                note=event.citizen_note,
                opd=opd,
                reason=event.reason,
            )
        applied = self.store.apply_once(event.report_id, event.event_id, {"hop": event.hop}, changes, history)
        log.info(
            "routing applied" if applied else "routing result ignored (duplicate or superseded)",
            extra={"report_id": event.report_id, "opd": opd["code"], "hop": event.hop},
        )

    def health_checks(self) -> dict[str, Any]:
        return {
            "mongo": self.store.ping(),
            "object_store": self.photos.healthy(),
            "broker": broker_reachable(self.config["AMQP_URI"]),
            "outbox_pending": self.store.pending_outbox_count() < 10_000,
        }
