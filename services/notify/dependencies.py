"""Notify's dependency providers: its store (timelines, contacts, deliveries); the live streams' hub is the kernel's
(jaklapor/live.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from pymongo import ASCENDING, ReturnDocument, UpdateMany
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from jaklapor.mongo import MongoDatabase, ping
from jaklapor.vocabulary import utcnow

ACTIVE = "active"
# contacts stored before subscriptions had a state are active
ACTIVE_STATES = [ACTIVE, None]
PENDING, SENDING, SENT, DEAD, CANCELLED = "pending", "sending", "sent", "dead", "cancelled"
OPEN_STATES = (PENDING, SENDING)


#: a supporter's subscription (someone who follows a report instead of filing it again) is kept beside the reporter's,
#: under `<report id>/<part of its supporter hash>`; the reporter's is under the report id
SUPPORTER_SEPARATOR = "/"


def supporter_contact_id(report_id: str, supporter_hash: str) -> str:
    return f"{report_id}{SUPPORTER_SEPARATOR}{supporter_hash[:32]}"


def _citizen_deliveries_of(contact_id: str) -> dict[str, Any]:
    """The deliveries to one citizen contact: a supporter's carry its contact id, the reporter's none."""
    if SUPPORTER_SEPARATOR in contact_id:
        return {"contact_id": contact_id}
    return {"report_id": contact_id, "contact_id": None}


def report_fields(token_hash: str, has_contact: bool | None) -> dict[str, Any]:
    """What notify keeps of a report: the tracking token's hash (to find it from a stream) and whether it has a
    contact (None: not known from this event)."""
    fields: dict[str, Any] = {"token_hash": token_hash}
    if has_contact is not None:
        fields["has_contact"] = has_contact
    return fields


class Appended(NamedTuple):
    seq: int
    watched: bool
    has_contact: bool | None
    # a supporter of the report left a contact (services/notify/dispatcher.py tells them too)
    supporter_contacts: bool = False


class TimelineWrite(NamedTuple):
    """One event's timeline entry to store, and what its event tells of the report (`report_fields`)."""

    report_id: str
    entry: dict[str, Any]
    set_on_report: dict[str, Any] | None = None


DUPLICATE_KEY = 11000


def by_report(writes: Sequence[TimelineWrite]) -> dict[str, list[int]]:
    """The positions of each report's writes, in batch order (a report's entries are numbered in that order)."""
    groups: dict[str, list[int]] = {}
    for index, write in enumerate(writes):
        groups.setdefault(write.report_id, []).append(index)
    return groups


