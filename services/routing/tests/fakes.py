"""In-memory stand-ins for routing's dependencies, for interface tests of RoutingService without RabbitMQ or MongoDB.

Each keeps the behaviour the entrypoint relies on (the ledger keeps the first decision per report and hop and
hands out one delivery claim; the publisher stores a batch or fails as told) and records what it was asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kombu import Exchange, Queue

from jaklapor.messaging import Outgoing, PublishFailed
from jaklapor.reference import Directory, load_directory
from services.routing.domain import AreaIndex


@dataclass
class ReferenceData:
    """RoutingData's two read-only structures: the repo's kelurahan index and OPD directory."""

    index: AreaIndex = field(default_factory=AreaIndex.default)
    directory: Directory = field(default_factory=load_directory)


class FakeLedger:
    """LedgerRepository in a dict: one record per (report, hop), the first decision kept."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.writes: list[str] = []  # the batch operations asked for, by name

    def ping(self) -> bool:
        return True

    def record_and_claim(self, report_id: str, hop: int, decision: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        key = f"{report_id}:{hop}"
        if key in self.records:
            return self.records[key], self.claim_delivery(report_id, hop)
        self.records[key] = {
            "_id": key,
            "report_id": report_id,
            "hop": hop,
            **decision,
            "claimed": True,
            "delivered_at": None,
        }
        return self.records[key], True

    def record_and_claim_many(
        self, decisions: Sequence[tuple[str, int, dict[str, Any]]]
    ) -> list[tuple[dict[str, Any], bool]]:
        self.writes.append("record_and_claim_many")
        return [self.record_and_claim(report_id, hop, decision) for report_id, hop, decision in decisions]

    def decision(self, report_id: str, hop: int) -> dict[str, Any] | None:
        return self.records.get(f"{report_id}:{hop}")

    def decided(self, keys: Sequence[str]) -> set[str]:
        return {key for key in keys if key in self.records}

    def release_claims(self, keys: Sequence[str]) -> None:
        if keys:
            self.writes.append("release_claims")
        for key in keys:
            self.records[key]["claimed"] = False

    def mark_delivered_many(self, keys: Sequence[str], at: datetime) -> None:
        if keys:
            self.writes.append("mark_delivered_many")
        for key in keys:
            self.records[key].update(delivered_at=at, claimed=False)

    def claim_delivery(self, report_id: str, hop: int) -> bool:
        # one test worker at a time: a claim is never held by another
        record = self.records[f"{report_id}:{hop}"]
        if record["delivered_at"] is not None:
            return False
        record["claimed"] = True
        return True

    def release_claim(self, report_id: str, hop: int) -> None:
        self.records[f"{report_id}:{hop}"]["claimed"] = False

    def mark_delivered(self, report_id: str, hop: int, at: datetime) -> None:
        self.records[f"{report_id}:{hop}"].update(delivered_at=at, claimed=False)


class FakePublisher:
    """ConfirmedPublisher.publish_many: keeps each confirmed batch; `fail_next(exc)` makes the next batch raise."""

    def __init__(self) -> None:
        self.batches: list[list[Outgoing]] = []
        self.declared: list[Exchange | Queue] = []
        self.packed: set[str] = set()  # the routing keys asked to travel as event packs
        self._failure: PublishFailed | None = None

    def fail_next(self, failure: PublishFailed) -> None:
        self._failure = failure

    def publish_many(
        self, messages: Sequence[Outgoing], *, declare: Iterable[Exchange | Queue] = (), pack: Iterable[str] = ()
    ) -> None:
        """Keeps the messages as the caller gave them (how packs travel is `pack_messages`'s, tested on its own)."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        self.declared.extend(declare)
        self.packed.update(pack)
        self.batches.append(list(messages))

    @property
    def messages(self) -> list[Outgoing]:
        return [message for batch in self.batches for message in batch]


class FakeRecentReports:
    """RecentReportsRepository in a dict (routing's index of recent reports for duplicate suggestions)."""

    def __init__(self) -> None:
        self.reports: dict[str, dict[str, Any]] = {}
        self.queries = 0  # candidate queries and writes asked for
        self.writes = 0

    def record(self, entry: dict[str, Any]) -> None:
        self.reports.setdefault(entry["_id"], dict(entry))

    def record_many(self, entries: Sequence[dict[str, Any]]) -> None:
        self.writes += 1
        for entry in entries:
            self.record(entry)

    def candidates_many(self, searches: Sequence[Any], limit: int = 500) -> list[list[dict[str, Any]]]:
        self.queries += 1
        return [self.candidates(search, limit) for search in searches]

    def candidates(self, search: Any, limit: int = 500) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.reports.values()
            if r["category"] == search.category
            and search.min_lat <= r["lat"] <= search.max_lat
            and search.min_lon <= r["lon"] <= search.max_lon
            and search.since <= r["submitted_at"] <= search.until
        ][:limit]


def incident_store() -> Any:
    """Routing's real incident repository (services/routing/incidents.py) on an in-memory mongomock database."""
    import mongomock

    from services.routing.incidents import IncidentRepository

    repository = IncidentRepository(mongomock.MongoClient(tz_aware=True)["routing"])
    repository.ensure_indexes()
    return repository
