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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

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


@dataclass(frozen=True)
class Arrival:
    """A report counted under its surge key (what observe needs of it)."""

    report_id: str
    version: int
    key: str
    routing_key: str
    opd: OpdRef
    category: str
    area: AreaRef
    member: dict[str, Any]

    def arrival_record(self, now: datetime) -> dict[str, Any]:
        return {
            "_id": self.report_id,
            "key": self.key,
            "at": now,
            "version": self.version,
            "area": self.area.model_dump(),
            "member": self.member,
        }


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
        arrival = Arrival(report_id, version, key, routing_key, opd, category, area, member)
        return self.observe_many([arrival], rule, now)[0]

    def observe_many(self, arrivals: Sequence[Arrival], rule: SurgeRule, now: datetime) -> list[SurgeOutcome | None]:
        """observe for a batch of distinct reports, in arrival order, with a few queries for the whole batch: which
        joined before, their arrivals recorded, their keys' incidents and counts. Reports of a key with no active
        incident and too few arrivals (the batch's own included) are delivered on their own, as each would be
        alone; the others are decided one by one, each counting only the arrivals before it."""
        if not arrivals:
            return []
        ids = [arrival.report_id for arrival in arrivals]
        joined = {
            doc["_id"]: doc["incident_id"] for doc in self.members.find({"_id": {"$in": ids}}, {"incident_id": 1})
        }
        new = [arrival for arrival in arrivals if arrival.report_id not in joined]
        if new:
            try:
                self.arrivals.insert_many([arrival.arrival_record(now) for arrival in new], ordered=False)
            except BulkWriteError as exc:
                # counted before (a redelivery); any other failure is raised
                if any(error.get("code") != 11000 for error in exc.details.get("writeErrors", [])):
                    raise
        keys = sorted({arrival.key for arrival in new})
        active = {doc["_id"]: doc for doc in self.keys.find({"_id": {"$in": keys}})} if keys else {}
        counted = [
            key for key in keys if key not in active or not rule.still_active(active[key]["last_member_at"], now)
        ]
        arrived: dict[str, int] = {}
        if counted:
            pipeline: list[dict[str, Any]] = [
                {"$match": {"key": {"$in": counted}, "at": {"$gte": now - rule.window}}},
                {"$group": {"_id": "$key", "n": {"$sum": 1}}},
            ]
            arrived = {doc["_id"]: doc["n"] for doc in self.arrivals.aggregate(pipeline)}
        outcomes: list[SurgeOutcome | None] = []
        decided: set[str] = set()  # keys this batch decided a report of: their entry may have changed since read
        for position, arrival in enumerate(arrivals):
            if arrival.report_id in joined:
                outcomes.append(SurgeOutcome(joined[arrival.report_id]))
                continue
            if arrival.key in counted and not rule.opens(arrived.get(arrival.key, 0)):
                outcomes.append(None)  # fewer than the threshold even with every report of the batch
                continue
            later = {
                a.report_id for a in arrivals[position + 1 :] if a.key == arrival.key and a.report_id not in joined
            }
            known = None if arrival.key in decided else (active.get(arrival.key),)
            outcomes.append(self._decide(arrival, rule, now, known, later))
            decided.add(arrival.key)
        return outcomes

    def _decide(
        self,
        arrival: Arrival,
        rule: SurgeRule,
        now: datetime,
        known: tuple[dict[str, Any] | None] | None,
        later: set[str],
    ) -> SurgeOutcome | None:
        """Join the key's active incident, open one if the arrivals within the window reach the threshold, or None.
        `known`: the key's entry as just read (None: read it); `later`: reports of the batch after this one, whose
        arrivals are recorded already but would not have been yet had each report been handled alone."""
        key, report_id = arrival.key, arrival.report_id
        window: dict[str, Any] = {"key": key, "at": {"$gte": now - rule.window}}
        if later:
            window["_id"] = {"$nin": sorted(later)}
        for _attempt in range(3):
            active = known[0] if known is not None else self.keys.find_one({"_id": key})
            known = None
            if active is not None and rule.still_active(active["last_member_at"], now):
                self._join(active["incident_id"], key, report_id, arrival.member, now)
                return SurgeOutcome(active["incident_id"])
            arrived = self.arrivals.count_documents(window)
            if not rule.opens(arrived):
                return None
            incident_id = uuid.uuid4().hex
            if not self._claim_key(key, incident_id, active, now):
                continue  # another worker opened it meanwhile: join theirs
            early = [doc for doc in self.arrivals.find(window) if doc["_id"] != report_id]
            early.sort(key=lambda doc: (doc["at"], doc["_id"]))
            area = arrival.area
            self.incidents.insert_one(
                {
                    "_id": incident_id,
                    "key": key,
                    "routing_key": arrival.routing_key,
                    "opd": arrival.opd.model_dump(),
                    "category": arrival.category,
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
            self._add_member(incident_id, report_id, arrival.member, now)
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