def merged_fields(sets: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """The report fields of several writes as one `$set`: a later write's value wins, as written one by one."""
    merged: dict[str, Any] = {}
    for fields in sets:
        merged.update(fields or {})
    return merged


def numbered(before: Mapping[str, Any] | None, sets: Sequence[dict[str, Any] | None]) -> list[Appended]:
    """What each of a report's writes would have seen, written one by one after the report was `before` (None: not
    there yet): consecutive numbers after its `seq`, and the report's fields as of that write (its own included)."""
    report = dict(before or {})
    seq = int(report.get("seq", 0))
    out: list[Appended] = []
    for fields in sets:
        seq += 1
        report.update(fields or {})
        out.append(
            Appended(
                seq, report.get("streams", 0) > 0, report.get("has_contact"), bool(report.get("supporter_contacts"))
            )
        )
    return out


def duplicate_positions(error: BulkWriteError) -> set[int]:
    """The positions an unordered insert_many found there already; re-raises for any other failure (the batch is
    then handled again, message by message)."""
    details = error.details or {}
    write_errors = details.get("writeErrors") or []
    if details.get("writeConcernErrors") or any(e.get("code") != DUPLICATE_KEY for e in write_errors):
        raise error
    return {int(e["index"]) for e in write_errors}


class NotifyRepository:
    """Per report: the token hash that opens its stream, its public timeline, and (only here) the contact, encrypted;
    and the deliveries of notifications, one document per message to send, with its retry state."""

    def __init__(self, db: Database) -> None:
        self.reports = db["reports"]
        self.timeline = db["timeline"]
        self.contacts = db["contacts"]
        self.deliveries = db["deliveries"]

    def ensure_indexes(self) -> None:
        self.reports.create_index("token_hash", unique=True, sparse=True)
        self.timeline.create_index([("report_id", ASCENDING), ("seq", ASCENDING)])
        self.contacts.create_index("unsubscribe_hash", unique=True, sparse=True)
        self.contacts.create_index([("state", ASCENDING), ("final_at", ASCENDING)])
        self.deliveries.create_index([("state", ASCENDING), ("next_attempt_at", ASCENDING)])
        self.deliveries.create_index([("report_id", ASCENDING), ("audience", ASCENDING), ("state", ASCENDING)])
        self.contacts.create_index("report_id", sparse=True)

    def ping(self) -> bool:
        return ping(self.reports.database)

    def report(self, report_id: str) -> dict[str, Any] | None:
        return self.reports.find_one({"_id": report_id}, {"has_contact": 1, "final_at": 1, "supporter_contacts": 1})

    def is_final(self, report_id: str) -> bool:
        """Whether the report reached selesai or ditolak (marked after its final entry is stored)."""
        return self.reports.find_one({"_id": report_id, "final_at": {"$ne": None}}, {"_id": 1}) is not None

    def report_for_token(self, token_hash: str) -> str | None:
        found = self.reports.find_one({"token_hash": token_hash}, {"_id": 1})
        return found["_id"] if found else None

    def append(
        self, report_id: str, entry: dict[str, Any], set_on_report: dict[str, Any] | None = None
    ) -> Appended | None:
        """Add an entry once (keyed by event id): its sequence number, whether a live stream follows the report
        (anywhere) and whether the reporter left a contact (None if the submission is not known yet); None if the
        entry was already there. `set_on_report` is written to the report in the same write."""
        return self.append_many([TimelineWrite(report_id, entry, set_on_report)])[0]

    def append_many(self, writes: Sequence[TimelineWrite]) -> list[Appended | None]:
        """`append` for a batch of entries, each as if appended one by one in batch order (None: already there).

        One numbering write per report (`$inc` by its number of entries, with the report fields of all of them), then
        one insert of every entry, no read first: a redelivered event takes a sequence number and then finds its
        entry there, which leaves a gap in the numbers; readers ask for entries after a number, so gaps are harmless.
        The report as it was before the write tells what each entry would have seen (its number, watched, contact)."""
        numbers: dict[int, Appended] = {}
        reports = by_report(writes)
        # a report whose first entry here is its submission is most likely new to notify: all of those are registered
        # in one insert (numbered from 1, as the upsert would); one already there is numbered by the write below
        new = [report_id for report_id, positions in reports.items() if writes[positions[0]].set_on_report]
        registrations = [
            {
                "_id": report_id,
                "seq": len(reports[report_id]),
                **merged_fields([writes[i].set_on_report for i in reports[report_id]]),
            }
            for report_id in new
        ]
        known = self._insert_new(self.reports, registrations)
        for position, report_id in enumerate(new):
            if position not in known:
                sets = [writes[i].set_on_report for i in reports[report_id]]
                numbers.update(zip(reports[report_id], numbered(None, sets), strict=True))
        known_reports = {
            report_id: positions for report_id, positions in reports.items() if positions[0] not in numbers
        }
        numbers.update(self._number_known(writes, known_reports))
        documents = [
            {"_id": write.entry["event_id"], "report_id": write.report_id, "seq": numbers[i].seq, "entry": write.entry}
            for i, write in enumerate(writes)
        ]
        there = self._insert_new(self.timeline, documents)
        return [None if i in there else numbers[i] for i in range(len(writes))]

    def _number_known(self, writes: Sequence[TimelineWrite], reports: dict[str, list[int]]) -> dict[int, Appended]:
        """Number the writes of reports registered before this batch: one read of them all, then one write that
        numbers each on the condition that nothing numbering reads has changed since (another worker's entries, a
        stream opened, a contact). If any report changed meanwhile, or is not there, each report is numbered on its
        own, atomically; the numbers a write of the first round took stay unused (gaps are harmless, see above)."""
        if not reports:
            return {}
        if len(reports) == 1:  # one report: its one atomic write below is the fewest
            return self._number_each(writes, reports)
        fields_read = {"seq": 1, "streams": 1, "has_contact": 1, "supporter_contacts": 1}
        before = {report["_id"]: report for report in self.reports.find({"_id": {"$in": list(reports)}}, fields_read)}
        sets = {report_id: [writes[i].set_on_report for i in positions] for report_id, positions in reports.items()}
        if len(before) == len(reports):
            # keyed by _id, so each matches one report (mongomock, the unit tests' store, cannot bulk an UpdateOne)
            updates = [
                UpdateMany(
                    {"_id": report_id, **{field: before[report_id].get(field) for field in fields_read}},
                    self._numbering(sets[report_id]),
                )
                for report_id in reports
            ]
            if self.reports.bulk_write(updates, ordered=False).matched_count == len(updates):
                numbers: dict[int, Appended] = {}
                for report_id, positions in reports.items():
                    numbers.update(zip(positions, numbered(before[report_id], sets[report_id]), strict=True))
                return numbers
        return self._number_each(writes, reports)

    def _number_each(self, writes: Sequence[TimelineWrite], reports: dict[str, list[int]]) -> dict[int, Appended]:
        """Number each report's writes in one atomic write of its own (registering a report not there yet)."""
        numbers: dict[int, Appended] = {}
        for report_id, positions in reports.items():
            sets = [writes[i].set_on_report for i in positions]
            report = self.reports.find_one_and_update(
                {"_id": report_id}, self._numbering(sets), upsert=True, return_document=ReturnDocument.BEFORE
            )
            numbers.update(zip(positions, numbered(report, sets), strict=True))
        return numbers

    @staticmethod
    def _numbering(sets: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
        """The write that takes a report's next numbers for these entries, with their report fields."""
        update: dict[str, Any] = {"$inc": {"seq": len(sets)}}
        fields = merged_fields(sets)
        if fields:
            update["$set"] = fields
        return update

    @staticmethod
    def _insert_new(collection: Any, documents: list[dict[str, Any]]) -> set[int]:
        """Insert documents keyed by a stable id in one unordered write; the positions of those there already."""
        if not documents:
            return set()
        try:
            collection.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            return duplicate_positions(exc)
        return set()

    def stream_opened(self, report_id: str) -> None:
        self.reports.update_one({"_id": report_id}, {"$inc": {"streams": 1}})

    def stream_closed(self, report_id: str) -> None:
        self.reports.update_one({"_id": report_id, "streams": {"$gt": 0}}, {"$inc": {"streams": -1}})

    def entries_after(self, report_id: str, seq: int) -> list[tuple[int, dict[str, Any]]]:
        cursor = self.timeline.find({"report_id": report_id, "seq": {"$gt": seq}}).sort("seq", ASCENDING)
        return [(doc["seq"], doc["entry"]) for doc in cursor]

    # ---- contacts: stored as they arrived (Fernet ciphertext), decrypted only to send ------------------------------

    def store_contact(
        self,
        report_id: str,
        token_hash: str,
        ciphertext: str,
        kind: str | None = None,
        unsubscribe_hash: str | None = None,
        unsubscribe_ciphertext: str | None = None,
        supporter_hash: str | None = None,
    ) -> bool:
        """Keep a contact once: a redelivered hand-over never replaces it, nor brings back one that was deleted
        (unsubscribed or past retention; the document stays as a tombstone without the contact). True if new."""
        report = self.reports.find_one({"_id": report_id}, {"final_at": 1}) or {}
        document: dict[str, Any] = {
            "ciphertext": ciphertext,
            "token_hash": token_hash,
            "state": ACTIVE,
            "registered_at": utcnow(),
            "final_at": report.get("final_at"),
        }
        if kind is not None:
            document["kind"] = kind
        if unsubscribe_hash is not None:
            document["unsubscribe_hash"] = unsubscribe_hash
            document["unsubscribe_ciphertext"] = unsubscribe_ciphertext
        contact_id = report_id
        if supporter_hash is not None:
            contact_id = supporter_contact_id(report_id, supporter_hash)
            document.update(report_id=report_id, supporter=True)
        result = self.contacts.update_one({"_id": contact_id}, {"$setOnInsert": document}, upsert=True)
        if supporter_hash is not None:
            # the report's events now have someone to tell even if its reporter left no contact
            self.reports.update_one({"_id": report_id}, {"$set": {"supporter_contacts": True}}, upsert=True)
        return result.upserted_id is not None

    def supporter_contacts(self, report_id: str) -> list[dict[str, Any]]:
        """The active subscriptions of the report's supporters (without their ciphertext)."""
        cursor = self.contacts.find(
            {"report_id": report_id, "supporter": True, "state": {"$in": ACTIVE_STATES}}, {"ciphertext": 0}
        )
        return list(cursor.sort("_id", ASCENDING))

    def contact(self, report_id: str) -> dict[str, Any] | None:
        return self.contacts.find_one({"_id": report_id})

    def ensure_unsubscribe_token(
        self, report_id: str, unsubscribe_hash: str, unsubscribe_ciphertext: str
    ) -> str | None:
        """Give a contact stored before unsubscribe links existed its token (once); returns the token's ciphertext in
        effect (this one, or one another process set first)."""
        self.contacts.update_one(
            {"_id": report_id, "unsubscribe_hash": None, "state": {"$in": ACTIVE_STATES}},
            {"$set": {"unsubscribe_hash": unsubscribe_hash, "unsubscribe_ciphertext": unsubscribe_ciphertext}},
        )
        found = self.contacts.find_one({"_id": report_id}, {"unsubscribe_ciphertext": 1})
        return (found or {}).get("unsubscribe_ciphertext")

    def contact_by_unsubscribe_hash(self, unsubscribe_hash: str) -> dict[str, Any] | None:
        return self.contacts.find_one({"unsubscribe_hash": unsubscribe_hash}, {"ciphertext": 0})

    def remove_contact(self, report_id: str, reason: str) -> bool:
        """Delete the contact (and the unsubscribe token's ciphertext), keep a tombstone; True if it was there."""
        result = self.contacts.update_one(
            {"_id": report_id, "state": {"$in": ACTIVE_STATES}},
            {
                "$set": {"state": reason, "removed_at": utcnow()},
                "$unset": {"ciphertext": "", "kind": "", "unsubscribe_ciphertext": ""},
            },
        )
        return result.modified_count == 1

    def mark_final(self, report_id: str, at: datetime) -> None:
        """The report reached selesai or ditolak: its contact's retention clock starts (once)."""
        self.reports.update_one({"_id": report_id, "final_at": None}, {"$set": {"final_at": at}})
        self.contacts.update_one({"_id": report_id, "final_at": None}, {"$set": {"final_at": at}})
        self.contacts.update_many({"report_id": report_id, "final_at": None}, {"$set": {"final_at": at}})

    def unmark_final(self, report_id: str) -> None:
        """The report left selesai (its citizen reopened it): the retention clock stops until it is final again."""
        self.reports.update_one({"_id": report_id}, {"$set": {"final_at": None}})
        self.contacts.update_one({"_id": report_id}, {"$set": {"final_at": None}})

    def contacts_final_before(self, cutoff: datetime, limit: int = 500) -> list[dict[str, Any]]:
        cursor = self.contacts.find(
            {"state": {"$in": ACTIVE_STATES}, "final_at": {"$ne": None, "$lte": cutoff}}, {"_id": 1, "final_at": 1}
        )
        return list(cursor.limit(limit))

    # ---- deliveries ---------------------------------------------------------------------------------------------

    def enqueue_delivery(self, document: dict[str, Any]) -> bool:
        """Insert a delivery once (its id is derived from the event): False if it was already there."""
        return self.enqueue_deliveries([document]) == 1

    def enqueue_deliveries(self, documents: list[dict[str, Any]]) -> int:
        """Insert deliveries once each, in one write: how many were new (the others were there already)."""
        return len(documents) - len(self._insert_new(self.deliveries, documents))

    def claim_delivery(
        self, now: datetime, busy_destinations: list[str], lease_until: datetime, owner: str
    ) -> dict[str, Any] | None:
        """Take the most overdue pending delivery whose destination is not busy, for one attempt (a lease: if this
        process dies mid-attempt, the delivery becomes due again when the lease runs out)."""
        query: dict[str, Any] = {"state": PENDING, "next_attempt_at": {"$lte": now}}
        if busy_destinations:
            query["destination"] = {"$nin": busy_destinations}
        return self.deliveries.find_one_and_update(
            query,
            {"$set": {"state": SENDING, "leased_until": lease_until, "lease_owner": owner}, "$inc": {"attempts": 1}},
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    def settle_delivery(self, delivery_id: str, owner: str, changes: dict[str, Any]) -> bool:
        """Record the outcome of an attempt, if this process still holds the lease."""
        result = self.deliveries.update_one(
            {"_id": delivery_id, "state": SENDING, "lease_owner": owner},
            {"$set": {**changes, "leased_until": None, "lease_owner": None}},
        )
        return result.modified_count == 1

    def release_expired_leases(self, now: datetime) -> int:
        result = self.deliveries.update_many(
            {"state": SENDING, "leased_until": {"$lte": now}},
            {"$set": {"state": PENDING, "next_attempt_at": now, "leased_until": None, "lease_owner": None}},
        )
        return result.modified_count

    def open_citizen_deliveries(self, contact_id: str) -> int:
        """The deliveries still to go to one citizen contact (the reporter's: the report id; a supporter's: its id)."""
        return self.deliveries.count_documents(
            {**_citizen_deliveries_of(contact_id), "audience": "citizen", "state": {"$in": list(OPEN_STATES)}}
        )

    def cancel_citizen_deliveries(self, contact_id: str, reason: str) -> int:
        result = self.deliveries.update_many(
            {**_citizen_deliveries_of(contact_id), "audience": "citizen", "state": PENDING},
            {"$set": {"state": CANCELLED, "last_error": reason, "finished_at": utcnow()}},
        )
        return result.modified_count

    def delivery_counts(self) -> dict[str, int]:
        return {state: self.deliveries.count_documents({"state": state}) for state in (PENDING, SENDING, DEAD)}


class NotifyStore(MongoDatabase):
    database = "notify"

    def make_repository(self, db: Database) -> NotifyRepository:
        return NotifyRepository(db)
