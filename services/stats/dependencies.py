"""Stats' dependency provider: the store of per-report projections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from jaklapor.mongo import MongoDatabase


class ProjectionConflict(Exception):
    """Another worker updated the projection first; the caller applies the event again."""


class ProjectionRepository:
    def __init__(self, db: Database) -> None:
        self.projections = db["report_projections"]

    def ensure_indexes(self) -> None:
        self.projections.create_index([("status", 1), ("category", 1), ("kota", 1)])

    def ping(self) -> bool:
        try:
            self.projections.database.client.admin.command("ping")
        except Exception:
            return False
        return True

    def update(self, report_id: str, change: Callable[[dict[str, Any] | None], dict[str, Any] | None]) -> bool:
        """Read-modify-write one projection with optimistic concurrency; False if `change` had nothing to do."""
        for _attempt in range(10):
            current = self.projections.find_one({"_id": report_id})
            updated = change(current)
            if updated is None:
                return False
            if current is None:
                updated["rev"] = 1
                try:
                    self.projections.insert_one(updated)
                except DuplicateKeyError:
                    continue
                return True
            updated["rev"] = current["rev"] + 1
            result = self.projections.replace_one({"_id": report_id, "rev": current["rev"]}, updated)
            if result.modified_count == 1:
                return True
        raise ProjectionConflict(report_id)

    def grouped_counts(self) -> list[tuple[str | None, str | None, str | None, int]]:
        pipeline = [
            {"$match": {"status": {"$ne": None}}},
            {"$group": {"_id": {"status": "$status", "category": "$category", "kota": "$kota"}, "n": {"$sum": 1}}},
        ]
        return [
            (row["_id"].get("status"), row["_id"].get("category"), row["_id"].get("kota"), row["n"])
            for row in self.projections.aggregate(pipeline)
        ]


class ProjectionStore(MongoDatabase):
    database = "stats"

    def make_repository(self, db: Database) -> ProjectionRepository:
        return ProjectionRepository(db)
