"""Intake's dependency providers: the report store with its outbox, the outbox relay, reference data."""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

import eventlet
from eventlet import tpool
from eventlet.queue import Empty, LightQueue
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from pymongo import ASCENDING, ReturnDocument, UpdateMany, UpdateOne
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from jaklapor.config import LOCAL_MODE, local_data_dir, run_mode
from jaklapor.contacts import CONTACTS_QUEUE
from jaklapor.events import ContactRegistered, ReportSubmitted, new_event_id
from jaklapor.live import LiveHub, LiveStreams
from jaklapor.messaging import ConfirmedPublisher, Outgoing, PublishFailed, event_exchange
from jaklapor.mongo import GroupedInserts, MongoConnection, MongoDatabase, ping
from jaklapor.reference import load_areas, load_categories, load_directory, load_kelurahan_geojson
from jaklapor.vocabulary import DIKERJAKAN, VERIFICATION_PENDING, WAITING_STATUSES, utcnow
from services.intake import metrics
from services.intake.domain import PUBLIC_SUMMARY_FIELDS, WORK_ITEM_FIELDS
from services.intake.image_memory import keep_image_memory
from services.intake.nearby import OPEN_STATUSES, BoundingBox
from services.intake.numbering import NumberingMark, NumberingMarkError
from services.intake.photos import DEFAULT_POLICY, PhotoPolicy, SanitizedPhoto, sanitize_photo
from services.intake.public_documents import reference_documents
from services.intake.ratelimit import FailureThrottle, RateLimiter
from services.intake.report import Change, Message, NewReport, Report
from services.intake.settings import IntakeSettings
from services.intake.worklist import HELD_STATUSES, MAX_HELD, SORT_FIELDS

log = logging.getLogger(__name__)

OUTBOX_LEASE = timedelta(seconds=30)
# A new report is stored already leased to the relay of the process that accepted it, so the relay publishes it
# without a claim and a read of the store. That lease is short, because a process killed before publishing leaves
# its last reports waiting for it to run out; the relay publishes a report under it only while at least
# `PRECLAIM_MARGIN` of it is left (a publish takes milliseconds), else the periodic scan takes the report once the
# lease has run out.
PRECLAIM_LEASE = timedelta(seconds=10)
PRECLAIM_MARGIN = timedelta(seconds=5)
ESCALATION_LEASE = timedelta(seconds=60)
# report numbers reserved per store write (and, in the local run, per fsync'd mark on disk: 7.6 % of intake's CPU at
# 20); a process that stops skips the rest of its block, so the day's numbers have gaps of up to this many
SEQUENCE_BLOCK = 100


