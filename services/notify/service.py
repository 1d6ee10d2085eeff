"""Notify: the only holder of reporter contacts; follows report events, streams them live to citizens, and tells
citizens (e-mail, or a push / SMS relay webhook) and agencies (signed webhooks, e-mail) what happened."""

from __future__ import annotations

import html
import logging
import re
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import eventlet
from eventlet.queue import Empty
from pydantic import ValidationError
from werkzeug.wrappers import Request, Response

from jaklapor.batches import RECORDING, batch_consumer
from jaklapor.contacts import CONTACTS_QUEUE, decrypt_contact, encrypt_contact
from jaklapor.events import ContactRegistered, Event, ReportStatusChanged, ReportSubmitted, parse_event
from jaklapor.live import LiveStreams
from jaklapor.messaging import (
    Outgoing,
    PermanentFailure,
    Publisher,
    PublishFailed,
    broadcast_consumer,
    broker_reachable,
    direct_work_queue,
    event_exchange,
    work_consumer,
    work_queue,
)
from jaklapor.operations import OperationsEndpoints, SecretGuard
from jaklapor.settings import Settings
from jaklapor.timers import timer_from_config
from jaklapor.tokens import token_hash_or_none
from jaklapor.vocabulary import FINAL_STATUSES, utcnow
from jaklapor.web import ApiError, api, json_response
from services.notify.dependencies import ACTIVE_STATES, Appended, NotifyStore, TimelineWrite, report_fields
from services.notify.dispatcher import Deliveries, DeliveryPlan
from services.notify.domain import (
    contact_purge_due,
    notifications_for,
    parse_contact_plaintext,
    parse_last_event_id,
    sse_frame,
    stream_cors_headers,
    timeline_entry,
    unsubscribe_token_hash,
)
from services.notify.metrics import CONTACTS_REMOVED, LIVE_STREAMS, TIMELINE_EVENTS
from services.notify.settings import NotifySettings

log = logging.getLogger(__name__)

NOTIFY_EVENTS = event_exchange("notify")
KEEPALIVE_SECONDS = 15.0
# a wake-up can be lost (broker hiccup); streams re-read their timeline at least this often anyway
SAFETY_POLL_SECONDS = 5.0
# how far below the newest entry sent a stream still looks for entries stored late (see _frames)
LATE_ENTRY_WINDOW = 8
# a final entry may be stored before an entry numbered earlier: the stream waits this many wake-ups (or safety polls)
# for such a gap to fill before it ends anyway (a numbered entry whose write failed leaves a gap for good)
FINAL_GAP_WAITS = 2
REGISTRATION_WAIT_SECONDS = 5.0
UNSUBSCRIBE_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


def parse_events(bodies: list[dict[str, Any]]) -> list[Event]:
    """The batch's events; a malformed one fails the batch, whose messages are then handled one by one (alone, the
    malformed one is dead-lettered at once)."""
    try:
        return [parse_event(body) for body in bodies]
    except ValueError as exc:
        raise PermanentFailure(str(exc)) from exc


def timeline_write(event: Event) -> TimelineWrite | None:
    """The event's timeline entry (None: citizens do not follow this event), with the report's fields a submission
    carries."""
    entry = timeline_entry(event)
    if entry is None:
        return None
    fields = None
    if isinstance(event, ReportSubmitted):
        fields = report_fields(event.tracking_token_hash, event.has_contact)
    return TimelineWrite(event.report_id, entry, fields)


def entries_of(writes: list[TimelineWrite | None], stored: list[Appended | None]) -> list[Appended | None]:
    """Each event's appended entry, from the results of the writes it had (None: no entry, or there already)."""
    results = iter(stored)
    return [next(results) if write is not None else None for write in writes]


def delivery_plans(
    events: list[Event], appended: list[Appended | None], opd_names: dict[str, str]
) -> list[DeliveryPlan]:
    """Each event's notifications; the timeline write told whether the reporter left a contact (no lookup for the
    reports without one); a redelivered event's is looked up."""
    return [
        DeliveryPlan(
            notifications_for(event, opd_names.get, "triage"),
            entry.has_contact if entry is not None else None,
            entry.supporter_contacts if entry is not None else None,
        )
        for event, entry in zip(events, appended, strict=True)
    ]


