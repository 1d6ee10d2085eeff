"""Notify: the only holder of reporter contacts; follows report events and streams them live to citizens."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import eventlet
from eventlet.queue import Empty
from werkzeug.wrappers import Request, Response

from jaklapor.contacts import CONTACTS_QUEUE
from jaklapor.events import ReportSubmitted, parse_event
from jaklapor.messaging import (
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
from jaklapor.operations import OperationsEndpoints
from jaklapor.tokens import token_hash_or_none
from jaklapor.web import ApiError, api
from services.notify.dependencies import LiveStreams, NotifyStore
from services.notify.domain import parse_last_event_id, sse_frame, timeline_entry
from services.notify.metrics import LIVE_STREAMS, TIMELINE_EVENTS

log = logging.getLogger(__name__)

NOTIFY_EVENTS = event_exchange("notify")
KEEPALIVE_SECONDS = 15.0
# a wake-up can be lost (broker hiccup); streams re-read their timeline at least this often anyway
SAFETY_POLL_SECONDS = 5.0
REGISTRATION_WAIT_SECONDS = 5.0


class NotifyService(OperationsEndpoints):
    name = "notify"

    store = NotifyStore()
    live = LiveStreams()
    publisher = Publisher(declare=[NOTIFY_EVENTS])

    @work_consumer(work_queue("notify.events", [("intake", "#"), ("routing", "#")]))
    def record_event(self, body: dict[str, Any]) -> None:
        try:
            event = parse_event(body)
        except ValueError as exc:
            raise PermanentFailure(str(exc)) from exc
        if isinstance(event, ReportSubmitted):
            self.store.register_report(event.report_id, event.tracking_token_hash)
        entry = timeline_entry(event)
        if entry is None:
            return
        seq = self.store.append(event.report_id, entry)
        if seq is None:
            return
        TIMELINE_EVENTS.labels(entry["kind"]).inc()
        try:
            # every notify instance wakes its own streams of this report
            self.publisher.publish(
                {"report_id": event.report_id, "seq": seq},
                exchange=NOTIFY_EVENTS,
                routing_key="timeline_updated",
                message_id=f"{event.event_id}:wake",
            )
        except PublishFailed as exc:  # streams still catch up through their safety poll
            log.warning("could not wake live streams: %s", exc, extra={"report_id": event.report_id})

    @broadcast_consumer("notify.live", [("notify", "timeline_updated")])
    def wake_streams(self, body: dict[str, Any]) -> None:
        report_id = body.get("report_id") if isinstance(body, dict) else None
        if isinstance(report_id, str):
            self.live.wake(report_id)

    @work_consumer(direct_work_queue(CONTACTS_QUEUE))
    def register_contact(self, body: dict[str, Any]) -> None:
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) for k in ("report_id", "tracking_token_hash", "contact_ciphertext")
        ):
            raise PermanentFailure("contact message without report_id, tracking_token_hash or contact_ciphertext")
        self.store.store_contact(body["report_id"], body["tracking_token_hash"], body["contact_ciphertext"])
        log.info("contact registered for notifications", extra={"report_id": body["report_id"]})

    @api("GET", "/api/v1/reports/<token>/stream")
    def stream(self, request: Request, token: str) -> Response:
        token_hash = token_hash_or_none(token)
        report_id = self._wait_for_registration(token_hash) if token_hash else None
        if report_id is None:
            raise ApiError(404, "report_not_found", "no report has this tracking token")
        last_seq = parse_last_event_id(request.headers.get("Last-Event-ID") or request.args.get("last_event_id"))
        # eventlet buffers small writes by default; every SSE frame must leave at once
        request.environ["eventlet.minimum_write_chunk_size"] = 0
        return Response(
            self._frames(report_id, last_seq),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

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
        wakeups = hub.subscribe(report_id)
        LIVE_STREAMS.inc()
        try:
            yield b"retry: 3000\n\n"
            quiet = 0.0
            while True:
                for seq, entry in store.entries_after(report_id, last_seq):
                    last_seq = seq
                    quiet = 0.0
                    yield sse_frame(seq, entry).encode("utf-8")
                try:
                    wakeups.get(timeout=SAFETY_POLL_SECONDS)
                except Empty:
                    quiet += SAFETY_POLL_SECONDS
                    if quiet >= KEEPALIVE_SECONDS:
                        quiet = 0.0
                        yield b": keep-alive\n\n"
        finally:
            hub.unsubscribe(report_id, wakeups)
            LIVE_STREAMS.dec()

    def health_checks(self) -> dict[str, Any]:
        return {"mongo": self.store.ping(), "broker": broker_reachable(self.config["AMQP_URI"])}