class OutboxLease(NamedTuple):
    """One relay's hold on reports' pending messages: no other relay publishes them before `until`."""

    claim: str
    until: datetime

    @classmethod
    def taken_at(cls, now: datetime, length: timedelta = OUTBOX_LEASE) -> OutboxLease:
        # MongoDB keeps milliseconds: the lease is stored exactly as computed, so it can be matched again
        until = now + length
        return cls(uuid.uuid4().hex, until.replace(microsecond=(until.microsecond // 1000) * 1000))

    def claim_of(self, report: dict[str, Any]) -> dict[str, Any]:
        """A report's pending messages (`_id` and `outbox`) as held under this lease: what the relay publishes."""
        return {"_id": report["_id"], "outbox": report.get("outbox", []), "lease": self.until, "claim": self.claim}


class VersionConflict(Exception):
    """The report changed between read and write; the caller re-reads and decides again."""


#: a merged report follows its primary: it is in no work list, its OPD counts it no more
NOT_MERGED: dict[str, Any] = {"merged_into": None}


class OnceChange(NamedTuple):
    """A change caused by one event, applied at most once and only while the report matches `condition`."""

    report_id: str
    event_id: str
    condition: dict[str, Any]
    changes: dict[str, Any]
    history: dict[str, Any]

    def update(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The filter and update that apply it: the event is recorded in `applied_events` with the change."""
        return (
            {"_id": self.report_id, "applied_events": {"$ne": self.event_id}, **self.condition},
            {
                "$set": self.changes,
                "$inc": {"version": 1},
                "$push": {"history": self.history, "applied_events": self.event_id},
            },
        )


class ReportRepository:
    """Reports, their status history and their pending outgoing messages, one document per report.

    Pending messages live inside the report document (`outbox`), so storing a change and the event announcing it
    is a single atomic write; `outbox_due` tells the relay when to (re)try.
    """

    def __init__(self, db: Database, numbering_mark: NumberingMark | None = None) -> None:
        self.reports = db["reports"]
        # new reports of concurrent requests are written together: at the max-rate benchmark one insert per report
        # was 1.0 of the store's 1.4 commands per report, each with the store's lock and journal write of its own
        self._new_reports = GroupedInserts(self.reports)
        self.counters = db["counters"]
        # where the day counters must also be kept when the store itself does not outlive the process
        self.numbering_mark = numbering_mark
        self._sequence_blocks: dict[str, Iterator[int]] = {}
        self._reserving = Semaphore(1)

    def ensure_indexes(self) -> None:
        self.reports.create_index("tracking_token_hash", unique=True)
        self.reports.create_index("idempotency_key_hash", unique=True, sparse=True)
        self.reports.create_index("outbox_due", sparse=True)
        self.reports.create_index("response_deadline", sparse=True)
        self.reports.create_index([("assigned_opd.code", ASCENDING), ("status", ASCENDING)])
        # nearby open reports (services/intake/nearby.py): open statuses and the category by equality, then the
        # box's latitude band as a range; the category is optional, so it follows the status it is always given with
        self.reports.create_index([("status", ASCENDING), ("category", ASCENDING), ("location.lat", ASCENDING)])
        # Open311's request list (services/intake/public_reports.py): a date range, the newest first
        self.reports.create_index("submitted_at")
        # the reports merged into a primary, found at each of its status changes (services/intake/duplicates.py)
        self.reports.create_index("merged_into", sparse=True)
        # the verifier's queue (services/intake/verifier_api.py): only reports that ever had a completion verified
        self.reports.create_index([("verification.state", ASCENDING), ("verification.submitted_at", ASCENDING)])
        # the members of an incident (services/intake/incidents.py)
        self.reports.create_index("incident_id", sparse=True)

    def ping(self) -> bool:
        return ping(self.reports.database)

    def next_sequence(self, day: str) -> int:
        """The next report number of the day: unique for the deployment, and increasing within a process.

        Numbers are reserved in blocks, one write per block instead of one per report; the rest of a block is
        skipped when the process stops, so the day's numbers can have gaps (like any CRM ticket number). One green
        thread reserves while the others that ran out wait for its block: when each reserved its own, the max-rate
        benchmark reserved a block per 25 reports, so three numbers in four were skipped."""
        number = self._next_of_block(day)
        if number is None:
            with self._reserving:
                number = self._next_of_block(day)  # the block another green thread reserved meanwhile
                if number is None:
                    end = self._reserve_block(day)
                    numbers = iter(range(end - SEQUENCE_BLOCK + 1, end + 1))
                    self._sequence_blocks = {day: numbers}  # a new day forgets the old one's block
                    number = next(numbers)
        return number

    def _next_of_block(self, day: str) -> int | None:
        numbers = self._sequence_blocks.get(day)
        return next(numbers, None) if numbers is not None else None

    def _reserve_block(self, day: str) -> int:
        """Reserve the day's next block in the store; returns its last number."""
        counter_id = f"report-{day}"
        if self.numbering_mark is None:
            return self._increment(counter_id)
        with self.numbering_mark.locked() as marks:
            # a store that started empty (a restart of the in-process one) resumes above what was handed out
            if marks.get(day):
                self.counters.update_one({"_id": counter_id}, {"$max": {"seq": marks[day]}}, upsert=True)
            end = self._increment(counter_id)
            self.numbering_mark.save(marks, day, end)  # on disk before any number of the block is handed out
        return end

    def _increment(self, counter_id: str) -> int:
        counter = self.counters.find_one_and_update(
            {"_id": counter_id}, {"$inc": {"seq": SEQUENCE_BLOCK}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return int(counter["seq"])

    def insert(self, report: dict[str, Any]) -> None:
        """Store a new report (DuplicateKeyError: its tracking token or Idempotency-Key is taken)."""
        self._new_reports.insert_one(report)

    def by_token_hash(self, token_hash: str) -> dict[str, Any] | None:
        return self.reports.find_one({"tracking_token_hash": token_hash}, {"outbox": 0})

    def by_idempotency_key(self, key_hash: str) -> dict[str, Any] | None:
        return self.reports.find_one({"idempotency_key_hash": key_hash}, {"outbox": 0})

    def by_id(self, report_id: str) -> dict[str, Any] | None:
        return self.reports.find_one({"_id": report_id}, {"outbox": 0})

    def by_ids(self, report_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored reports among `report_ids` (one read), by id; an unknown id is left out."""
        wanted = list(dict.fromkeys(report_ids))
        return {report["_id"]: report for report in self.reports.find({"_id": {"$in": wanted}}, {"outbox": 0})}

    def open_reports_in(self, box: BoundingBox, category: str | None, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` open reports (of `category`, if given) located inside `box`: only their public fields."""
        query: dict[str, Any] = {
            "status": {"$in": list(OPEN_STATUSES)},
            "location.lat": {"$gte": box.min_lat, "$lte": box.max_lat},
            "location.lon": {"$gte": box.min_lon, "$lte": box.max_lon},
            # a merged report is part of its primary's problem: the primary is the one to follow
            "merged_into": None,
        }
        if category is not None:
            query["category"] = category
        return list(self.reports.find(query, dict.fromkeys(PUBLIC_SUMMARY_FIELDS, 1)).limit(limit))

    # ---- an OPD's work list (services/intake/worklist.py); the index (assigned_opd.code, status) serves each --------

    def held_sort_rows(
        self, opd_code: str, statuses: tuple[str, ...], category: str | None, kelurahan_codes: list[str] | None
    ) -> list[dict[str, Any]]:
        """The sort fields of the reports `opd_code` holds in `statuses` (of `category`, in those kelurahan)."""
        query: dict[str, Any] = {"assigned_opd.code": opd_code, "status": {"$in": list(statuses)}, **NOT_MERGED}
        if category is not None:
            query["category"] = category
        if kelurahan_codes is not None:
            query["area.code"] = {"$in": kelurahan_codes}
        return list(self.reports.find(query, dict.fromkeys(SORT_FIELDS, 1)).limit(MAX_HELD))

    def work_items(self, report_ids: list[str]) -> list[dict[str, Any]]:
        """The reports of a page, with what a work list shows of them (of the history, each entry's kind)."""
        return list(self.reports.find({"_id": {"$in": report_ids}}, dict.fromkeys(WORK_ITEM_FIELDS, 1)))

    def held_versions(self, opd_code: str) -> dict[str, int]:
        """{report id: version} of every report `opd_code` still works on: what its live stream compares."""
        cursor = self.reports.find(
            {"assigned_opd.code": opd_code, "status": {"$in": list(HELD_STATUSES)}, **NOT_MERGED}, {"version": 1}
        ).limit(MAX_HELD)
        return {report["_id"]: report["version"] for report in cursor}

    def statuses_of(self, report_ids: list[str]) -> dict[str, str]:
        return {r["_id"]: r["status"] for r in self.reports.find({"_id": {"$in": report_ids}}, {"status": 1})}

    def counts_by_status(self, opd_code: str) -> dict[str, int]:
        """How many reports assigned to `opd_code` are in each status."""
        grouped = self.reports.aggregate(
            [
                {"$match": {"assigned_opd.code": opd_code, **NOT_MERGED}},
                {"$group": {"_id": "$status", "count": {"$sum": 1}}},
            ]
        )
        return {row["_id"]: row["count"] for row in grouped}

    def overdue_count_of(self, opd_code: str) -> int:
        return self.reports.count_documents(
            {"assigned_opd.code": opd_code, "status": {"$in": sorted(WAITING_STATUSES)}, "escalation_exhausted": True}
        )

    # ---- duplicates (services/intake/duplicates.py) ------------------------------------------------------------

    def merged_into(self, primary_id: str, limit: int = MAX_HELD) -> list[dict[str, Any]]:
        """The reports merged into `primary_id` (without their outbox), oldest number first."""
        cursor = self.reports.find({"merged_into": primary_id}, {"outbox": 0}).sort("_id", ASCENDING)
        return list(cursor.limit(limit))

    def has_merged_reports(self, primary_id: str) -> bool:
        return self.reports.find_one({"merged_into": primary_id}, {"_id": 1}) is not None

    def add_supporter(self, report_id: str, supporter: str, messages: list[Message], open_statuses: list[str]) -> bool:
        """Count one supporter of an open report once, with the messages its support sends (a supporter's contact
        for notify), in one write; False if this supporter was counted already or the report is not open (any
        more). The report's version does not move: support is no change of the report's course."""
        update: dict[str, Any] = {"$push": {"supporter_hashes": supporter}, "$inc": {"supporters": 1}}
        if messages:
            update["$push"]["outbox"] = {"$each": [outbox_entry(message) for message in messages]}
            update["$set"] = {"outbox_due": utcnow()}
        result = self.reports.update_one(
            {"_id": report_id, "supporter_hashes": {"$ne": supporter}, "status": {"$in": open_statuses}}, update
        )
        return result.modified_count == 1

    def pending_verification(self, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` reports of every OPD whose completion waits for the verifier, the longest waiting first."""
        query = {"status": DIKERJAKAN, "verification.state": VERIFICATION_PENDING}
        cursor = self.reports.find(query, {"outbox": 0}).sort("verification.submitted_at", ASCENDING).limit(limit)
        return list(cursor)

    def page_by_id(self, after_report_id: str | None, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` reports in id order, after `after_report_id` (from the first when None)."""
        query = {"_id": {"$gt": after_report_id}} if after_report_id is not None else {}
        return list(self.reports.find(query, {"outbox": 0}).sort("_id", ASCENDING).limit(limit))

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

    def save(self, report: Report, change: Change) -> dict[str, Any]:
        """Store a change of `report` (as read) and queue its messages; VersionConflict if the report changed since."""
        outbox = [outbox_entry(message) for message in change.messages]
        return self.update_versioned(report.id, report.version, change.fields, change.history, outbox, change.pushes)

    def apply_once(
        self,
        report_id: str,
        event_id: str,
        condition: dict[str, Any],
        changes: dict[str, Any],
        history: dict[str, Any],
    ) -> bool:
        """Apply a change caused by an event at most once (redeliveries are no-ops)."""
        result = self.reports.update_one(*OnceChange(report_id, event_id, condition, changes, history).update())
        return result.modified_count == 1

    def apply_each_once(self, changes: Sequence[OnceChange]) -> set[str]:
        """`apply_once` for several events, each of another report, in one unordered write: the ids of the events
        applied.

        The write only says how many changed. All of them is the rule; fewer means some report changed between the
        caller's read and this write (another worker applied the same event, or the report moved to another hop):
        one more read tells which events the reports hold now. An event another worker applied in that moment is
        then counted as applied here too (both log it and wake its OPD's lists: harmless)."""
        if not changes:
            return set()
        if len({change.report_id for change in changes}) != len(changes):
            raise ValueError("apply_each_once takes one change per report (apply a report's next one after it)")
        result = self.reports.bulk_write(
            [UpdateOne(*change.update()) for change in changes],
            ordered=False,
        )
        if result.modified_count == len(changes):
            return {change.event_id for change in changes}
        held = {
            report["_id"]: report.get("applied_events") or []
            for report in self.reports.find({"_id": {"$in": [c.report_id for c in changes]}}, {"applied_events": 1})
        }
        return {c.event_id for c in changes if c.event_id in held.get(c.report_id, [])}

    def claim_outboxes(self, report_ids: list[str], now: datetime) -> list[dict[str, Any]]:
        """Lease the pending messages of those reports that are due, so concurrent relays do not publish them twice.

        One write leases them all under a claim of our own; reports already published or leased elsewhere are left
        out. The claims come back in the order of `report_ids`."""
        lease = OutboxLease.taken_at(now)
        leased = self.reports.update_many(
            {"_id": {"$in": report_ids}, "outbox_due": {"$lte": now}},
            {"$set": {"outbox_due": lease.until, "outbox_claim": lease.claim}},
        )
        if leased.modified_count == 0:
            return []
        claimed = {
            report["_id"]: lease.claim_of(report)
            for report in self.reports.find({"_id": {"$in": report_ids}, "outbox_claim": lease.claim}, {"outbox": 1})
        }
        return [claimed[report_id] for report_id in dict.fromkeys(report_ids) if report_id in claimed]

    def claim_due_outboxes(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Lease up to `limit` reports with messages due, oldest first (retries, and reports a dead relay held)."""
        due = self.reports.find({"outbox_due": {"$lte": now}}, {"_id": 1}).sort("outbox_due", ASCENDING).limit(limit)
        report_ids = [report["_id"] for report in due]
        return self.claim_outboxes(report_ids, now) if report_ids else []

    def outboxes_published(self, claims: list[dict[str, Any]]) -> None:
        """Clear the outboxes of claims whose every message the broker confirmed: one write for all of them.

        A report that queued more messages since its claim (which moved `outbox_due`) keeps those: only the
        published ones are dropped from it."""
        if not claims:
            return
        report_ids = [claim["_id"] for claim in claims]
        held: dict[tuple[str, datetime], list[str]] = {}  # the reports of each lease (one, or one per new report)
        for claim in claims:
            held.setdefault((claim["claim"], claim["lease"]), []).append(claim["_id"])
        clear = {"$set": {"outbox": []}, "$unset": {"outbox_due": "", "outbox_claim": ""}}
        cleared = self.reports.bulk_write(
            [
                UpdateMany({"_id": {"$in": ids}, "outbox_claim": claim, "outbox_due": lease}, clear)
                for (claim, lease), ids in held.items()
            ],
            ordered=False,
        )
        if cleared.matched_count == len(report_ids):
            return
        # the rest changed meanwhile, or another relay leased them after our lease ran out
        pending = self.reports.find({"_id": {"$in": report_ids}, "outbox_due": {"$exists": True}}, {"_id": 1})
        not_cleared = {report["_id"] for report in pending}
        for report in claims:
            if report["_id"] in not_cleared:
                self.outbox_published(report["_id"], [message["message_id"] for message in report["outbox"]])

    def release_leases(self, claims: list[dict[str, Any]]) -> None:
        """Make the reports still held under these claims due now (another relay may publish them at once)."""
        self.reports.update_many(
            {"_id": {"$in": [claim["_id"] for claim in claims]}, "outbox_claim": {"$in": [c["claim"] for c in claims]}},
            {"$set": {"outbox_due": utcnow()}},
        )

    def outbox_published(self, report_id: str, message_ids: list[str]) -> None:
        """Drop some published messages of a report; clear its due date if none is left, else make the rest due."""
        self.reports.update_one({"_id": report_id}, {"$pull": {"outbox": {"message_id": {"$in": message_ids}}}})
        cleared = self.reports.update_one(
            {"_id": report_id, "outbox": {"$size": 0}}, {"$unset": {"outbox_due": "", "outbox_claim": ""}}
        )
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

    # ---- incidents (services/intake/incidents.py) -----------------------------------------------------------------

    def tag_incident(self, report_id: str, incident_id: str, opd: dict[str, Any], at: datetime) -> bool:
        """Record that the report is a member of `incident_id` (routing's report_joined_incident), by whom and when
        (intake's replay gives it back); idempotent. False for a report not stored (yet)."""
        joined = {"opd": opd, "at": at}
        found = self.reports.update_one(
            {"_id": report_id}, {"$set": {"incident_id": incident_id, "incident_joined": joined}}
        )
        return found.matched_count == 1

    def incident_members(self, incident_id: str, opd_code: str) -> list[dict[str, Any]]:
        """The members of `incident_id` that `opd_code` holds (in any status), as work items show them."""
        fields = {**dict.fromkeys(WORK_ITEM_FIELDS, 1), "incident_id": 1, "assigned_at": 1, "assigned_opd": 1}
        return list(self.reports.find({"incident_id": incident_id, "assigned_opd.code": opd_code}, fields))

    def incident_rows(self, opd_code: str) -> list[dict[str, Any]]:
        """Every report of an incident that `opd_code` holds: what the list of its incidents is summed from."""
        fields = {"incident_id": 1, "status": 1, "category": 1, "area": 1, "assigned_at": 1, "submitted_at": 1}
        query = {"assigned_opd.code": opd_code, "incident_id": {"$exists": True, "$ne": None}}
        return list(self.reports.find(query, fields).limit(MAX_HELD))


class ReportStore(MongoDatabase):
    database = "intake"

    def make_repository(self, db: Database) -> ReportRepository:
        if run_mode(self.container.config) != LOCAL_MODE:
            return ReportRepository(db)
        mark = NumberingMark(local_data_dir(self.container.config))
        try:
            mark.check()
        except NumberingMarkError as exc:
            log.critical("%s; intake does not start, so that no report number is handed out twice", exc)
            raise
        return ReportRepository(db, mark)

    def prepare(self, repository: ReportRepository) -> None:
        super().prepare(repository)
        waiting = sorted(WAITING_STATUSES)
        metrics.OVERDUE.set_function(lambda: repository.overdue_count(utcnow(), waiting))


class SessionRepository:
    """Workbench sessions (services/intake/sessions.py), one document per session keyed by its token's SHA-256; a
    TTL index deletes each once it expired (MongoDB's TTL monitor runs every minute: reads check the expiry too)."""

    def __init__(self, db: Database) -> None:
        self.sessions = db["sessions"]

    def ensure_indexes(self) -> None:
        self.sessions.create_index("expires_at", expireAfterSeconds=0)

    def insert(self, session: dict[str, Any]) -> None:
        self.sessions.insert_one(session)

    def by_id(self, session_id: str) -> dict[str, Any] | None:
        return self.sessions.find_one({"_id": session_id})

    def touch(self, session_id: str, fields: dict[str, Any]) -> None:
        self.sessions.update_one({"_id": session_id}, {"$set": fields})

    def delete(self, session_id: str) -> bool:
        return self.sessions.delete_one({"_id": session_id}).deleted_count == 1


class SessionStore(MongoDatabase):
    database = "intake"

    def make_repository(self, db: Database) -> SessionRepository:
        return SessionRepository(db)


def outbox_entry(message: Message) -> dict[str, Any]:
    """A message as the outbox keeps it until the broker confirmed it: events go to their service's exchange, the
    contact hand-over straight to notify's queue."""
    if isinstance(message, ContactRegistered):
        return {
            "message_id": new_event_id(),
            "exchange": "",
            "routing_key": CONTACTS_QUEUE,
            "body": message.to_message(),
        }
    return {
        "message_id": message.event_id,
        "exchange": event_exchange(message.source).name,
        "routing_key": message.type_name,
        "body": message.to_message(),
    }


def stored_report(new: NewReport, lease: OutboxLease) -> dict[str, Any]:
    """A submitted report as stored: with its messages, already leased to the relay that will publish them."""
    return {
        **new.document,
        "outbox": [outbox_entry(message) for message in new.messages],
        "outbox_due": lease.until,
        "outbox_claim": lease.claim,
    }


def insert_new_report(repository: ReportRepository, report: dict[str, Any]) -> dict[str, Any] | None:
    """Insert a submitted report (`stored_report`); on an Idempotency-Key collision return the report that already
    answered that key."""
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

    connection = MongoConnection()

    def __init__(self, poll_interval: float = 1.0, max_backoff: float = 5.0, scan_interval: float = 2.0) -> None:
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.scan_interval = scan_interval

    def setup(self) -> None:
        settings = IntakeSettings.of_container(self.container)
        amqp_uri = self.container.config["AMQP_URI"]
        self.configure(
            # the container's one MongoDB client (closed by MongoConnection when the container stops)
            ReportRepository(self.connection.database(ReportStore.database)),
            # several relays in parallel, each with its own connection: their store round trips and broker confirms
            # overlap, while each report's own messages still go out in order through one of them
            [ConfirmedPublisher(amqp_uri) for _ in range(max(1, settings.outbox_relay_workers))],
            # reports claimed, published and cleared together: a few round trips per batch instead of per report
            batch_size=settings.outbox_relay_batch,
            linger=settings.outbox_relay_linger,
        )
        metrics.OUTBOX_PENDING.set_function(self.repository.pending_outbox_count)

    def configure(self, repository: ReportRepository, publishers: list[Any], batch_size: int, linger: float) -> None:
        """The relay's store, its publishers (one relay thread each) and its batches, before it starts."""
        self.repository = repository
        self.publishers = publishers
        self.workers = len(publishers)
        self.batch_size = max(1, batch_size)
        self.linger = max(0.0, linger)
        self._wakeups: LightQueue = LightQueue(maxsize=self.workers)
        self._handed_over: deque[str | dict[str, Any]] = deque()  # report ids, or new reports' leased claims
        self._handed_over_at: deque[float] = deque()  # when each was handed over (monotonic seconds)
        self._last_handed_over: float | None = None
        self._last_gap = float("inf")  # seconds between the last two hand-overs: is company likely within `linger`?
        self._next_scan = 0.0
        self._running = False
        self._threads: list[Any] = []

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
        self._release_leases()

    def _release_leases(self) -> None:
        """New reports handed over but not published are due now, not when their lease runs out: the next relay
        (another replica, or this service started again) publishes them at once. If the store is away, they wait
        for their lease."""
        leased = [entry for entry in self._handed_over if isinstance(entry, dict)]
        if not leased:
            return
        try:
            self.repository.release_leases(leased)
        except Exception as exc:
            log.warning("outbox relay: %d new reports wait for their lease to run out: %r", len(leased), exc)

    def kill(self) -> None:
        self._running = False
        for thread in self._threads:
            thread.kill()
        for publisher in self.publishers:
            publisher.close()

    def publish_soon(self, report_id: str) -> None:
        """A report's new messages are stored: publish them now (the periodic scan would find them later)."""
        self._hand_over(report_id)

    @staticmethod
    def new_lease() -> OutboxLease:
        """The lease a new report is stored under (`stored_report`), so that `publish_leased` needs no claim."""
        return OutboxLease.taken_at(utcnow(), PRECLAIM_LEASE)

    def publish_leased(self, claim: dict[str, Any]) -> None:
        """A new report is stored under this relay's lease (`OutboxLease.claim_of`): publish its messages now."""
        self._hand_over(claim)

    def _hand_over(self, entry: str | dict[str, Any]) -> None:
        now = time.monotonic()
        if self._last_handed_over is not None:
            self._last_gap = now - self._last_handed_over
        self._last_handed_over = now
        self._handed_over.append(entry)
        self._handed_over_at.append(now)
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

    def drain(self, publisher: ConfirmedPublisher, limit: int = 2000) -> bool:
        """Publish pending messages of up to about `limit` reports; False if the broker failed us (back off)."""
        published = 0
        while self._running and published < limit:
            self._linger()  # before the time is taken: a report stored during the wait is due by then
            claims = self._next_claims(utcnow())
            if not claims:
                return True
            if not self._publish(claims, publisher):
                return False
            published += len(claims)
        return True

    def _next_claims(self, now: datetime) -> list[dict[str, Any]]:
        while self._handed_over:
            size = min(self.batch_size, len(self._handed_over))
            entries = [self._handed_over.popleft() for _ in range(size)]
            for _ in range(size):
                self._handed_over_at.popleft()
            if self._handed_over:
                self.wake()  # more work than one batch: a sibling relay starts on it while this one publishes
            claims = self._claim_handed_over(entries, now)
            if claims:
                return claims
        if time.monotonic() < self._next_scan:
            return []
        claims = self.repository.claim_due_outboxes(now, self.batch_size)
        if not claims:
            self._next_scan = time.monotonic() + self.scan_interval
        return claims

    def _claim_handed_over(self, entries: list[str | dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """The claims of handed-over reports: new reports already leased to us as they are, the others leased now.

        A new report whose lease is about to run out is left to the scan, which takes it once the lease has run
        out; one that was also handed over by id (a change queued more messages) is claimed with all of them."""
        report_ids = [entry for entry in entries if isinstance(entry, str)]
        claimed = self.repository.claim_outboxes(report_ids, now) if report_ids else []
        taken = set(report_ids)
        leased = [
            entry
            for entry in entries
            if isinstance(entry, dict) and entry["_id"] not in taken and entry["lease"] - now >= PRECLAIM_MARGIN
        ]
        return leased + claimed

    def _linger(self) -> None:
        """Let a round that is not full wait for company, until its oldest report has waited `linger`; only while
        reports come closer together than `linger`: after a quiet spell, a lone report would wait for nobody."""
        if self._handed_over and len(self._handed_over) < self.batch_size and self._last_gap < self.linger:
            wait = self._handed_over_at[0] + self.linger - time.monotonic()
            if wait > 0:
                eventlet.sleep(wait)

    def _publish(self, claims: list[dict[str, Any]], publisher: ConfirmedPublisher) -> bool:
        """Publish leased reports' messages in order, as one batch; False if the broker failed us (the unconfirmed
        rest is retried)."""
        messages = [
            Outgoing(message["body"], message["exchange"], message["routing_key"], message["message_id"])
            for claim in claims
            for message in claim.get("outbox", [])
        ]
        try:
            # a batch's submissions travel as one event pack: one delivery to each of their three queues
            publisher.publish_many(messages, pack=[ReportSubmitted.type_name])
        except PublishFailed as exc:
            self._keep_unconfirmed(claims, set(exc.confirmed), exc)
            return False
        self.repository.outboxes_published(claims)
        self._count(claims)
        return True

    def _keep_unconfirmed(self, claims: list[dict[str, Any]], confirmed: set[str], exc: PublishFailed) -> None:
        complete = []
        for claim in claims:
            ids = [message["message_id"] for message in claim.get("outbox", [])]
            done = [message_id for message_id in ids if message_id in confirmed]
            if len(done) == len(ids):
                complete.append(claim)
                continue
            log.warning("outbox publish failed, will retry: %s", exc, extra={"report_id": claim["_id"]})
            if done:
                self.repository.outbox_published(claim["_id"], done)
            self.repository.outbox_retry_later(claim["_id"], utcnow() + timedelta(seconds=1))
        self.repository.outboxes_published(complete)
        self._count(claims, confirmed)
        self._next_scan = 0.0  # the retries are found by the scan once due

    @staticmethod
    def _count(claims: list[dict[str, Any]], confirmed: set[str] | None = None) -> None:
        for claim in claims:
            for message in claim.get("outbox", []):
                if confirmed is None or message["message_id"] in confirmed:
                    metrics.OUTBOX_PUBLISHED.labels(message["exchange"] or message["routing_key"]).inc()


class Reference(DependencyProvider):
    """Categories, the OPD directory and the documents made of the areas, loaded once (and validated) when the
    service starts."""

    def setup(self) -> None:
        self.categories = load_categories()
        self.directory = load_directory()
        self.documents = reference_documents(load_areas(), load_kelurahan_geojson())

    def get_dependency(self, worker_ctx: Any) -> Reference:
        return self


class PhotoCleaner(DependencyProvider):
    """`sanitize_photo` for the worker: off the eventlet hub, a few at a time, with image memory kept for reuse.

    CPU-heavy work runs in `eventlet.tpool` threads (Pillow releases the GIL while it decodes and encodes) so
    heartbeats and other requests keep flowing; the slots bound memory, since one large PNG may take ~300 MB
    while it is decoded.
    """

    def __init__(self, policy: PhotoPolicy = DEFAULT_POLICY, slots: int = 4) -> None:
        self.policy = policy
        self.slot_count = slots

    def setup(self) -> None:
        keep_image_memory()
        self.slots = Semaphore(self.slot_count)

    def clean(self, data: bytes) -> SanitizedPhoto:
        """A safe re-encoded photo, or `PhotoRejected`."""
        with self.slots:
            return tpool.execute(sanitize_photo, data, self.policy)

    def get_dependency(self, worker_ctx: Any) -> Any:
        return self.clean


class SubmissionLimiter(DependencyProvider):
    """One token-bucket table per gateway process (see ratelimit.py), configured from RATE_LIMIT_*."""

    def setup(self) -> None:
        settings = IntakeSettings.of_container(self.container)
        self.limiter = RateLimiter(burst=settings.rate_limit_burst, per_minute=settings.rate_limit_per_minute)

    def get_dependency(self, worker_ctx: Any) -> RateLimiter:
        return self.limiter


class KeyGuessThrottle(DependencyProvider):
    """One FailureThrottle of wrong OPD keys per gateway process (see ratelimit.py), configured from OPD_KEY_*."""

    def setup(self) -> None:
        settings = IntakeSettings.of_container(self.container)
        self.throttle = FailureThrottle(
            free=settings.opd_key_failures_allowed, max_wait=settings.opd_key_max_wait_seconds
        )

    def get_dependency(self, worker_ctx: Any) -> FailureThrottle:
        return self.throttle


class OpdStreams(LiveStreams):
    """The hub of this process's OPD live streams, keyed by OPD code, at most OPD_STREAMS_PER_OPD per OPD."""

    def setup(self) -> None:
        self.max_per_key = IntakeSettings.of_container(self.container).opd_streams_per_opd
        super().setup()

    def get_dependency(self, worker_ctx: Any) -> LiveHub:
        return self.hub