def wake_up(event: Event, seq: int) -> Outgoing:
    return Outgoing(
        {"report_id": event.report_id, "seq": seq}, NOTIFY_EVENTS.name, "timeline_updated", f"{event.event_id}:wake"
    )


class NotifyService(OperationsEndpoints):
    name = "notify"

    secrets = SecretGuard("CONTACT_KEY", used_with={"CITIZEN_WEBHOOK_SECRET": "CITIZEN_WEBHOOK_URL"})
    settings = Settings(NotifySettings)
    store = NotifyStore()
    live = LiveStreams()
    publisher = Publisher(declare=[NOTIFY_EVENTS])
    deliveries = Deliveries()

    @batch_consumer(work_queue("notify.events", [("intake", "#"), ("routing", "#")]), linger=RECORDING)
    def record_events(self, bodies: list[dict[str, Any]]) -> None:
        """A batch of report events (jaklapor/batches.py), each handled as if alone and in order: its timeline entry,
        its notifications, the report's final mark, the wake-up of its live streams; in a few writes per batch."""
        events = parse_events(bodies)
        writes = [timeline_write(event) for event in events]  # every submitted report has one
        # a submitted report is registered in the same write that numbers its first timeline entry
        stored = self.store.append_many([write for write in writes if write is not None])
        appended = entries_of(writes, stored)
        # idempotent on the event id (a delivery's id derives from it): safe on a redelivered event
        self.deliveries.enqueue_many(delivery_plans(events, appended, self.deliveries.opd_names))
        for event in events:
            if isinstance(event, ReportStatusChanged) and event.to_status in FINAL_STATUSES:
                self.store.mark_final(event.report_id, event.occurred_at)
            elif isinstance(event, ReportStatusChanged) and event.from_status in FINAL_STATUSES:
                # reopened by its citizen: not final any more (its contact is kept, its stream lives again)
                self.store.unmark_final(event.report_id)
        wakeups: list[Outgoing] = []
        for event, write, entry in zip(events, writes, appended, strict=True):
            if write is None or entry is None:
                continue  # no timeline entry, or a redelivered event whose entry is there already
            TIMELINE_EVENTS.labels(write.entry["kind"]).inc()
            if entry.watched:  # most reports: nobody follows them live, no wake-up to publish
                wakeups.append(wake_up(event, entry.seq))
        try:
            # every notify instance wakes its own streams of the report
            self.publisher.publish_many(wakeups)
        except PublishFailed as exc:  # streams still catch up through their safety poll
            for report_id in sorted({message.body["report_id"] for message in wakeups}):
                log.warning("could not wake live streams: %s", exc, extra={"report_id": report_id})

    @broadcast_consumer("notify.live", [("notify", "timeline_updated")])
    def wake_streams(self, body: dict[str, Any]) -> None:
        report_id = body.get("report_id") if isinstance(body, dict) else None
        if isinstance(report_id, str):
            self.live.wake(report_id)

    @work_consumer(direct_work_queue(CONTACTS_QUEUE))
    def register_contact(self, body: dict[str, Any]) -> None:
        try:
            message = ContactRegistered.model_validate(body)
        except ValidationError as exc:  # named without the values: the body carries a contact, encrypted as it is
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
            raise PermanentFailure(f"malformed contact_registered message: {problems}") from None
        report_id = message.report_id
        key = self.settings.contact_key
        plaintext = decrypt_contact(key, message.contact_ciphertext)
        bundle = parse_contact_plaintext(plaintext) if plaintext is not None else None
        if bundle is None:
            # intake and notify disagree on CONTACT_KEY: keep the message (dead letter) for after the fix
            raise PermanentFailure(f"contact of {report_id} cannot be decrypted with this CONTACT_KEY")
        # a random unsubscribe token per subscription: stored hashed (to find it) and encrypted (to put it in links)
        token = secrets.token_urlsafe(32)
        stored = self.store.store_contact(
            report_id,
            message.tracking_token_hash,
            message.contact_ciphertext,
            kind=bundle.kind,
            unsubscribe_hash=unsubscribe_token_hash(token),
            unsubscribe_ciphertext=encrypt_contact(key, token),
            supporter_hash=message.supporter_hash,
        )
        log.info(
            "contact registered for notifications" if stored else "contact hand-over already registered",
            extra={"report_id": report_id},
        )

    @api("GET", "/api/v1/unsubscribe/<token>")
    def unsubscribe(self, request: Request, token: str) -> Response:
        return self._unsubscribe(request, token)

    @api("POST", "/api/v1/unsubscribe/<token>")
    def unsubscribe_one_click(self, request: Request, token: str) -> Response:
        """RFC 8058 one-click unsubscribe: mail clients POST `List-Unsubscribe=One-Click` to the link."""
        return self._unsubscribe(request, token)

    def _unsubscribe(self, request: Request, token: str) -> Response:
        found = None
        if UNSUBSCRIBE_TOKEN_RE.fullmatch(token):
            found = self.store.contact_by_unsubscribe_hash(unsubscribe_token_hash(token))
        if found is None:
            return self._unsubscribe_answer(request, 404, "not_found", None)
        contact_id = found["_id"]
        report_id = found.get("report_id") or contact_id  # a supporter's subscription names its report
        if found.get("state") in ACTIVE_STATES and self.store.remove_contact(contact_id, "unsubscribed"):
            cancelled = self.store.cancel_citizen_deliveries(contact_id, "unsubscribed")
            CONTACTS_REMOVED.labels("unsubscribed").inc()
            log.info("contact removed: unsubscribed", extra={"report_id": report_id, "cancelled": cancelled})
            return self._unsubscribe_answer(request, 200, "unsubscribed", report_id)
        state = "unsubscribed" if found.get("state") in (*ACTIVE_STATES, "unsubscribed") else "removed"
        return self._unsubscribe_answer(request, 200, state, report_id)

    @staticmethod
    def _unsubscribe_answer(request: Request, status: int, outcome: str, report_id: str | None) -> Response:
        messages = {
            "unsubscribed": (
                "Anda tidak akan menerima pemberitahuan lagi untuk laporan ini. Kontak Anda telah dihapus.",
                "You will not receive further notifications about this report. Your contact was deleted.",
            ),
            "removed": (
                "Kontak Anda untuk laporan ini sudah dihapus; tidak ada pemberitahuan lagi.",
                "Your contact for this report was already deleted; no further notifications.",
            ),
            "not_found": ("Tautan ini tidak dikenal.", "This link is not known."),
        }
        text_id, text_en = messages[outcome]
        headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
            title = html.escape(f"JakLapor: {report_id}" if report_id else "JakLapor")
            page = (
                '<!doctype html><html lang="id"><head><meta charset="utf-8">'
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{title}</title></head><body><h1>{title}</h1>"
                f'<p>{html.escape(text_id)}</p><p lang="en">{html.escape(text_en)}</p></body></html>'
            )
            return Response(page, status=status, mimetype="text/html", headers=headers)
        payload: dict[str, Any] = {"status": outcome, "report_id": report_id, "message": text_id, "message_en": text_en}
        if status == 404:
            payload = {"error": {"code": "unsubscribe_link_not_found", "message": text_en}}
        return json_response(payload, status=status, headers=headers)

    @timer_from_config("CONTACT_PURGE_CHECK_SECONDS", 3600)
    def purge_contacts(self) -> None:
        """Delete each contact CONTACT_RETENTION_DAYS after its report reached selesai or ditolak."""
        retention_days = self.settings.contact_retention_days
        now = utcnow()
        for contact in self.store.contacts_final_before(now - timedelta(days=max(retention_days, 0.0))):
            report_id = contact["_id"]
            pending = self.store.open_citizen_deliveries(report_id)
            if not contact_purge_due(contact.get("final_at"), now, retention_days, pending):
                continue
            if self.store.remove_contact(report_id, "retention"):
                CONTACTS_REMOVED.labels("retention").inc()
                log.info(
                    "contact purged after the retention period",
                    extra={"report_id": report_id, "retention_days": retention_days},
                )

    @api("GET", "/api/v1/reports/<token>/stream")
    def stream(self, request: Request, token: str) -> Response:
        cors = stream_cors_headers(self.settings.citizen_app_origin)
        token_hash = token_hash_or_none(token)
        report_id = self._wait_for_registration(token_hash) if token_hash else None
        if report_id is None:
            error = ApiError(404, "report_not_found", "no report has this tracking token")
            error.headers.update(cors)
            raise error
        last_seq = parse_last_event_id(request.headers.get("Last-Event-ID") or request.args.get("last_event_id"))
        if self.store.is_final(report_id) and not self.store.entries_after(report_id, last_seq):
            # nothing follows a final status and the client has every entry: 204 tells an EventSource to stop
            # reconnecting (a 200 that ends would bring it back every few seconds)
            return Response(status=204, headers={"Cache-Control": "no-cache", **cors})
        # eventlet buffers small writes by default; every SSE frame must leave at once
        request.environ["eventlet.minimum_write_chunk_size"] = 0
        return Response(
            self._frames(report_id, last_seq),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **cors},
        )

    @api("OPTIONS", "/api/v1/reports/<token>/stream")
    def stream_preflight(self, request: Request, token: str) -> Response:
        """A browser's CORS preflight for a stream reopened with a Last-Event-ID header (EventSource sends it on
        reconnecting; some browsers ask first)."""
        headers = {
            **stream_cors_headers(self.settings.citizen_app_origin),
            "Access-Control-Allow-Methods": "GET",
            "Access-Control-Allow-Headers": "Last-Event-ID, Cache-Control",
            "Access-Control-Max-Age": "86400",
        }
        return Response(status=204, headers=headers)

    def _wait_for_registration(self, token_hash: str) -> str | None:
        # a stream opened right after submission may arrive before the submitted event does
        deadline = eventlet.hubs.get_hub().clock() + REGISTRATION_WAIT_SECONDS
        while True:
            report_id = self.store.report_for_token(token_hash)
            if report_id is not None or eventlet.hubs.get_hub().clock() > deadline:
                return report_id
            eventlet.sleep(0.1)

    def _frames(self, report_id: str, last_seq: int) -> Iterator[bytes]:
        store, hub = self.store, self.live
        # counted before the first read: an entry added after this wakes the stream, one added before is read
        store.stream_opened(report_id)
        wakeups = hub.subscribe(report_id)
        LIVE_STREAMS.inc()
        try:
            yield b"retry: 3000\n\n"
            # read before the first entries: a report is marked final only after its final entry is stored
            final = store.is_final(report_id)
            quiet = 0.0
            # an entry is numbered just before it is stored, so two events of one report handled at once can be
            # stored out of order: re-read a few numbers below the newest sent and send what was not sent yet
            floor, sent = last_seq, set()
            missing: set[int] = set()  # numbers below the newest sent (within the window) not stored yet
            gap_waits = 0
            while True:
                for seq, entry in store.entries_after(report_id, floor):
                    if seq in sent:
                        continue
                    sent.add(seq)
                    missing.discard(seq)
                    missing.update(range(last_seq + 1, seq))
                    last_seq = max(last_seq, seq)
                    quiet = 0.0
                    final = final or entry.get("status") in FINAL_STATUSES
                    yield sse_frame(seq, entry).encode("utf-8")
                if final and (not missing or gap_waits >= FINAL_GAP_WAITS):
                    return  # every stored entry is sent and nothing follows a final status: the stream ends
                if final:
                    gap_waits += 1
                floor = max(floor, last_seq - LATE_ENTRY_WINDOW)
                sent = {seq for seq in sent if seq > floor}
                missing = {seq for seq in missing if seq > floor}
                try:
                    wakeups.get(timeout=SAFETY_POLL_SECONDS)
                except Empty:
                    quiet += SAFETY_POLL_SECONDS
                    if quiet >= KEEPALIVE_SECONDS:
                        quiet = 0.0
                        yield b": keep-alive\n\n"
        finally:
            hub.unsubscribe(report_id, wakeups)
            store.stream_closed(report_id)
            LIVE_STREAMS.dec()

    def health_checks(self) -> dict[str, Any]:
        return {"mongo": self.store.ping(), "broker": broker_reachable(self.config["AMQP_URI"])}
