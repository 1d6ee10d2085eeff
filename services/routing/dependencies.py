"""Routing's dependency providers: the area index and OPD directory, and the ledger of decisions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider
from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from jaklapor.mongo import MongoDatabase, ping
from jaklapor.reference import load_directory
from jaklapor.vocabulary import utcnow
from services.routing.domain import AreaIndex
from services.routing.duplicates import Search, cell_of
from services.routing.settings import RoutingSettings

CLAIM_POLL_SECONDS = 0.05
DUPLICATE_KEY = 11000


class ClaimBusy(RuntimeError):
    """Another worker holds the claim of a (report, hop) of a batch that holds claims itself: the batch gives its
    claims back instead of waiting (two batches could wait for each other), and is handled again one by one."""


def duplicate_key_indexes(exc: BulkWriteError) -> set[int]:
    """The positions of an unordered insert_many that already existed; any other write error is raised."""
    errors = exc.details.get("writeErrors", [])
    if any(error.get("code") != DUPLICATE_KEY for error in errors):
        raise exc
    return {error["index"] for error in errors}


class RoutingData(DependencyProvider):
    """The kelurahan index and the OPD directory: built and validated once at start, shared by all workers."""

    def setup(self) -> None:
        self.directory = load_directory()
        self.index = AreaIndex.default()

    def get_dependency(self, worker_ctx: Any) -> RoutingData:
        return self


class LedgerRepository:
    """One record per (report, hop): the decision taken the first time and whether its OPD message is confirmed.

    A redelivered report reuses the recorded decision and event ids, so the OPD gets no second message and
    downstream consumers see the same event again (and ignore it).
    """

    def __init__(self, db: Database, claim_lease: timedelta) -> None:
        self.decisions = db["decisions"]
        self.claim_lease = claim_lease

    def ensure_indexes(self) -> None:
        self.decisions.create_index("report_id")

    def ping(self) -> bool:
        return ping(self.decisions.database)

    def _new_record(self, report_id: str, hop: int, decision: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {
            "_id": f"{report_id}:{hop}",
            "report_id": report_id,
            "hop": hop,
            "decided_at": now,
            **decision,
            "claimed_until": now + self.claim_lease,
        }

    def record_and_claim(self, report_id: str, hop: int, decision: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Keep the first decision for (report, hop) and claim the delivery of its OPD message.

        Returns the decision kept (a redelivery gets the first one, with its ids) and whether this worker may
        publish the OPD message now. The first delivery of a report records and claims in one write."""
        record = self._new_record(report_id, hop, decision, utcnow())
        try:
            self.decisions.insert_one(record)
        except DuplicateKeyError:
            kept = self.decisions.find_one({"_id": record["_id"]})
            if kept is None:  # decisions are never deleted; a store that lost one must not guess
                raise
            return kept, self.claim_delivery(report_id, hop)
        return record, True

    def record_and_claim_many(
        self, decisions: Sequence[tuple[str, int, dict[str, Any]]]
    ) -> list[tuple[dict[str, Any], bool]]:
        """record_and_claim for a batch of distinct (report, hop): the new decisions kept and claimed in one
        insert_many; those decided before take record_and_claim's slow path one by one.

        A batch holding claims never waits for a claim another worker holds (two batches could each wait for the
        other's): it releases its claims and raises ClaimBusy; handled alone, the message waits as before."""
        now = utcnow()
        records = [self._new_record(report_id, hop, decision, now) for report_id, hop, decision in decisions]
        if not records:
            return []
        known: set[int] = set()
        try:
            self.decisions.insert_many(records, ordered=False)
        except BulkWriteError as exc:
            try:
                known = duplicate_key_indexes(exc)
            except BulkWriteError:
                failed = {error["index"] for error in exc.details.get("writeErrors", [])}
                self.release_claims([record["_id"] for i, record in enumerate(records) if i not in failed])
                raise
        held = [record["_id"] for i, record in enumerate(records) if i not in known]
        kept: list[tuple[dict[str, Any], bool]] = [(record, True) for record in records]
        try:
            for i in sorted(known):
                key = records[i]["_id"]
                first = self.decisions.find_one({"_id": key})
                if first is None:  # decisions are never deleted; a store that lost one must not guess
                    raise DuplicateKeyError(f"decision {key} exists but cannot be read")
                claimed = self._claim(key) if held else self.claim_delivery(*decisions[i][:2])
                if claimed is None:
                    raise ClaimBusy(f"the delivery of {key} is claimed by another worker")
                if claimed:
                    held.append(key)
                kept[i] = (first, claimed)
        except BaseException:
            self.release_claims(held)
            raise
        return kept

    def claim_delivery(self, report_id: str, hop: int) -> bool:
        """True if this worker may publish the OPD message now; False if it is already delivered.

        While another worker holds the claim, wait for it to finish (or for its lease to expire, if it died).
        """
        key = f"{report_id}:{hop}"
        while True:
            claimed = self._claim(key)
            if claimed is not None:
                return claimed
            eventlet.sleep(CLAIM_POLL_SECONDS)

    def _claim(self, key: str) -> bool | None:
        """One try: True if claimed now, False if delivered (or unknown), None while another worker holds it."""
        now = utcnow()
        claimed = self.decisions.find_one_and_update(
            {"_id": key, "delivered_at": None, "$or": [{"claimed_until": None}, {"claimed_until": {"$lt": now}}]},
            {"$set": {"claimed_until": now + self.claim_lease}},
            projection={"_id": 1},
        )
        if claimed is not None:
            return True
        current = self.decisions.find_one({"_id": key}, {"delivered_at": 1})
        if current is None or current.get("delivered_at") is not None:
            return False
        return None

    def decision(self, report_id: str, hop: int) -> dict[str, Any] | None:
        """The decision recorded for (report, hop), if any (a redelivery must not count the report again)."""
        return self.decisions.find_one({"_id": f"{report_id}:{hop}"}, {"_id": 1})

    def decided(self, keys: Sequence[str]) -> set[str]:
        """Which of these (report, hop) keys have a decision recorded (one query for a batch)."""
        if not keys:
            return set()
        return {doc["_id"] for doc in self.decisions.find({"_id": {"$in": list(keys)}}, {"_id": 1})}

    def release_claim(self, report_id: str, hop: int) -> None:
        self.decisions.update_one({"_id": f"{report_id}:{hop}"}, {"$set": {"claimed_until": None}})

    def mark_delivered(self, report_id: str, hop: int, at: datetime) -> None:
        self.decisions.update_one({"_id": f"{report_id}:{hop}"}, {"$set": {"delivered_at": at, "claimed_until": None}})

    def release_claims(self, keys: Sequence[str]) -> None:
        """release_claim for a batch's (report, hop) keys, in one write."""
        if keys:
            self.decisions.update_many({"_id": {"$in": list(keys)}}, {"$set": {"claimed_until": None}})

    def mark_delivered_many(self, keys: Sequence[str], at: datetime) -> None:
        """mark_delivered for a batch's (report, hop) keys, in one write."""
        if keys:
            self.decisions.update_many(
                {"_id": {"$in": list(keys)}}, {"$set": {"delivered_at": at, "claimed_until": None}}
            )


