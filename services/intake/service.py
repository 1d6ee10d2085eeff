"""Intake: the HTTP gateway for citizens and OPDs; owns reports, their history and photos.

The entrypoints parse the request, load the report, ask the `Report` aggregate (report.py) for the change, store it
with its messages (dependencies.py) and answer; domain errors are answered through intake's table (http_errors.py).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, cast

from nameko.rpc import rpc
from pymongo.errors import PyMongoError
from werkzeug.wrappers import Request, Response

from jaklapor.batches import batch_consumer
from jaklapor.contacts import encrypt_contact
from jaklapor.events import Location, ReportRouted, ReportUnroutable
from jaklapor.messaging import broker_reachable, expect_event, work_queue
from jaklapor.operations import OperationsEndpoints, SecretGuard
from jaklapor.settings import Settings
from jaklapor.storage import PhotoNotFound, PhotoStorage, StorageUnavailable
from jaklapor.timers import timer_from_config
from jaklapor.tokens import hash_token, new_tracking_token, token_hash_or_none
from jaklapor.vocabulary import WAITING_STATUSES, utcnow
from jaklapor.web import ApiError, api, json_response, negotiated_body, read_fields
from services.intake import metrics
from services.intake.admission import admitted_api
from services.intake.citizen_api import CitizenFeedbackEndpoints
from services.intake.dependencies import (
    KeyGuessThrottle,
    OnceChange,
    OpdStreams,
    OutboxRelay,
    PhotoCleaner,
    Reference,
    ReportStore,
    SessionStore,
    SubmissionLimiter,
    VersionConflict,
    insert_new_report,
    stored_report,
)
from services.intake.domain import (
    MAX_PHOTOS_PER_REPORT,
    SubmissionRetry,
    format_report_number,
    is_report_number,
    public_view,
    receipt,
    report_day,
)
from services.intake.duplicates_api import DuplicateEndpoints
from services.intake.http_errors import INTAKE_ERRORS
from services.intake.incidents import IncidentEndpoints
from services.intake.nearby import MAX_CANDIDATES, bounding_box, nearby_summaries
from services.intake.opd_api import OpdEndpoints
from services.intake.open311_api import Open311Endpoints
from services.intake.open_data_api import OpenDataEndpoints
from services.intake.openapi import openapi_document, with_incidents
from services.intake.public_documents import (
    REFERENCE_MAX_AGE_SECONDS,
    CachedDocument,
    app_config,
    categories_document,
)
from services.intake.ratelimit import client_address
from services.intake.replay import page_size, replay_page
from services.intake.report import Report
from services.intake.schemas import NearbyQuery, SubmissionForm, parse_form, parse_query
from services.intake.settings import IntakeSettings
from services.intake.uploads import delete_photos, photo_key, sha256_of, store_new_photos
from services.intake.verifier_api import VerifierEndpoints
from services.intake.visibility import for_public, only_public
from services.intake.webapp import CitizenAppEndpoints, OpdWorkbenchEndpoints

log = logging.getLogger(__name__)

PHOTO_ID_RE = re.compile(r"^[A-Za-z0-9_-]{24}$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{16,128}$")


@dataclass(frozen=True)
class Accepted:
    """A submission's outcome: the stored report, its tracking token, and whether it is the answer to a retry."""

    report: dict[str, Any]
    token: str
    replayed: bool


def cached_document(request: Request, document: CachedDocument) -> Response:
    """A document built once, for any client and cache: gzip-compressed when the client takes it, 304 when the
    client's copy (If-None-Match) is current."""
    body, encoding = negotiated_body(request, document.body, document.gzipped)
    response = Response(
        body,
        content_type=document.content_type,
        headers={
            "Cache-Control": f"public, max-age={REFERENCE_MAX_AGE_SECONDS}",
            "Access-Control-Allow-Origin": "*",
            **encoding,
        },
    )
    # each encoding is its own representation, with its own (strong) validator
    response.set_etag(f"{document.etag}-gzip" if encoding.get("Content-Encoding") else document.etag)
    return response.make_conditional(request)


