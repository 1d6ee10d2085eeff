"""In-memory stand-ins for notify's dependencies, for interface tests of NotifyService without RabbitMQ or MongoDB.

FakeNotifyStore keeps what NotifyRepository keeps for the methods the service calls (timelines numbered per report,
a contact kept once and deleted to a tombstone, citizen deliveries by state); the dispatcher and the publisher record
what they were asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from kombu import Exchange, Queue

from jaklapor.messaging import Outgoing, PublishFailed
from jaklapor.vocabulary import utcnow
from services.notify.dependencies import (
    ACTIVE,
    ACTIVE_STATES,
    CANCELLED,
    OPEN_STATES,
    PENDING,
    Appended,
    TimelineWrite,
)
from services.notify.dispatcher import DeliveryPlan
from services.notify.domain import Notification


class FakeNotifyStore:
    def __init__(self) -> None:
        self.reports: dict[str, dict[str, Any]] = {}
        self.timeline: dict[str, tuple[str, int, dict[str, Any]]] = {}  # event id -> (report, seq, entry)
        self.contacts: dict[str, dict[str, Any]] = {}
        self.citizen_deliveries: dict[str, list[str]] = {}  # report -> the state of each delivery to its citizen
        self.batches: list[int] = []  # the size of each append_many

    def ping(self) -> bool:
        return True

    # ---- timeline ------------------------------------------------------------------------------------------------

    def append(
        self, report_id: str, entry: dict[str, Any], set_on_report: dict[str, Any] | None = None
    ) -> Appended | None:
        report = self.reports.setdefault(report_id, {"seq": 0})
        report["seq"] += 1  # a redelivered event takes a number too (a harmless gap)
        report.update(set_on_report or {})
        if entry["event_id"] in self.timeline:
            return None
        self.timeline[entry["event_id"]] = (report_id, report["seq"], entry)
        return Appended(report["seq"], report.get("streams", 0) > 0, report.get("has_contact"))

    def append_many(self, writes: Sequence[TimelineWrite]) -> list[Appended | None]:
        """As the repository: each entry as if appended one by one, in batch order."""
        self.batches.append(len(writes))
        return [self.append(*write) for write in writes]

    def entries_after(self, report_id: str, seq: int) -> list[tuple[int, dict[str, Any]]]:
        found = [(n, entry) for report, n, entry in self.timeline.values() if report == report_id and n > seq]
        return sorted(found, key=lambda item: item[0])

    def report_for_token(self, token_hash: str) -> str | None:
        return next((rid for rid, report in self.reports.items() if report.get("token_hash") == token_hash), None)

    def is_final(self, report_id: str) -> bool:
        return self.reports.get(report_id, {}).get("final_at") is not None

    def unmark_final(self, report_id: str) -> None:
        for document in (self.reports.get(report_id), self.contacts.get(report_id)):
            if document is not None:
                document["final_at"] = None

    def mark_final(self, report_id: str, at: datetime) -> None:
        for document in (self.reports.get(report_id), self.contacts.get(report_id)):
            if document is not None and document.get("final_at") is None:
                document["final_at"] = at

    def stream_opened(self, report_id: str) -> None:
        report = self.reports.setdefault(report_id, {"seq": 0})
        report["streams"] = report.get("streams", 0) + 1

    def stream_closed(self, report_id: str) -> None:
        report = self.reports[report_id]
        report["streams"] = max(report.get("streams", 0) - 1, 0)

    # ---- contacts ------------------------------------------------------------------------------------------------

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
        contact_id = report_id if supporter_hash is None else f"{report_id}/{supporter_hash[:32]}"
        if contact_id in self.contacts:
            return False
        self.contacts[contact_id] = {
            "_id": contact_id,
            **({"report_id": report_id, "supporter": True} if supporter_hash is not None else {}),
            "ciphertext": ciphertext,
            "token_hash": token_hash,
            "state": ACTIVE,
            "registered_at": utcnow(),
            "final_at": self.reports.get(report_id, {}).get("final_at"),
            "kind": kind,
            "unsubscribe_hash": unsubscribe_hash,
            "unsubscribe_ciphertext": unsubscribe_ciphertext,
        }
        return True

    def contact_by_unsubscribe_hash(self, unsubscribe_hash: str) -> dict[str, Any] | None:
        for contact in self.contacts.values():
            if contact.get("unsubscribe_hash") == unsubscribe_hash:
                return {key: value for key, value in contact.items() if key != "ciphertext"}
        return None

    def remove_contact(self, report_id: str, reason: str) -> bool:
        contact = self.contacts.get(report_id)
        if contact is None or contact.get("state") not in ACTIVE_STATES:
            return False
        for secret in ("ciphertext", "kind", "unsubscribe_ciphertext"):
            contact.pop(secret, None)
        contact.update(state=reason, removed_at=utcnow())
        return True

    def contacts_final_before(self, cutoff: datetime, limit: int = 500) -> list[dict[str, Any]]:
        due = [
            {"_id": contact["_id"], "final_at": contact["final_at"]}
            for contact in self.contacts.values()
            if contact.get("state") in ACTIVE_STATES and contact.get("final_at") is not None
            if contact["final_at"] <= cutoff
        ]
        return due[:limit]

    # ---- deliveries to the citizen -------------------------------------------------------------------------------

    def open_citizen_deliveries(self, report_id: str) -> int:
        return sum(state in OPEN_STATES for state in self.citizen_deliveries.get(report_id, []))

    def cancel_citizen_deliveries(self, report_id: str, reason: str) -> int:
        states = self.citizen_deliveries.get(report_id, [])
        cancelled = [i for i, state in enumerate(states) if state == PENDING]
        for i in cancelled:
            states[i] = CANCELLED
        return len(cancelled)


class FakeDispatcher:
    """The Dispatcher as the service uses it: OPD names, and the notifications it is asked to deliver."""

    def __init__(self, opd_names: dict[str, str] | None = None) -> None:
        self.opd_names = opd_names or {}
        self.enqueued: list[tuple[list[Notification], bool | None]] = []
        self.batches: list[int] = []  # the number of events of each enqueue_many

    def enqueue(
        self, notifications: list[Notification], has_contact: bool | None = None, supporter_contacts: bool | None = None
    ) -> int:
        self.enqueued.append((list(notifications), has_contact))
        return len(notifications)

    def enqueue_many(self, plans: Sequence[DeliveryPlan]) -> int:
        self.batches.append(len(plans))
        return sum(self.enqueue(*plan) for plan in plans)


class FakePublisher:
    """ConfirmedPublisher.publish and publish_many: keeps each message as (exchange name, routing key, message id,
    body); `failure` fails every publish."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, str, dict[str, Any]]] = []
        self.failure: PublishFailed | None = None
        self.calls = 0  # publishes that reached the broker (a batch is one)

    def publish(
        self,
        body: dict[str, Any],
        *,
        exchange: Exchange | str,
        routing_key: str,
        message_id: str,
        declare: Iterable[Exchange | Queue] = (),
        headers: dict[str, Any] | None = None,
    ) -> None:
        name = exchange.name if isinstance(exchange, Exchange) else exchange
        self.publish_many([Outgoing(body, name, routing_key, message_id, headers or {})], declare=declare)

    def publish_many(self, messages: Sequence[Outgoing], *, declare: Iterable[Exchange | Queue] = ()) -> None:
        if not messages:
            return
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        for message in messages:
            self.published.append((message.exchange, message.routing_key, message.message_id, message.body))
