"""Routing's own record of surges (services/routing/surge.py has the rules): recent arrivals per key, the incidents
and their members, and which members the OPD has been told about. In routing's database; nothing else reads it.

Collections:
- `surge_arrivals`: one per counted report (`_id` report id): key, arrival time, the member record; pruned after the
  window.
- `incident_keys`: one per key (`_id` the key): the incident currently taking members and until when; the unique `_id`
  makes two workers that trip the threshold at once open one incident, not two.
- `incidents`: one per incident: OPD, category, kecamatan, opened at, last member at, when the OPD last heard of it,
  and the lease of the worker sending its next message.
- `incident_members`: one per member (`_id` report id, so a report joins at most once); `pending_of` holds the
  incident id until the OPD was sent the member.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from jaklapor.events import AreaRef, OpdRef
from jaklapor.mongo import MongoDatabase
from services.routing.surge import SurgeRule, kecamatan_code

SEND_LEASE = timedelta(seconds=30)


@dataclass(frozen=True)
class SurgeOutcome:
    """A report in an incident: the incident, whether this report opened it, and the members that were delivered on
    their own before it opened (report_id, version, area, to announce with report_joined_incident)."""

    incident_id: str
    opened: bool = False
    early_members: list[dict[str, Any]] = field(default_factory=list)


class IncidentRepository:
    def __init__(self, db: Database) -> None:
        self.arrivals = db["surge_arrivals"]
        self.keys = db["incident_keys"]
        self.incidents = db["incidents"]
        self.members = db["incident_members"]

    def ensure_indexes(self) -> None:
        self.arrivals.create_index([("key", ASCENDING), ("at", ASCENDING)])
        self.arrivals.create_index("at")
        self.members.create_index("incident_id")
        self.members.create_index("pending_of")
        self.incidents.create_index("pending")

    # ---- a report arrives --------------------------------------------------------------------------------------

    def observe(
        self,
        *,
        report_id: str,
        version: int,
        key: str,
        routing_key: str,
        opd: OpdRef,
        category: str,
        area: AreaRef,
        member: dict[str, Any],
        rule: SurgeRule,
        now: datetime,
    ) -> SurgeOutcome | None:
        """Count the report under its key; the incident it is a member of (joined or opened now), or None when it is
        delivered on its own. Safe to repeat for a redelivered report: it joins at most once."""
        joined = self.members.find_one({"_id": report_id}, {"incident_id": 1})
        if joined is not None:
            return SurgeOutcome(joined["incident_id"])
        try:
            self.arrivals.insert_one(
                {
                    "_id": report_id,
                    "key": key,
                    "at": now,
                    "version": version,
                    "area": area.model_dump(),
                    "member": member,
                }
            )
        except DuplicateKeyError:
            pass  # counted before (a redelivery)
        for _attempt in range(3):
            active = self.keys.find_one({"_id": key})
            if active is not None and rule.still_active(active["last_member_at"], now):
                self._join(active["incident_id"], key, report_id, member, now)
                return SurgeOutcome(active["incident_id"])
            arrived = self.arrivals.count_documents({"key": key, "at": {"$gte": now - rule.window}})
            if not rule.opens(arrived):
                return None
            incident_id = uuid.uuid4().hex
            if not self._claim_key(key, incident_id, active, now):
                continue  # another worker opened it meanwhile: join theirs
            early = [
                doc
                for doc in self.arrivals.find({"key": key, "at": {"$gte": now - rule.window}})
                if doc["_id"] != report_id
            ]
            early.sort(key=lambda doc: (doc["at"], doc["_id"]))
            self.incidents.insert_one(
                {
                    "_id": incident_id,
                    "key": key,
                    "routing_key": routing_key,
                    "opd": opd.model_dump(),
                    "category": category,
                    "kecamatan": area.kecamatan,
                    "kecamatan_code": kecamatan_code(area),
                    "kota": area.kota,
                    "opened_at": now,
                    "last_member_at": now,
                    "last_sent_at": None,
                    "sending_until": None,
                    "pending": True,
                }
            )
            for doc in early:
                self._add_member(incident_id, doc["_id"], {**doc["member"], "delivered_individually": True}, doc["at"])
            self._add_member(incident_id, report_id, member, now)
            return SurgeOutcome(
                incident_id,
                opened=True,
                early_members=[{"report_id": d["_id"], "version": d["version"], "area": d["area"]} for d in early],
            )
        raise RuntimeError(f"could not open or join an incident for {key}")  # retried by the work queue

    def _claim_key(self, key: str, incident_id: str, previous: dict[str, Any] | None, now: datetime) -> bool:
        """Make `incident_id` the key's active incident; False if another worker changed the key first."""
        entry = {"incident_id": incident_id, "last_member_at": now}
        if previous is None:
            try:
                self.keys.insert_one({"_id": key, **entry})
            except DuplicateKeyError:
                return False
            return True
        replaced = self.keys.update_one({"_id": key, "incident_id": previous["incident_id"]}, {"$set": entry})
        return replaced.modified_count == 1

    def _join(self, incident_id: str, key: str, report_id: str, member: dict[str, Any], now: datetime) -> None:
        self._add_member(incident_id, report_id, member, now)
        self.keys.update_one({"_id": key, "incident_id": incident_id}, {"$max": {"last_member_at": now}})
        self.incidents.update_one({"_id": incident_id}, {"$max": {"last_member_at": now}, "$set": {"pending": True}})

    def _add_member(self, incident_id: str, report_id: str, member: dict[str, Any], at: datetime) -> None:
        try:
            self.members.insert_one(
                {"_id": report_id, "incident_id": incident_id, "at": at, "member": member, "pending_of": incident_id}
            )
        except DuplicateKeyError:
            pass

    # ---- telling the OPD ---------------------------------------------------------------------------------------

    def claim_update(self, incident_id: str, rule: SurgeRule, now: datetime) -> SendClaim | None:
        """Lease the sending of the incident's next message, if one is due (surge.SurgeRule.update_due): the incident,
        the members to send, the total and whether it is the first message. None when nothing is due or another
        worker is sending."""
        incident = self.incidents.find_one({"_id": incident_id})
        if incident is None:
            return None
        pending = self.members.count_documents({"pending_of": incident_id})
        if not rule.update_due(pending, incident.get("last_sent_at"), now):
            if pending == 0:
                self.incidents.update_one({"_id": incident_id, "pending": True}, {"$set": {"pending": False}})
            return None
        leased = self.incidents.find_one_and_update(
            {
                "_id": incident_id,
                "$or": [{"sending_until": None}, {"sending_until": {"$lt": now}}],
            },
            {"$set": {"sending_until": now + SEND_LEASE}},
            return_document=ReturnDocument.AFTER,
        )
        if leased is None:
            return None
        members = sorted(self.members.find({"pending_of": incident_id}), key=lambda doc: (doc["at"], doc["_id"]))
        total = self.members.count_documents({"incident_id": incident_id})
        return SendClaim(leased, [doc["member"] for doc in members], [doc["_id"] for doc in members], total)

    def sent(self, claim: SendClaim, now: datetime) -> None:
        """The OPD has the claimed message: its members are no longer pending."""
        self.members.update_many({"_id": {"$in": claim.member_ids}}, {"$set": {"pending_of": None}})
        self.incidents.update_one(
            {"_id": claim.incident["_id"]}, {"$set": {"last_sent_at": now, "sending_until": None}}
        )

    def release(self, claim: SendClaim) -> None:
        self.incidents.update_one({"_id": claim.incident["_id"]}, {"$set": {"sending_until": None}})

    def with_pending(self) -> list[str]:
        """Incidents with members the OPD may not have heard of yet (the flush timer's work)."""
        return [doc["_id"] for doc in self.incidents.find({"pending": True}, {"_id": 1})]

    def prune_arrivals(self, before: datetime) -> int:
        """Forget arrivals older than the window: they can no longer open an incident."""
        return self.arrivals.delete_many({"at": {"$lt": before}}).deleted_count

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        return self.incidents.find_one({"_id": incident_id})


@dataclass(frozen=True)
class SendClaim:
    incident: dict[str, Any]
    members: list[dict[str, Any]]
    member_ids: list[str]
    total: int

    @property
    def first(self) -> bool:
        return self.incident.get("last_sent_at") is None


class IncidentLedger(MongoDatabase):
    database = "routing"

    def make_repository(self, db: Database) -> IncidentRepository:
        return IncidentRepository(db)