class IntakeService(
    CitizenAppEndpoints,
    OpdWorkbenchEndpoints,
    OperationsEndpoints,
    DuplicateEndpoints,
    OpdEndpoints,
    CitizenFeedbackEndpoints,
    Open311Endpoints,
    OpenDataEndpoints,
    VerifierEndpoints,
    IncidentEndpoints,
):
    name = "intake"
    # the outbox keeps accepting reports while the broker is away: a broker outage degrades, it does not stop intake
    required_checks = ("mongo", "object_store")
    domain_errors = INTAKE_ERRORS

    secrets = SecretGuard("OPD_KEY_SECRET", "TOKEN_SECRET", "CONTACT_KEY", "S3_SECRET_KEY")
    settings: IntakeSettings = Settings(IntakeSettings)
    store = ReportStore()
    photos = PhotoStorage()
    photo_cleaner = PhotoCleaner()
    relay = OutboxRelay()
    reference = Reference()
    limiter = SubmissionLimiter()
    # the OPD API (opd_api.py): workbench sessions, wrong keys slowed down, live work lists
    sessions = SessionStore()
    key_throttle = KeyGuessThrottle()
    opd_streams = OpdStreams()

    # ---- citizens -------------------------------------------------------------------------------------------

    @api("GET", "/openapi.json")
    def openapi(self, request: Request) -> Response:
        document = with_incidents(openapi_document(self.settings.public_url, list(self.reference.categories)))
        return json_response(document, headers={"Access-Control-Allow-Origin": "*"})

    @api("GET", "/api/v1/categories")
    def list_categories(self, request: Request) -> Response:
        return json_response(categories_document(self.reference.categories))

    @api("GET", "/api/v1/app-config")
    def app_config(self, request: Request) -> Response:
        """What a client checks before sending (the limits of a report, its photos and contact) and its map's
        settings."""
        settings = self.settings
        config = app_config(
            settings.map_tile_url,
            settings.map_tile_attribution,
            settings.max_request_bytes,
            stats_url=settings.stats_public_url,
        )
        return json_response(
            config, headers={"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"}
        )

    @api("GET", "/api/v1/areas")
    def list_areas(self, request: Request) -> Response:
        """kota -> kecamatan -> kelurahan, each kelurahan with its code and a point inside it (a kelurahan picker)."""
        return cached_document(request, self.reference.documents.areas)

    @api("GET", "/api/v1/areas/kelurahan.geojson")
    def kelurahan_geojson(self, request: Request) -> Response:
        """The kelurahan boundaries simplified for a browser's map (properties: code, kelurahan, kecamatan, kota)."""
        return cached_document(request, self.reference.documents.kelurahan_geojson)

    @admitted_api("POST", "/api/v1/reports")  # 503 + Retry-After at once when the backlog is over its bound
    def submit_report(self, request: Request) -> Response:
        try:
            self._check_rate(request)
            return self._submit(request)
        except Exception as exc:
            refusal = INTAKE_ERRORS.api_error(exc)
            if refusal is not None:
                metrics.SUBMISSIONS_REFUSED.labels(refusal.code).inc()
            raise

    def _check_rate(self, request: Request) -> None:
        client = client_address(
            request.remote_addr, request.headers.get("X-Forwarded-For"), self.settings.trusted_proxy_hops
        )
        verdict = self.limiter.take(client)
        if not verdict.allowed:
            error = ApiError(
                429, "rate_limited", f"too many reports from this client; retry in {verdict.retry_after} s"
            )
            error.headers["Retry-After"] = str(verdict.retry_after)
            raise error

    def _submit(self, request: Request) -> Response:
        idempotency_key = self._idempotency_key(request)
        fields, photo_parts = read_fields(request, "photo", max_files=MAX_PHOTOS_PER_REPORT)
        form: SubmissionForm = parse_form(SubmissionForm, fields)
        accepted = self._accept(form, photo_parts, idempotency_key)
        return self._receipt(
            accepted.report, accepted.token, {"Idempotent-Replayed": "true"} if accepted.replayed else {}
        )

    def _idempotency_key(self, request: Request) -> str | None:
        idempotency_key = request.headers.get("Idempotency-Key")
        if idempotency_key is not None and not IDEMPOTENCY_KEY_RE.match(idempotency_key):
            raise ApiError(
                400,
                "invalid_idempotency_key",
                "Idempotency-Key must be 16-128 printable ASCII characters (a random UUID is ideal)",
            )
        return idempotency_key

    def _accept(
        self,
        form: SubmissionForm,
        photo_parts: list[Any],
        idempotency_key: str | None,
        contact_name: str | None = None,
    ) -> Accepted:
        """One submission, whichever API it came through (the native one, Open311's): validated, stored with its
        photos and events, or the earlier answer to the same Idempotency-Key."""
        category = self._category(form.category)

        retry = None
        if idempotency_key is not None:
            digests = [sha256_of(part) for part in photo_parts]
            retry = SubmissionRetry.of(idempotency_key, self.settings.token_secret, form, category.code, digests)
            existing = self.store.by_idempotency_key(retry.key_hash)
            if existing is not None:
                return self._replay(existing, retry)

        # photos are what JAKI sends; channels without a camera (SMS relays, call centre) may omit them
        photos = store_new_photos(photo_parts, self.photo_cleaner, self.photos)
        now = utcnow()
        token = retry.token if retry else new_tracking_token()
        try:
            day = report_day(now)
            report_id = format_report_number(day, self.store.next_sequence(day))
            new = Report.submit(
                report_id=report_id,
                tracking_token_hash=hash_token(token),
                category=category.code,
                description=form.description,
                location=Location(lat=form.lat, lon=form.lon),
                photos=photos,
                contact_ciphertext=self._contact_ciphertext(form.contact, token, contact_name),
                now=now,
                photo_base_url=self.settings.public_url,
                retry=retry,
            )
            lease = self.relay.new_lease()  # the report is stored leased to our relay: it publishes without a claim
            stored = stored_report(new, lease)
            existing = insert_new_report(self.store, stored)
        except PyMongoError as exc:
            delete_photos(self.photos, photos)
            log.error("report store unavailable: %r", exc)
            raise ApiError(503, "store_unavailable", "reports cannot be stored right now; try again shortly") from None
        if existing is not None:  # a concurrent retry with the same Idempotency-Key stored it first
            delete_photos(self.photos, photos)
            return self._replay(existing, retry)
        self.relay.publish_leased(lease.claim_of(stored))
        metrics.SUBMISSIONS.labels(category.code).inc()
        log.info("report submitted", extra={"report_id": report_id, "category": category.code})
        return Accepted(new.document, token, replayed=False)

    def _contact_ciphertext(self, contact: str | None, token: str, name: str | None = None) -> str | None:
        """The citizen's contact for notify, encrypted with the tracking link notify puts in its messages (and the
        name an Open311 client sent with it: notify's alone to read, like the contact)."""
        if contact is None:
            return None
        fields = {"contact": contact, "tracking_url": self.settings.tracking_url(token)}
        if name:
            fields["name"] = name
        bundle = json.dumps(fields)
        return encrypt_contact(self.settings.contact_key, bundle)

    def _replay(self, report: dict[str, Any], retry: SubmissionRetry | None) -> Accepted:
        """The answer to a retried submission: the same report and token, unless the key was reused for another."""
        if retry is None or report.get("idempotency_fingerprint") != retry.fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different report; use a new key for a new report",
            )
        metrics.SUBMISSIONS_REPLAYED.inc()
        return Accepted(report, retry.token, replayed=True)

    def _receipt(self, report: dict[str, Any], token: str, headers: dict[str, str] | None = None) -> Response:
        tracking_url = self.settings.tracking_url(token)
        return json_response(
            receipt(report, token, tracking_url, self.settings.stream_url(token)),
            status=201,
            headers={"Location": tracking_url, **(headers or {})},
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

    @api("GET", "/api/v1/reports/nearby")
    def nearby_reports(self, request: Request) -> Response:
        """Open reports near a point, nearest first: what a citizen about to file may follow instead."""
        query: NearbyQuery = parse_query(NearbyQuery, request.args.lists())
        category = self._category(query.category).code if query.category is not None else None
        box = bounding_box(query.lat, query.lon, query.radius_m)
        # private categories' reports are left out, the others at their published point (services/intake/visibility.py)
        candidates = only_public(self.store.open_reports_in(box, category, MAX_CANDIDATES), self.reference.categories)
        found = nearby_summaries(candidates, query.lat, query.lon, query.radius_m, self.settings.public_url)
        return json_response({"radius_m": query.radius_m, "reports": found}, headers={"Cache-Control": "no-store"})

    @api("GET", "/api/v1/reports/public/<report_id>")
    def public_report(self, request: Request, report_id: str) -> Response:
        """One report and its public history by its number, for anyone following it (no tracking token needed)."""
        if not is_report_number(report_id):
            raise ApiError(
                400, "invalid_report_number", "a report number is written like JK-20261127-000042", field="report_id"
            )
        stored = self.store.by_id(report_id)
        # a private category's report is answered as one that does not exist: its number tells nothing
        report = for_public(stored, self.reference.categories) if stored is not None else None
        if report is None:
            raise ApiError(404, "report_not_found", f"no report has the number {report_id}")
        return json_response(public_view(report, self.settings.public_url), headers={"Cache-Control": "no-cache"})

    @api("GET", "/api/v1/reports/<token>")
    def track_report(self, request: Request, token: str) -> Response:
        token_hash = token_hash_or_none(token)
        report = self.store.by_token_hash(token_hash) if token_hash else None
        if report is None:
            raise ApiError(404, "report_not_found", "no report has this tracking token")
        return json_response(self.tracking_view(report, token), headers={"Cache-Control": "no-store"})

    @api("GET", "/api/v1/photos/<photo_id>")
    def get_photo(self, request: Request, photo_id: str) -> Response:
        if not PHOTO_ID_RE.match(photo_id):
            raise ApiError(404, "photo_not_found", "no such photo")
        try:
            stored = self.photos.get(photo_key(photo_id))
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

    # ---- deadlines ------------------------------------------------------------------------------------------------

    @timer_from_config("DEADLINE_CHECK_SECONDS", 30)
    def escalate_overdue(self) -> None:
        """Move every report whose OPD missed its response deadline one step up the chain."""
        waiting = sorted(WAITING_STATUSES)
        for _ in range(500):  # bounded per tick; the next tick continues
            now = utcnow()
            stored = self.store.claim_overdue(now, waiting)
            if stored is None:
                return
            try:
                self._escalate(Report(stored, self.settings.public_url), now)
            except VersionConflict:
                # the OPD answered in the meantime (or another change won): nothing to escalate now
                log.info("escalation skipped: report changed", extra={"report_id": stored["_id"]})

    def _escalate(self, report: Report, now: Any) -> None:
        directory = self.reference.directory
        target = report.escalation_target(directory)
        self.store.save(report, report.escalate(target, now))
        self._wake_lists([report.document["assigned_opd"]["code"], target.code if target is not None else ""])
        if target is None:
            log.warning("report overdue at the top of the chain", extra={"report_id": report.id})
            return
        self.relay.publish_soon(report.id)
        missed_code = report.document["assigned_opd"]["code"]
        missed_opd = directory.get(missed_code)
        metrics.ESCALATIONS.labels(missed_opd.level if missed_opd else "unknown").inc()
        log.info("report escalated", extra={"report_id": report.id, "from_opd": missed_code, "to_opd": target.code})

    # ---- routing results ----------------------------------------------------------------------------------------

    @batch_consumer(
        work_queue(
            "intake.routing-results",
            [("routing", "report_routed"), ("routing", "report_unroutable")],
        ),
        # no linger: an OPD that takes a report from its queue acts on it through intake at once, which must know
        # the report is routed to it by then (batches still form under a backlog)
    )
    def apply_routing_results(self, bodies: list[dict[str, Any]]) -> None:
        """Apply a batch of routing results: one read of their reports and one write of the results that change
        them. A report's results apply in their order, each to what the one before left: its second result goes in
        a second round (read and write) after the first one's."""
        events = [_routing_result(body) for body in bodies]  # a malformed body fails the batch, then only itself
        rounds: list[list[ReportRouted | ReportUnroutable]] = []
        seen: dict[str, int] = {}
        for event in events:
            n = seen[event.report_id] = seen.get(event.report_id, -1) + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(event)
        for round_events in rounds:
            self._apply_routing_round(round_events)

    def _apply_routing_round(self, events: list[ReportRouted | ReportUnroutable]) -> None:
        """Routing results of different reports, each applied once (redeliveries are no-ops)."""
        stored = self.store.by_ids(event.report_id for event in events)
        for event in events:
            if event.report_id not in stored:
                # alone (the batch consumer hands the batch's messages over one by one): retried, then dead-lettered
                raise LookupError(f"routing result for unknown report {event.report_id}")
        now, triage = utcnow(), self.reference.directory.triage
        results = []
        for event in events:
            document = stored[event.report_id]
            change = Report(document, self.settings.public_url).apply_routing(event, triage, now)
            # a result for an older hop (the report was forwarded meanwhile) or one already applied changes nothing,
            # now or later, so it is not written (the write's condition checks the same again, for a change meanwhile)
            current = event.event_id not in document.get("applied_events", ()) and document.get("hop") == event.hop
            results.append((event, change, current))
        applied = self.store.apply_each_once(
            [
                OnceChange(event.report_id, event.event_id, {"hop": event.hop}, change.fields, change.history)
                for event, change, current in results
                if current
            ]
        )
        self._wake_lists(
            change.fields["assigned_opd"]["code"] for event, change, _ in results if event.event_id in applied
        )
        for event, change, _ in results:
            log.info(
                "routing applied" if event.event_id in applied else "routing result ignored (duplicate or superseded)",
                extra={"report_id": event.report_id, "opd": change.fields["assigned_opd"]["code"], "hop": event.hop},
            )

    # ---- replay: other services rebuild from intake's events, never from its store ------------------------------

    @rpc
    def replay_events(self, after_report_id: str | None = None, limit: int = 100) -> dict[str, Any]:
        """A page of reports in id order after `after_report_id`, each with the events of its history
        (jaklapor.events.ReportEventsPage, as JSON)."""
        size = page_size(limit)
        page = replay_page(self.store.page_by_id(after_report_id, size), size, self.settings.public_url)
        return page.model_dump(mode="json")

    def health_checks(self) -> dict[str, Any]:
        return {
            "mongo": self.store.ping(),
            "object_store": self.photos.healthy(),
            "broker": broker_reachable(self.config["AMQP_URI"]),
            "outbox_pending": self.store.pending_outbox_count() < 10_000,
        }


def _routing_result(body: dict[str, Any]) -> ReportRouted | ReportUnroutable:
    return cast(
        ReportRouted | ReportUnroutable, expect_event(body, (ReportRouted, ReportUnroutable), "intake.routing-results")
    )
