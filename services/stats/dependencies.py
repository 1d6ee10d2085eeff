"""Stats' dependency providers: the store of per-report projections, and the kelurahan map."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from nameko.extensions import DependencyProvider
from pymongo import ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from jaklapor.mongo import MongoDatabase, ping
from jaklapor.reference import load_kelurahan_geojson
from jaklapor.reference.geo import simplify_kelurahan
from jaklapor.vocabulary import STATUSES
from services.stats import metrics

# what the statistics read of a projection: everything but the facts it was derived from
ROW_FIELDS = {"facts": 0}
# what breakdowns and reports per day read (no hops)
AREA_FIELDS = ("status", "category", "kota", "kecamatan", "kelurahan", "area_code", "opd")
DAY_FIELDS = ("status", "day", "submitted_at", "resolved_at")


#: MongoDB's duplicate key error: in a batch write, the sign that another worker wrote the projection first
DUPLICATE_KEY = 11000

#: a report merged into another is part of that one's problem: every figure counts problems (services/stats/domain.py)
NOT_MERGED: dict[str, Any] = {"merged_into": None}


class ProjectionConflict(Exception):
    """Another worker updated the projection first; the caller applies the event again."""


class ProjectionRepository:
    def __init__(self, db: Database) -> None:
        self.projections = db["report_projections"]

    def ensure_indexes(self) -> None:
        self.projections.create_index([("status", 1), ("category", 1), ("kota", 1)])
        self.projections.create_index("submitted_at")

    def ping(self) -> bool:
        return ping(self.projections.database)

    def get(self, report_id: str) -> dict[str, Any] | None:
        return self.projections.find_one({"_id": report_id})

    def update(
        self,
        report_id: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        *,
        probably_new: bool = False,
    ) -> bool:
        """Read-modify-write one projection with optimistic concurrency; False if `change` had nothing to do.

        `probably_new` (a report's first event): try to create the projection without reading first."""
        if probably_new:
            created = change(None)
            if created is not None:
                try:
                    self.projections.insert_one({**created, "_id": report_id, "rev": 1})
                    return True
                except DuplicateKeyError:
                    pass  # it exists after all (a later event came first): read and fold into it
        for _attempt in range(10):
            current = self.projections.find_one({"_id": report_id})
            updated = change(current)
            if updated is None:
                return False
            updated = {**updated, "_id": report_id}
            if current is None:
                updated["rev"] = 1
                try:
                    self.projections.insert_one(updated)
                except DuplicateKeyError:
                    continue
                return True
            updated["rev"] = current.get("rev", 0) + 1
            result = self.projections.replace_one({"_id": report_id, "rev": current.get("rev", 0)}, updated)
            if result.modified_count == 1:
                return True
        raise ProjectionConflict(report_id)

    def update_many(
        self,
        changes: Mapping[str, Callable[[dict[str, Any] | None], dict[str, Any] | None]],
        *,
        probably_new: Collection[str] = (),
    ) -> tuple[set[str], set[str]]:
        """`update` for several projections in one read and one write: (report ids changed, report ids whose write
        lost to another worker, left as that worker wrote them: the caller applies their change again, e.g. with
        `update`). A report id `change` has nothing for is in neither.

        Reports in `probably_new` (their first event is in the batch) are created without reading, as in `update`.
        Every write is an upsert on the projection's `_id` and the `rev` it was computed from (0 for a projection
        not there yet: a stored one has 1 or more), all in one unordered update command. A write that finds
        another projection than it was computed from fails on its own with a duplicate key error at its index:
        matching nothing, the upsert inserts an `_id` that exists. Reports are independent, so one conflict does
        not stop the others' writes. (A projection nobody has yet is simply inserted by its upsert.)
        """
        updates: dict[str, tuple[dict[str, Any] | None, dict[str, Any]]] = {}  # report id -> (before, after)
        to_read = []
        for report_id, change in changes.items():
            created = change(None) if report_id in probably_new else None
            if created is not None:
                updates[report_id] = (None, created)
            else:
                to_read.append(report_id)
        found = {p["_id"]: p for p in self.projections.find({"_id": {"$in": to_read}})} if to_read else {}
        for report_id in to_read:
            before = found.get(report_id)
            updated = changes[report_id](before)
            if updated is not None:
                updates[report_id] = (before, updated)
        writes: list[ReplaceOne[Any]] = []
        written: list[str] = []
        for report_id, (before, updated) in updates.items():
            rev = before.get("rev", 0) if before is not None else 0
            writes.append(
                ReplaceOne({"_id": report_id, "rev": rev}, {**updated, "_id": report_id, "rev": rev + 1}, upsert=True)
            )
            written.append(report_id)
        if not writes:
            return set(), set()
        try:
            self.projections.bulk_write(writes, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if exc.details.get("writeConcernErrors") or any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            lost = {written[e["index"]] for e in errors}
            return set(written) - lost, lost
        return set(written), set()

    def grouped_counts(
        self, query: dict[str, Any] | None = None
    ) -> list[tuple[str | None, str | None, str | None, int]]:
        pipeline = [
            {"$match": {"status": {"$ne": None}, **NOT_MERGED, **(query or {})}},
            {"$group": {"_id": {"status": "$status", "category": "$category", "kota": "$kota"}, "n": {"$sum": 1}}},
        ]
        return [
            (row["_id"].get("status"), row["_id"].get("category"), row["_id"].get("kota"), row["n"])
            for row in self.projections.aggregate(pipeline)
        ]

    def rows(self, query: dict[str, Any] | None = None, fields: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The derived fields (only `fields`, if given) of every counted projection matching `query`."""
        projection = dict.fromkeys(fields, 1) if fields is not None else ROW_FIELDS
        return list(self.projections.find({"status": {"$ne": None}, **NOT_MERGED, **(query or {})}, projection))

    def merged_count(self, query: dict[str, Any] | None = None) -> int:
        """Reports merged into another one (counted as part of that one's problem), matching `query`."""
        return self.projections.count_documents(
            {"status": {"$ne": None}, **(query or {}), "merged_into": {"$ne": None}}
        )

    def all(self) -> Iterator[dict[str, Any]]:
        return iter(self.projections.find({}))

    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        pipeline = [{"$match": NOT_MERGED}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
        for row in self.projections.aggregate(pipeline):
            if row["_id"] in counts:
                counts[row["_id"]] = row["n"]
        return counts


class ProjectionStore(MongoDatabase):
    database = "stats"

    def make_repository(self, db: Database) -> ProjectionRepository:
        return ProjectionRepository(db)

    def prepare(self, repository: ProjectionRepository) -> None:
        super().prepare(repository)
        metrics.REPORTS_BY_STATUS.watch(repository.status_counts)


class KelurahanMap(DependencyProvider):
    """The simplified kelurahan boundaries as GeoJSON bytes, computed once when the service starts."""

    def setup(self) -> None:
        self.body = json.dumps(simplify_kelurahan(load_kelurahan_geojson()), separators=(",", ":")).encode()

    def get_dependency(self, worker_ctx: Any) -> bytes:
        return self.body