class RoutingLedger(MongoDatabase):
    database = "routing"

    def make_repository(self, db: Database) -> LedgerRepository:
        # a worker that died while delivering holds its claim this long before another may retry
        lease = RoutingSettings.of_container(self.container).delivery_claim_seconds
        return LedgerRepository(db, timedelta(seconds=lease))


class RecentReportsRepository:
    """Routing's own index of recent reports (services/routing/duplicates.py), fed by the submissions it routes."""

    def __init__(self, db: Database) -> None:
        self.reports = db["recent_reports"]

    def ensure_indexes(self) -> None:
        self.reports.create_index([("cell", 1), ("category", 1), ("submitted_at", 1)])
        self.reports.create_index("expires_at", expireAfterSeconds=0)
        # entries kept before the index had cells (at most a window's worth) get theirs, or no search would find them
        filed = [
            UpdateOne({"_id": entry["_id"]}, {"$set": {"cell": cell_of(entry["lat"], entry["lon"])}})
            for entry in self.reports.find({"cell": {"$exists": False}}, {"lat": 1, "lon": 1})
        ]
        if filed:
            self.reports.bulk_write(filed, ordered=False)

    def record(self, entry: dict[str, Any]) -> None:
        """Keep a report once (a redelivered submission changes nothing)."""
        self.reports.update_one({"_id": entry["_id"]}, {"$setOnInsert": entry}, upsert=True)

    def record_many(self, entries: Sequence[dict[str, Any]]) -> None:
        """record for a batch in one write: inserting the new ones and ignoring those kept before is what the
        upsert with $setOnInsert does for each."""
        if not entries:
            return
        try:
            self.reports.insert_many([dict(entry) for entry in entries], ordered=False)
        except BulkWriteError as exc:
            duplicate_key_indexes(exc)  # a report recorded before stays as it was

    def candidates(self, search: Search, limit: int = 500) -> list[dict[str, Any]]:
        """Reports of the category in the box, submitted in the window (the exact distance is checked after)."""
        return list(self.reports.find(box_query(search)).limit(limit))

    def candidates_many(self, searches: Sequence[Search], limit: int = 500) -> list[list[dict[str, Any]]]:
        """candidates for each search of a batch, in one query (the union of the boxes, split again here)."""
        if len(searches) <= 1:
            return [self.candidates(search, limit) for search in searches]
        # the cells of every box at once (the index's leading key); each search takes its own from them below
        query = {
            "cell": {"$in": sorted({cell for search in searches for cell in search.cells})},
            "category": {"$in": sorted({search.category for search in searches})},
            "submitted_at": {
                "$gte": min(search.since for search in searches),
                "$lte": max(search.until for search in searches),
            },
        }
        found = list(self.reports.find(query).limit(limit * len(searches)))
        if len(found) >= limit * len(searches):  # cut short: a search may lack some of its own; ask each alone
            return [self.candidates(search, limit) for search in searches]
        return [[doc for doc in found if search.holds(doc)][:limit] for search in searches]


def box_query(search: Search) -> dict[str, Any]:
    return {
        "cell": {"$in": search.cells},
        "category": search.category,
        "lat": {"$gte": search.min_lat, "$lte": search.max_lat},
        "lon": {"$gte": search.min_lon, "$lte": search.max_lon},
        "submitted_at": {"$gte": search.since, "$lte": search.until},
    }


class RecentReports(MongoDatabase):
    database = "routing"

    def make_repository(self, db: Database) -> RecentReportsRepository:
        return RecentReportsRepository(db)
