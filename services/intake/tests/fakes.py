"""In-memory stand-ins for intake's dependencies, so its entrypoints run in a test without MongoDB, S3 or RabbitMQ.

Each fake keeps what the service stored or sent where a test can read it; the real providers are checked by the
end-to-end tests (tests/) and the repository's own tests (test_outbox_lease.py, test_report_numbers.py).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from jaklapor.storage import PhotoNotFound, StorageUnavailable, StoredObject
from services.intake.dependencies import OnceChange, OutboxLease, OutboxRelay, VersionConflict, outbox_entry
from services.intake.domain import PUBLIC_SUMMARY_FIELDS
from services.intake.nearby import OPEN_STATUSES, BoundingBox
from services.intake.report import Change, Report
from services.intake.worklist import HELD_STATUSES


class FakeReportStore:
    """The report repository's interface over a dict of documents; each document keeps its outbox in `outbox`."""

    def __init__(self) -> None:
        self.reports: dict[str, dict[str, Any]] = {}
        self._sequence = itertools.count(1)
        #: set to make the next `save` find the report changed (as a concurrent writer would)
        self.conflicts = 0
        #: called by `apply_each_once` before it writes (a test's concurrent writer)
        self.before_batch_write: Callable[[], None] | None = None
        self.batch_reads = 0
        self.batch_writes = 0

    # what the service reads
    def by_id(self, report_id: str) -> dict[str, Any] | None:
        return self._without_outbox(self.reports.get(report_id))

    def by_ids(self, report_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        self.batch_reads += 1
        found = {report_id: self.by_id(report_id) for report_id in report_ids}
        return {report_id: report for report_id, report in found.items() if report is not None}

    def by_token_hash(self, token_hash: str) -> dict[str, Any] | None:
        return self._find(lambda report: report["tracking_token_hash"] == token_hash)

    def by_idempotency_key(self, key_hash: str) -> dict[str, Any] | None:
        return self._find(lambda report: report.get("idempotency_key_hash") == key_hash)

    def open_reports_in(self, box: BoundingBox, category: str | None, limit: int) -> list[dict[str, Any]]:
        found = [
            {field: report[field] for field in PUBLIC_SUMMARY_FIELDS if field in report}
            for report in self.reports.values()
            if report["status"] in OPEN_STATUSES
            and not report.get("merged_into")
            and category in (None, report["category"])
            and box.min_lat <= report["location"]["lat"] <= box.max_lat
            and box.min_lon <= report["location"]["lon"] <= box.max_lon
        ]
        return copy.deepcopy(found[:limit])

    def held_sort_rows(
        self, opd_code: str, statuses: tuple[str, ...], category: str | None, kelurahan_codes: list[str] | None
    ) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(report)
            for report in self.reports.values()
            if (report.get("assigned_opd") or {}).get("code") == opd_code
            and not report.get("merged_into")
            and report["status"] in statuses
            and category in (None, report["category"])
            and (kelurahan_codes is None or (report.get("area") or {}).get("code") in kelurahan_codes)
        ]

    def work_items(self, report_ids: list[str]) -> list[dict[str, Any]]:
        return [self.by_id(report_id) for report_id in report_ids if report_id in self.reports]  # type: ignore[misc]

    def held_versions(self, opd_code: str) -> dict[str, int]:
        return {
            report["_id"]: report["version"]
            for report in self.reports.values()
            if (report.get("assigned_opd") or {}).get("code") == opd_code
            and report["status"] in HELD_STATUSES
            and not report.get("merged_into")
        }

    def statuses_of(self, report_ids: list[str]) -> dict[str, str]:
        return {report_id: self.reports[report_id]["status"] for report_id in report_ids if report_id in self.reports}

    def counts_by_status(self, opd_code: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for report in self.reports.values():
            if (report.get("assigned_opd") or {}).get("code") == opd_code and not report.get("merged_into"):
                counts[report["status"]] = counts.get(report["status"], 0) + 1
        return counts

    def overdue_count_of(self, opd_code: str) -> int:
        return sum(
            1
            for report in self.reports.values()
            if (report.get("assigned_opd") or {}).get("code") == opd_code and report.get("escalation_exhausted")
        )

    # duplicates
    def merged_into(self, primary_id: str, limit: int = 5000) -> list[dict[str, Any]]:
        found = sorted(r["_id"] for r in self.reports.values() if r.get("merged_into") == primary_id)
        return [self.by_id(report_id) for report_id in found[:limit]]  # type: ignore[misc]

    def has_merged_reports(self, primary_id: str) -> bool:
        return any(r.get("merged_into") == primary_id for r in self.reports.values())

    def add_supporter(self, report_id: str, supporter: str, messages: list[Any], open_statuses: list[str]) -> bool:
        stored = self.reports.get(report_id)
        if stored is None or stored["status"] not in open_statuses or supporter in stored.get("supporter_hashes", []):
            return False
        stored.setdefault("supporter_hashes", []).append(supporter)
        stored["supporters"] = stored.get("supporters", 0) + 1
        stored.setdefault("outbox", []).extend(outbox_entry(message) for message in messages)
        return True

    def pending_verification(self, limit: int) -> list[dict[str, Any]]:
        pending = [
            copy.deepcopy(self._without_outbox(report))
            for report in self.reports.values()
            if report["status"] == "dikerjakan" and (report.get("verification") or {}).get("state") == "pending"
        ]
        return sorted(pending, key=lambda report: report["verification"]["submitted_at"])[:limit]

    def next_sequence(self, day: str) -> int:
        return next(self._sequence)

    # what it writes
    def insert(self, report: dict[str, Any]) -> None:
        key = report.get("idempotency_key_hash")
        if report["_id"] in self.reports or (key and self.by_idempotency_key(key)):
            raise DuplicateKeyError("duplicate report")
        self.reports[report["_id"]] = copy.deepcopy(report)

    def save(self, report: Report, change: Change) -> dict[str, Any]:
        stored = self.reports[report.id]
        if self.conflicts:
            self.conflicts -= 1
            raise VersionConflict(report.id)
        if stored["version"] != report.version:
            raise VersionConflict(report.id)
        stored.update(copy.deepcopy(change.fields))
        stored["version"] += 1
        stored["history"].append(change.history)
        for name, push in change.pushes.items():
            stored.setdefault(name, []).extend(push["$each"])
        stored.setdefault("outbox", []).extend(outbox_entry(message) for message in change.messages)
        return self._without_outbox(stored)  # type: ignore[return-value]

    def apply_once(
        self,
        report_id: str,
        event_id: str,
        condition: dict[str, Any],
        changes: dict[str, Any],
        history: dict[str, Any],
    ) -> bool:
        stored = self.reports.get(report_id)
        if stored is None or event_id in stored["applied_events"]:
            return False
        if any(stored.get(key) != value for key, value in condition.items()):
            return False
        stored.update(copy.deepcopy(changes))
        stored["version"] += 1
        stored["history"].append(history)
        stored["applied_events"].append(event_id)
        return True

    def apply_each_once(self, changes: Sequence[OnceChange]) -> set[str]:
        if not changes:
            return set()
        assert len({change.report_id for change in changes}) == len(changes), "one change per report"
        if self.before_batch_write is not None:
            self.before_batch_write()
        self.batch_writes += 1
        return {change.event_id for change in changes if self.apply_once(*change)}

    def claim_overdue(self, now: datetime, waiting: list[str]) -> dict[str, Any] | None:
        due = [
            report
            for report in self.reports.values()
            if report.get("response_deadline") and report["response_deadline"] <= now and report["status"] in waiting
        ]
        if not due:
            return None
        report = min(due, key=lambda r: r["response_deadline"])
        claimed = self._without_outbox(report)
        report["response_deadline"] = now.replace(year=now.year + 1)  # leased: not claimed again in this test
        return claimed

    def ping(self) -> bool:
        return True

    def pending_outbox_count(self) -> int:
        return sum(1 for report in self.reports.values() if report.get("outbox"))

    # incidents (services/intake/incidents.py)
    def tag_incident(self, report_id: str, incident_id: str, opd: dict[str, Any], at: datetime) -> bool:
        stored = self.reports.get(report_id)
        if stored is None:
            return False
        stored.update(incident_id=incident_id, incident_joined={"opd": opd, "at": at})
        return True

    def incident_members(self, incident_id: str, opd_code: str) -> list[dict[str, Any]]:
        return [
            self._without_outbox(r)  # type: ignore[misc]
            for r in self.reports.values()
            if r.get("incident_id") == incident_id and (r.get("assigned_opd") or {}).get("code") == opd_code
        ]

    def incident_rows(self, opd_code: str) -> list[dict[str, Any]]:
        return [
            self._without_outbox(r)  # type: ignore[misc]
            for r in self.reports.values()
            if r.get("incident_id") and (r.get("assigned_opd") or {}).get("code") == opd_code
        ]

    # for the tests
    def messages(self, report_id: str) -> list[dict[str, Any]]:
        """The outbox entries queued for a report, oldest first."""
        return self.reports[report_id].get("outbox", [])

    def _find(self, matches: Any) -> dict[str, Any] | None:
        return next((self._without_outbox(r) for r in self.reports.values() if matches(r)), None)

    @staticmethod
    def _without_outbox(report: dict[str, Any] | None) -> dict[str, Any] | None:
        if report is None:
            return None
        return copy.deepcopy({key: value for key, value in report.items() if key != "outbox"})


class FakeSessionStore:
    """The session repository over a dict keyed by the token's hash."""

    def __init__(self) -> None:
        self.sessions: dict[str, dict[str, Any]] = {}

    def insert(self, session: dict[str, Any]) -> None:
        if session["_id"] in self.sessions:
            raise DuplicateKeyError("duplicate session")
        self.sessions[session["_id"]] = copy.deepcopy(session)

    def by_id(self, session_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.sessions.get(session_id))

    def touch(self, session_id: str, fields: dict[str, Any]) -> None:
        if session_id in self.sessions:
            self.sessions[session_id].update(fields)

    def delete(self, session_id: str) -> bool:
        return self.sessions.pop(session_id, None) is not None


class FakePhotoStorage:
    """The photo store as a dict of key → (content, content type); `available = False` makes it fail as S3 does."""

    def __init__(self) -> None:
        self.objects: dict[str, StoredObject] = {}
        self.available = True

    def put(self, key: str, content: bytes, content_type: str) -> None:
        if not self.available:
            raise StorageUnavailable("the fake object store is down")
        self.objects[key] = StoredObject(content, content_type)

    def get(self, key: str) -> StoredObject:
        if not self.available:
            raise StorageUnavailable("the fake object store is down")
        if key not in self.objects:
            raise PhotoNotFound(key)
        return self.objects[key]

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def healthy(self) -> bool:
        return self.available


class FakeRelay:
    """The outbox relay: remembers which reports were handed over for publishing."""

    def __init__(self) -> None:
        self.handed_over: list[str] = []
        self.leased: list[dict[str, Any]] = []  # new reports' claims, as the relay would publish them

    def publish_soon(self, report_id: str) -> None:
        self.handed_over.append(report_id)

    @staticmethod
    def new_lease() -> OutboxLease:
        return OutboxRelay.new_lease()

    def publish_leased(self, claim: dict[str, Any]) -> None:
        self.leased.append(claim)
        self.handed_over.append(claim["_id"])
