"""Notify's dependency providers: its store (timelines, contacts) and the in-process hub of live streams."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import eventlet
from eventlet.queue import LightQueue
from nameko.extensions import DependencyProvider
from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from jaklapor.events import utcnow
from jaklapor.mongo import MongoDatabase


class NotifyRepository:
    """Per report: the token hash that opens its stream, its public timeline, and (only here) the contact."""

    def __init__(self, db: Database) -> None:
        self.reports = db["reports"]
        self.timeline = db["timeline"]
        self.contacts = db["contacts"]

    def ensure_indexes(self) -> None:
        self.reports.create_index("token_hash", unique=True, sparse=True)
        self.timeline.create_index([("report_id", ASCENDING), ("seq", ASCENDING)])

    def ping(self) -> bool:
        try:
            self.reports.database.client.admin.command("ping")
        except Exception:
            return False
        return True

    def register_report(self, report_id: str, token_hash: str) -> None:
        self.reports.update_one(
            {"_id": report_id}, {"$set": {"token_hash": token_hash}, "$setOnInsert": {"seq": 0}}, upsert=True
        )

    def report_for_token(self, token_hash: str) -> str | None:
        found = self.reports.find_one({"token_hash": token_hash}, {"_id": 1})
        return found["_id"] if found else None

    def append(self, report_id: str, entry: dict[str, Any]) -> int | None:
        """Add an entry once (keyed by event id); returns its sequence number, None if already there."""
        if self.timeline.find_one({"_id": entry["event_id"]}, {"_id": 1}) is not None:
            return None
        counter = self.reports.find_one_and_update(
            {"_id": report_id}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        seq = int(counter["seq"])
        try:
            self.timeline.insert_one({"_id": entry["event_id"], "report_id": report_id, "seq": seq, "entry": entry})
        except DuplicateKeyError:
            return None
        return seq

    def entries_after(self, report_id: str, seq: int) -> list[tuple[int, dict[str, Any]]]:
        cursor = self.timeline.find({"report_id": report_id, "seq": {"$gt": seq}}).sort("seq", ASCENDING)
        return [(doc["seq"], doc["entry"]) for doc in cursor]

    def store_contact(self, report_id: str, token_hash: str, ciphertext: str) -> None:
        self.contacts.update_one(
            {"_id": report_id},
            {"$set": {"ciphertext": ciphertext, "token_hash": token_hash}, "$setOnInsert": {"registered_at": utcnow()}},
            upsert=True,
        )

    def contact_ciphertext(self, report_id: str) -> str | None:
        found = self.contacts.find_one({"_id": report_id})
        return found["ciphertext"] if found else None


class NotifyStore(MongoDatabase):
    database = "notify"

    def make_repository(self, db: Database) -> NotifyRepository:
        return NotifyRepository(db)


class LiveHub:
    """Wakes the live streams of this process that follow a report. Holds no data: streams re-read the store."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[LightQueue]] = defaultdict(set)
        self._lock = threading.Lock()

    def subscribe(self, report_id: str) -> LightQueue:
        queue: LightQueue = LightQueue(maxsize=1)
        with self._lock:
            self._subscribers[report_id].add(queue)
        return queue

    def unsubscribe(self, report_id: str, queue: LightQueue) -> None:
        with self._lock:
            subscribers = self._subscribers.get(report_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[report_id]

    def wake(self, report_id: str) -> None:
        with self._lock:
            subscribers = list(self._subscribers.get(report_id, ()))
        for queue in subscribers:
            try:
                queue.put_nowait(True)
            except eventlet.queue.Full:
                pass

    def stream_count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subscribers.values())


class LiveStreams(DependencyProvider):
    def setup(self) -> None:
        self.hub = LiveHub()

    def get_dependency(self, worker_ctx: Any) -> LiveHub:
        return self.hub
