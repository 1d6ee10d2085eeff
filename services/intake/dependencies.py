"""Intake's dependency providers: the report store with its outbox, the outbox relay, reference data."""

from __future__ import annotations

import logging
import time
from collections import deque
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import eventlet
from eventlet.queue import Empty, LightQueue
from nameko.extensions import DependencyProvider
from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from jaklapor.config import setting
from jaklapor.events import utcnow
from jaklapor.messaging import ConfirmedPublisher, PublishFailed
from jaklapor.mongo import MongoDatabase, database_for, ping
from jaklapor.reference import load_categories, load_directory
from services.intake import metrics
from services.intake.domain import WAITING_STATUSES
from services.intake.ratelimit import RateLimiter

log = logging.getLogger(__name__)

OUTBOX_LEASE = timedelta(seconds=30)
ESCALATION_LEASE = timedelta(seconds=60)


class VersionConflict(Exception):
    """The report changed between read and write; the caller re-reads and decides again."""


class ReportRepository:
    """Reports, their status history and their pending outgoing messages, one document per report.

    Pending messages live inside the report document (`outbox`), so storing a change and the event announcing it
    is a single atomic write; `outbox_due` tells the relay when to (re)try.
    """

    def __init__(self, db: Database) -> None:
        self.reports = db["reports"]
        self.counters = db["counters"]

    def ensure_indexes(self) -> None:
        self.reports.create_index("tracking_token_hash", unique=True)
        self.reports.create_index("idempotency_key_hash", unique=True, sparse=True)
        self.reports.create_index("outbox_due", sparse=True)
        self.reports.create_index("response_deadline", sparse=True)
        self.reports.create_index([("assigned_opd.code", ASCENDING), ("status", ASCENDING)])

    def ping(self) -> bool:
        return ping(self.reports.database)

    def next_sequence(self, day: str) -> int:
        counter = self.counters.find_one_and_update(
            {"_id": f"report-{day}"},
            {"$inc": {"seq": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int(counter["seq"])

    def insert(self, report: dict[str, Any]) -> None:
        self.reports.insert_one(report)

    def by_token_hash(self, token_hash: str) -> dict[str, Any] | None:
        return self.reports.find_one({"tracking_token_hash": token_hash}, {"outbox": 0})

    def by_idempotency_key(self, key_hash: str) -> dict[str, Any] | None:
        return self.reports.find_one({"idempotency_key_hash": key_hash}, {"outbox": 0})

    def by_id(self, report_id: str) -> dict[str, Any] | None:
        return self.reports.find_one({"_id": report_id}, {"outbox": 0})

    def update_versioned(
        self,
        report_id: str,
        version: int,
        changes: dict[str, Any],
        history: dict[str, Any],
        outbox: list[dict[str, Any]],
        extra_push: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Apply a change if the report is still at `version`; record history and queue messages atomically."""
        now = changes.get("updated_at") or utcnow()
        push: dict[str, Any] = {"history": history}
        if outbox:
            push["outbox"] = {"$each": outbox}
        push.update(extra_push or {})
        update: dict[str, Any] = {"$set": {**changes, "version": version + 1}, "$push": push}
        if outbox:
            update["$set"]["outbox_due"] = now
        updated = self.reports.find_one_and_update(
            {"_id": report_id, "version": version},
            update,
            projection={"outbox": 0},
            return_document=ReturnDocument.AFTER,
        )
        if updated is None:
            raise VersionConflict(report_id)
        return updated

    def apply_once(
        self,
        report_id: str,
        event_id: str,
        condition: dict[str, Any],
        changes: dict[str, Any],
        history: dict[str, Any],
    ) -> bool:
        """Apply a change caused by an event at most once (redeliveries are no-ops)."""
        result = self.reports.update_one(
            {"_id": report_id, "applied_events": {"$ne": event_id}, **condition},
            {
                "$set": changes,
                "$inc": {"version": 1},
                "$push": {"history": history, "applied_events": event_id},
            },
        )
        return result.modified_count == 1

    def claim_report_outbox(self, report_id: str, now: datetime) -> dict[str, Any] | None:
        """Lease one given report's pending messages (None if already published or leased elsewhere)."""
        return self._claim({"_id": report_id, "outbox_due": {"$lte": now}}, now, sort=None)

    def claim_outbox(self, now: datetime) -> dict[str, Any] | None:
        """Lease one report with pending messages, oldest first, so concurrent relays do not publish it twice."""
        return self._claim({"outbox_due": {"$lte": now}}, now, sort=[("outbox_due", ASCENDING)])

    def _claim(self, query: dict[str, Any], now: datetime, sort: Any) -> dict[str, Any] | None:
        # MongoDB keeps milliseconds: the lease is stored exactly as computed, so it can be matched again
        lease = (now + OUTBOX_LEASE).replace(microsecond=(now.microsecond // 1000) * 1000)
        report = self.reports.find_one_and_update(
            query,
            {"$set": {"outbox_due": lease}},
            projection={"outbox": 1},
            sort=sort,
            return_document=ReturnDocument.AFTER,
        )
        if report is not None:
            report["lease"] = lease
        return report

    def outbox_published(self, report_id: str, message_ids: list[str], lease: datetime | None = None) -> None:
        """Drop published messages. With the lease of the claim (the report's whole outbox was published and
        nothing was queued since, which would have moved `outbox_due`), one write clears it."""
        if lease is not None:
            done = self.reports.update_one(
                {"_id": report_id, "outbox_due": lease}, {"$set": {"outbox": []}, "$unset": {"outbox_due": ""}}
            )
            if done.matched_count == 1:
                return
        self.reports.update_one({"_id": report_id}, {"$pull": {"outbox": {"message_id": {"$in": message_ids}}}})
        cleared = self.reports.update_one({"_id": report_id, "outbox": {"$size": 0}}, {"$unset": {"outbox_due": ""}})
        if cleared.matched_count == 0:
            # a change queued more messages meanwhile: make them due now
            self.reports.update_one({"_id": report_id}, {"$set": {"outbox_due": utcnow()}})

    def outbox_retry_later(self, report_id: str, at: datetime) -> None:
        self.reports.update_one({"_id": report_id, "outbox_due": {"$exists": True}}, {"$set": {"outbox_due": at}})

    def claim_overdue(self, now: datetime, waiting: list[str]) -> dict[str, Any] | None:
        """Lease one report whose response deadline passed, so one checker (of several replicas) escalates it."""
        return self.reports.find_one_and_update(
            {"response_deadline": {"$lte": now}, "status": {"$in": waiting}},
            {"$set": {"response_deadline": now + ESCALATION_LEASE}},
            projection={"outbox": 0},
            sort=[("response_deadline", ASCENDING)],
            return_document=ReturnDocument.BEFORE,
        )

    def overdue_count(self, now: datetime, waiting: list[str]) -> int:
        return self.reports.count_documents(
            {
                "status": {"$in": waiting},
                "$or": [{"response_deadline": {"$lte": now}}, {"escalation_exhausted": True}],
            }
        )

    def pending_outbox_count(self) -> int:
        return self.reports.count_documents({"outbox_due": {"$exists": True}})


class ReportStore(MongoDatabase):
    database = "intake"

    def make_repository(self, db: Database) -> ReportRepository:
        return ReportRepository(db)

    def prepare(self, repository: ReportRepository) -> None:
        super().prepare(repository)
        waiting = sorted(WAITING_STATUSES)
        metrics.OVERDUE.set_function(lambda: repository.overdue_count(utcnow(), waiting))


def insert_new_report(repository: ReportRepository, report: dict[str, Any]) -> dict[str, Any] | None:
    """Insert; on an Idempotency-Key collision return the report that already answered that key."""
    try:
        repository.insert(report)
    except DuplicateKeyError:
        if report.get("idempotency_key_hash"):
            return repository.by_idempotency_key(report["idempotency_key_hash"])
        raise
    return None


class OutboxRelay(DependencyProvider):
    """Publishes every pending message of the report store until the broker confirms it.

    Requests store a change with its messages and hand the report id over (`publish_soon`); the relay's own green
    thread does the publishing, so HTTP answers never wait on the broker and a broker outage only delays delivery.
    Handed-over reports are claimed by id (cheap); a periodic scan of everything due catches the rest: retries after
    a broker failure and reports another replica stored but did not publish before it died.
    """

    def __init__(self, poll_interval: float = 1.0, max_backoff: float = 5.0, scan_interval: float = 2.0) -> None:
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.scan_interval = scan_interval

    def setup(self) -> None:
        config = self.container.config
        self.client, db = database_for(config, "intake")
        self.repository = ReportRepository(db)
        # several relays in parallel, each with its own connection: their store round trips and broker confirms
        # overlap, while each report's own messages still go out in order through one of them
        self.workers = max(1, int(setting(config, "OUTBOX_RELAY_WORKERS", 4)))
        self.publishers = [ConfirmedPublisher(config["AMQP_URI"]) for _ in range(self.workers)]
        self._wakeups: LightQueue = LightQueue(maxsize=self.workers)
        self._handed_over: deque[str] = deque()
        self._next_scan = 0.0
        self._running = False
        self._threads: list[Any] = []
        metrics.OUTBOX_PENDING.set_function(self.repository.pending_outbox_count)

    def start(self) -> None:
        self._running = True
        self._threads = [
            self.container.spawn_managed_thread(partial(self._run, publisher), identifier=f"outbox_relay_{n}")
            for n, publisher in enumerate(self.publishers)
        ]

    def stop(self) -> None:
        # let the current round finish: every message it confirmed is marked, the rest stays in the outbox
        self._running = False
        for _ in self._threads:
            self.wake()
        for thread in self._threads:
            thread.wait()
        for publisher in self.publishers:
            publisher.close()

    def kill(self) -> None:
        self._running = False
        for thread in self._threads:
            thread.kill()
        for publisher in self.publishers:
            publisher.close()

    def publish_soon(self, report_id: str) -> None:
        """A report's new messages are stored: publish them now (the periodic scan would find them later)."""
        self._handed_over.append(report_id)
        self.wake()

    def wake(self) -> None:
        try:
            self._wakeups.put_nowait(True)
        except eventlet.queue.Full:
            pass

    def get_dependency(self, worker_ctx: Any) -> OutboxRelay:
        return self

    def _run(self, publisher: ConfirmedPublisher) -> None:
        delay = self.poll_interval
        while self._running:
            try:
                ok = self.drain(publisher)
            except Exception:
                log.exception("outbox relay round failed")
                ok = False
            delay = self.poll_interval if ok else min(max(delay, 0.25) * 2, self.max_backoff)
            try:
                self._wakeups.get(timeout=delay)
            except Empty:
                pass

    def drain(self, publisher: ConfirmedPublisher, limit: int = 500) -> bool:
        """Publish pending messages of up to `limit` reports; False if the broker failed us (back off)."""
        for _ in range(limit):
            if not self._running:
                return True
            report = self._next_report(utcnow())
            if report is None:
                return True
            if not self._publish(report, publisher):
                return False
        return True

    def _next_report(self, now: datetime) -> dict[str, Any] | None:
        while self._handed_over:
            report = self.repository.claim_report_outbox(self._handed_over.popleft(), now)
            if report is not None:
                return report
        if time.monotonic() < self._next_scan:
            return None
        report = self.repository.claim_outbox(now)
        if report is None:
            self._next_scan = time.monotonic() + self.scan_interval
        elif self._handed_over:
            self.wake()  # more work than this relay: let a sibling start on it
        return report

    def _publish(self, report: dict[str, Any], publisher: ConfirmedPublisher) -> bool:
        """Publish a leased report's messages in order; False if the broker failed us (the rest is retried)."""
        if self._handed_over:
            self.wake()  # more reports waiting: a sibling relay takes the next while this one publishes
        published: list[str] = []
        try:
            for message in report.get("outbox", []):
                publisher.publish(
                    message["body"],
                    exchange=message["exchange"],
                    routing_key=message["routing_key"],
                    message_id=message["message_id"],
                )
                published.append(message["message_id"])
                metrics.OUTBOX_PUBLISHED.labels(message["exchange"] or message["routing_key"]).inc()
        except PublishFailed as exc:
            log.warning("outbox publish failed, will retry: %s", exc, extra={"report_id": report["_id"]})
            if published:
                self.repository.outbox_published(report["_id"], published)
            self.repository.outbox_retry_later(report["_id"], utcnow() + timedelta(seconds=1))
            self._next_scan = 0.0  # the retry is found by the scan once due
            return False
        self.repository.outbox_published(report["_id"], published, report["lease"])
        return True


class Reference(DependencyProvider):
    """Categories and the OPD directory, loaded once (and validated) when the service starts."""

    def setup(self) -> None:
        self.categories = load_categories()
        self.directory = load_directory()

    def get_dependency(self, worker_ctx: Any) -> Reference:
        return self


class SubmissionLimiter(DependencyProvider):
    """One token-bucket table per gateway process (see ratelimit.py), configured from RATE_LIMIT_*."""

    def setup(self) -> None:
        config = self.container.config
        self.limiter = RateLimiter(
            burst=int(setting(config, "RATE_LIMIT_BURST", 20)),
            per_minute=float(setting(config, "RATE_LIMIT_PER_MINUTE", 30)),
        )

    def get_dependency(self, worker_ctx: Any) -> RateLimiter:
        return self.limiter
