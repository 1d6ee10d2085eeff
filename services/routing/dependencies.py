"""Routing's dependency providers: the area index and OPD directory, and the ledger of decisions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from jaklapor.mongo import MongoDatabase, ping
from jaklapor.reference import load_directory
from jaklapor.vocabulary import utcnow
from services.routing.domain import AreaIndex
from services.routing.duplicates import Search
from services.routing.settings import RoutingSettings

CLAIM_POLL_SECONDS = 0.05


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

    def record_and_claim(self, report_id: str, hop: int, decision: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Keep the first decision for (report, hop) and claim the delivery of its OPD message.

        Returns the decision kept (a redelivery gets the first one, with its ids) and whether this worker may
        publish the OPD message now. The first delivery of a report records and claims in one write."""
        now = utcnow()
        record = {
            "_id": f"{report_id}:{hop}",
            "report_id": report_id,
            "hop": hop,
            "decided_at": now,
            **decision,
            "claimed_until": now + self.claim_lease,
        }
        try:
            self.decisions.insert_one(record)
        except DuplicateKeyError:
            kept = self.decisions.find_one({"_id": record["_id"]})
            if kept is None:  # decisions are never deleted; a store that lost one must not guess
                raise
            return kept, self.claim_delivery(report_id, hop)
        return record, True

    def claim_delivery(self, report_id: str, hop: int) -> bool:
        """True if this worker may publish the OPD message now; False if it is already delivered.

        While another worker holds the claim, wait for it to finish (or for its lease to expire, if it died).
        """
        key = f"{report_id}:{hop}"
        while True:
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
            eventlet.sleep(CLAIM_POLL_SECONDS)

    def decision(self, report_id: str, hop: int) -> dict[str, Any] | None:
        """The decision recorded for (report, hop), if any (a redelivery must not count the report again)."""
        return self.decisions.find_one({"_id": f"{report_id}:{hop}"}, {"_id": 1})

    def release_claim(self, report_id: str, hop: int) -> None:
        self.decisions.update_one({"_id": f"{report_id}:{hop}"}, {"$set": {"claimed_until": None}})

    def mark_delivered(self, report_id: str, hop: int, at: datetime) -> None:
        self.decisions.update_one({"_id": f"{report_id}:{hop}"}, {"$set": {"delivered_at": at, "claimed_until": None}})


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
        self.reports.create_index([("category", 1), ("lat", 1)])
        self.reports.create_index("expires_at", expireAfterSeconds=0)

    def record(self, entry: dict[str, Any]) -> None:
        """Keep a report once (a redelivered submission changes nothing)."""
        self.reports.update_one({"_id": entry["_id"]}, {"$setOnInsert": entry}, upsert=True)

    def candidates(self, search: Search, limit: int = 500) -> list[dict[str, Any]]:
        """Reports of the category in the box, submitted in the window (the exact distance is checked after)."""
        query = {
            "category": search.category,
            "lat": {"$gte": search.min_lat, "$lte": search.max_lat},
            "lon": {"$gte": search.min_lon, "$lte": search.max_lon},
            "submitted_at": {"$gte": search.since, "$lte": search.until},
        }
        return list(self.reports.find(query).limit(limit))


class RecentReports(MongoDatabase):
    database = "routing"

    def make_repository(self, db: Database) -> RecentReportsRepository:
        return RecentReportsRepository(db)
