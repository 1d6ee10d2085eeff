"""The report aggregate: every change to a report, the history entry recording it and the messages announcing it.

No I/O: a `Report` wraps a stored document and answers each command with a `Change` (or a `NewReport`), which the
repository writes in one atomic update, its messages queued in the report's outbox (cosmicpython's aggregate that
emits events). Photo URLs in the events are built on the gateway's public address, handed in as `photo_base_url`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jaklapor.events import (
    AreaRef,
    ContactRegistered,
    Event,
    Location,
    OpdRef,
    PhotoRef,
    ReportEscalated,
    ReportForwarded,
    ReportMerged,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportUnmerged,
    ReportUnroutable,
)
from jaklapor.reference import slugify
from jaklapor.vocabulary import (
    MENUNGGU,
    NOTE_SUBMITTED,
    WAITING_STATUSES,
    note_escalated,
    note_merged,
    note_overdue_at_top,
    note_routed,
    note_unmerged,
)
from services.intake.domain import (
    DirectoryLike,
    OpdLike,
    ReportState,
    SubmissionRetry,
    TransitionDecision,
    TransitionRequest,
    decide_transition,
    escalation_target,
    history_entry,
    photo_url,
)
from services.intake.duplicates import (
    MergeDecision,
    PrimaryChange,
    UnmergeDecision,
    refuse_if_merged,
)

#: what a change sends: events on the services' exchanges, and the contact hand-over to notify
Message = Event | ContactRegistered


@dataclass(frozen=True)
class Change:
    """One change to a stored report: the fields it sets, its history entry, the messages it sends and what else
    it appends to the document's lists (`pushes`, as MongoDB's $push)."""

    fields: dict[str, Any]
    history: dict[str, Any]
    messages: list[Message] = field(default_factory=list)
    pushes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewReport:
    """A submitted report: the document to store and the messages announcing it."""

    document: dict[str, Any]
    messages: list[Message]


def opd_ref(opd: OpdLike) -> dict[str, str]:
    """An OPD as reports store it and events name it."""
    return OpdRef(code=opd.code, name=opd.name, level=opd.level).model_dump()


def photo_refs(photo_base_url: str, photo_ids: list[str]) -> list[PhotoRef]:
    return [PhotoRef(photo_id=photo_id, url=photo_url(photo_base_url, photo_id)) for photo_id in photo_ids]


class Report:
    """A stored report (its document, without the outbox) and the changes the rules allow it."""

    def __init__(self, document: dict[str, Any], photo_base_url: str) -> None:
        self.document = document
        self.photo_base_url = photo_base_url

    @property
    def id(self) -> str:
        return self.document["_id"]

    @property
    def version(self) -> int:
        return self.document["version"]

    @property
    def status(self) -> str:
        return self.document["status"]

    @property
    def assigned_opd(self) -> dict[str, Any] | None:
        return self.document.get("assigned_opd")

    @property
    def hop(self) -> int:
        return self.document.get("hop", 0)

    @property
    def state(self) -> ReportState:
        """What the transition rules read of the report."""
        return ReportState(
            report_id=self.id,
            status=self.status,
            assigned_opd=(self.assigned_opd or {}).get("code"),
            kota_slug=(self.document.get("area") or {}).get("kota_slug"),
        )

    def _area(self) -> AreaRef | None:
        area = self.document.get("area")
        return AreaRef.model_validate(area) if area else None

    def status_changed(
        self,
        now: datetime,
        to_status: str,
        actor: str,
        note: str,
        *,
        from_status: str | None = None,
        assigned_opd: str | None = None,
        target_opd: str | None = None,
        reason: str | None = None,
        evidence_ids: Sequence[str] = (),
        merged_into: str | None = None,
    ) -> ReportStatusChanged:
        """The report_status_changed announcing this report's next version: every status change (an OPD's, the
        verifier's approval, a citizen's reopen, a merged report following its primary) is announced by this event,
        built here. `from_status` defaults to the current status, `assigned_opd` to the current holder."""
        return ReportStatusChanged(
            report_id=self.id,
            version=self.version + 1,
            occurred_at=now,
            from_status=from_status or self.status,
            to_status=to_status,
            actor_opd=actor,
            note=note,
            category=self.document["category"],
            assigned_opd=assigned_opd or (self.assigned_opd or {}).get("code"),
            target_opd=target_opd,
            reason=reason,
            area=self._area(),
            submitted_at=self.document["submitted_at"],
            evidence_photos=photo_refs(self.photo_base_url, list(evidence_ids)),
            merged_into=merged_into,
        )

    # ---- a citizen submits ---------------------------------------------------------------------------------------

    @staticmethod
    def submit(
        *,
        report_id: str,
        tracking_token_hash: str,
        category: str,
        description: str,
        location: Location,
        photos: list[dict[str, Any]],
        contact_ciphertext: str | None,
        now: datetime,
        photo_base_url: str,
        retry: SubmissionRetry | None = None,
    ) -> NewReport:
        """A new report waiting for routing (`photos`: the stored photos' records); the contact, if the citizen left
        one, goes to notify encrypted and is not part of the report."""
        messages: list[Message] = [
            ReportSubmitted(
                report_id=report_id,
                version=1,
                category=category,
                description=description,
                location=location,
                photos=photo_refs(photo_base_url, [photo["photo_id"] for photo in photos]),
                submitted_at=now,
                tracking_token_hash=tracking_token_hash,
                has_contact=contact_ciphertext is not None,
            )
        ]
        if contact_ciphertext is not None:
            messages.append(
                ContactRegistered(
                    report_id=report_id, tracking_token_hash=tracking_token_hash, contact_ciphertext=contact_ciphertext
                )
            )
        document: dict[str, Any] = {
            "_id": report_id,
            "tracking_token_hash": tracking_token_hash,
            "category": category,
            "description": description,
            "location": location.model_dump(),
            "photos": photos,
            "status": MENUNGGU,
            "version": 1,
            "hop": 0,
            "assigned_opd": None,
            "area": None,
            "submitted_at": now,
            "updated_at": now,
            "history": [history_entry("submitted", now, MENUNGGU, note=NOTE_SUBMITTED)],
            "applied_events": [],
        }
        if retry is not None:
            document["idempotency_key_hash"] = retry.key_hash
            document["idempotency_fingerprint"] = retry.fingerprint
        return NewReport(document, messages)

    # ---- routing answers -------------------------------------------------------------------------------------------

    def apply_routing(self, event: ReportRouted | ReportUnroutable, triage_opd: OpdLike, now: datetime) -> Change:
        """Routing's result: the report goes to the OPD it found, or to the triage desk (`triage_opd`)."""
        area = event.area.model_dump() if event.area else None
        if area is not None:
            area["kota_slug"] = slugify(area["kota"])
        if isinstance(event, ReportRouted):
            opd = event.opd.model_dump()
            fields = {
                "assigned_opd": opd,
                "area": area or self.document.get("area"),
                "assigned_at": event.occurred_at,
                # a forward that was already answered (dikerjakan) has no response clock running
                "response_deadline": event.response_deadline if self.status in WAITING_STATUSES else None,
                "updated_at": now,
            }
            if event.incident_id is not None:  # a member of a surge's incident (services/intake/incidents.py)
                fields["incident_id"] = event.incident_id
            history = history_entry(
                "routed",
                event.occurred_at,
                self.status,
                actor="routing",
                note=note_routed(event.opd.name),
                opd=opd,
                hop=event.hop,
                response_deadline=event.response_deadline,
                # routing's suggested duplicates, shown to the OPD (services/intake/duplicates_api.py)
                possible_duplicates=event.possible_duplicates or None,
                incident_id=event.incident_id,  # None (left out) for a report delivered on its own
            )
            return Change(fields, history)
        opd = opd_ref(triage_opd)
        fields = {
            "assigned_opd": opd,
            "area": area or self.document.get("area"),
            "triage_reason": event.reason,
            "updated_at": now,
        }
        history = history_entry(
            "triage",
            event.occurred_at,
            self.status,
            actor="routing",
            note=event.citizen_note,
            opd=opd,
            reason=event.reason,
        )
        return Change(fields, history)

    # ---- the assigned OPD answers ----------------------------------------------------------------------------------

    def decide_transition(
        self, actor: OpdLike, request: TransitionRequest, directory: DirectoryLike
    ) -> TransitionDecision:
        """The status change `actor` asked for, checked against the rules; TransitionRefused names the problem."""
        refuse_if_merged(self.document, actor.code)  # a merged report moves with its primary only
        return decide_transition(self.state, actor, request, directory)

    def transition(self, decision: TransitionDecision, evidence_ids: list[str], now: datetime) -> Change:
        """Carry out a decided status change, with the ids of its stored evidence photos."""
        version = self.version + 1
        assigned = self.assigned_opd
        # any answer of the assigned OPD stops its response clock; a hand-over starts a new one when routed
        fields: dict[str, Any] = {"status": decision.to_status, "updated_at": now, "response_deadline": None}
        target = decision.target_opd
        if target is not None:
            assigned = opd_ref(target)
            fields.update({"assigned_opd": assigned, "hop": self.hop + 1})
        messages: list[Message] = [
            self.status_changed(
                now,
                decision.to_status,
                decision.actor_opd,
                decision.note,
                from_status=decision.from_status,
                assigned_opd=assigned["code"] if assigned else None,
                target_opd=target.code if target is not None else None,
                reason=decision.reason,
                evidence_ids=evidence_ids,
            )
        ]
        if target is not None:
            messages.append(
                self._forwarded(
                    version,
                    now,
                    decision.actor_opd,
                    target.code,
                    decision.to_status,
                    decision.note,
                    kind=decision.to_status,
                )
            )
        history = history_entry(
            "transition",
            now,
            decision.to_status,
            actor=decision.actor_opd,
            note=decision.note,
            opd=assigned if decision.forwards else None,
            reason=decision.reason,
            photos=evidence_ids or None,
        )
        pushes = {"evidence_photos": {"$each": [{"photo_id": p} for p in evidence_ids]}} if evidence_ids else {}
        return Change(fields, history, messages, pushes)

    # ---- nobody answered in time ---------------------------------------------------------------------------------

    def escalation_target(self, directory: Any) -> Any | None:
        """Where the report goes now that its OPD missed the deadline; None at the top of the chain."""
        missed = self.document["assigned_opd"]
        return escalation_target(directory, missed["code"], self.document["category"])

    def escalate(self, target: OpdLike | None, now: datetime) -> Change:
        """The OPD missed its response deadline: the report moves up to `target`, or, with nobody higher, is marked
        overdue."""
        missed = self.document["assigned_opd"]
        deadline = self.document["response_deadline"]
        if target is None:
            fields: dict[str, Any] = {"response_deadline": None, "escalation_exhausted": True, "updated_at": now}
            history = history_entry(
                "overdue",
                now,
                self.status,
                actor="sistem",
                note=note_overdue_at_top(missed["name"]),
                deadline=deadline,
            )
            return Change(fields, history)
        version = self.version + 1
        ref = opd_ref(target)
        note = note_escalated(missed["name"], target.name)
        forwarded = self._forwarded(version, now, missed["code"], target.code, self.status, note, kind="escalation")
        escalated = ReportEscalated(
            report_id=self.id,
            version=version,
            occurred_at=now,
            category=self.document["category"],
            status=self.status,
            from_opd=missed["code"],
            to_opd=target.code,
            deadline=deadline,
            hop=forwarded.hop,
            area=forwarded.area,
            submitted_at=self.document["submitted_at"],
        )
        fields = {
            "assigned_opd": ref,
            "hop": forwarded.hop,
            "response_deadline": None,
            "escalation_exhausted": False,
            "updated_at": now,
        }
        history = history_entry(
            "escalated",
            now,
            self.status,
            actor="sistem",
            note=note,
            opd=ref,
            from_opd=missed["code"],
            deadline=deadline,
        )
        return Change(fields, history, [escalated, forwarded])

    def _forwarded(
        self, version: int, now: datetime, from_opd: str, target_opd: str, status: str, note: str, kind: str
    ) -> ReportForwarded:
        """The report as the next OPD receives it (through routing), one hop further."""
        return forwarded_event(
            self.document,
            self.photo_base_url,
            area=self._area(),
            version=version,
            at=now,
            hop=self.hop + 1,
            hand_over=HandOver(from_opd, target_opd, status, note, kind),
        )

    # ---- duplicates (rules in services/intake/duplicates.py) -----------------------------------------------------

    def _merge_event_fields(self) -> dict[str, Any]:
        return {
            "category": self.document["category"],
            "area": self._area(),
            "submitted_at": self.document["submitted_at"],
        }

    def merge(self, decision: MergeDecision, now: datetime) -> Change:
        """Merge this report into its primary: it takes the primary's status and evidence, leaves the work lists
        (its response clock stops) and from now on follows the primary."""
        version = self.version + 1
        fields: dict[str, Any] = {
            "merged_into": decision.primary_id,
            "merged_at": now,
            "merged_by": decision.actor_opd,
            "status_before_merge": self.status,
            "followed_version": decision.primary_version,
            "status": decision.status,
            "response_deadline": None,
            "escalation_exhausted": False,
            "updated_at": now,
        }
        note = decision.note or note_merged(decision.primary_id)
        history = history_entry(
            "merged", now, decision.status, actor=decision.actor_opd, note=note, primary_id=decision.primary_id
        )
        merged = ReportMerged(
            report_id=self.id,
            version=version,
            occurred_at=now,
            primary_id=decision.primary_id,
            actor_opd=decision.actor_opd,
            from_status=self.status,
            status=decision.status,
            note=note,
            **self._merge_event_fields(),
        )
        known = {p["photo_id"] for p in self.document.get("evidence_photos") or []}
        evidence = [p for p in decision.primary_evidence if p not in known]
        pushes = {"evidence_photos": {"$each": [{"photo_id": p} for p in evidence]}} if evidence else {}
        return Change(fields, history, [merged], pushes)

    def follow_primary(self, change: PrimaryChange, now: datetime) -> Change:
        """Take one status change of the primary as this report's own (history, event, notifications)."""
        fields: dict[str, Any] = {
            "status": change.status,
            "followed_version": change.version,
            "response_deadline": None,
            "updated_at": now,
        }
        event = self.status_changed(
            now,
            change.status,
            change.actor_opd,
            change.note,
            reason=change.reason,
            evidence_ids=change.evidence_ids,
            merged_into=change.primary_id,
        )
        history = history_entry(
            "transition",
            now,
            change.status,
            actor=change.actor_opd,
            note=change.note,
            reason=change.reason,
            photos=change.evidence_ids or None,
            merged_into=change.primary_id,
        )
        known = {p["photo_id"] for p in self.document.get("evidence_photos") or []}
        evidence = [p for p in change.evidence_ids if p not in known]
        pushes = {"evidence_photos": {"$each": [{"photo_id": p} for p in evidence]}} if evidence else {}
        return Change(fields, history, [event], pushes)

    def unmerge(self, decision: UnmergeDecision, new_response_deadline: datetime | None, now: datetime) -> Change:
        """Undo a merge: the report goes back to the status it had when merged, with the OPD that held it; a waiting
        status gets `new_response_deadline`."""
        version = self.version + 1
        waiting = decision.status in WAITING_STATUSES
        fields: dict[str, Any] = {
            "merged_into": None,
            "unmerged_at": now,
            "status": decision.status,
            "response_deadline": new_response_deadline if waiting else None,
            "escalation_exhausted": False,
            "updated_at": now,
        }
        note = decision.note or note_unmerged(decision.primary_id)
        history = history_entry(
            "unmerged",
            now,
            decision.status,
            actor=decision.actor_opd,
            note=note,
            primary_id=decision.primary_id,
            response_deadline=fields["response_deadline"],
        )
        assigned = self.assigned_opd
        unmerged = ReportUnmerged(
            report_id=self.id,
            version=version,
            occurred_at=now,
            primary_id=decision.primary_id,
            actor_opd=decision.actor_opd,
            from_status=self.status,
            status=decision.status,
            assigned_opd=assigned["code"] if assigned else None,
            note=note,
            **self._merge_event_fields(),
        )
        return Change(fields, history, [unmerged])


@dataclass(frozen=True)
class HandOver:
    """Who hands a report to whom, in which status, with which note, and why (koordinasi, disposisi, escalation)."""

    from_opd: str
    target_opd: str
    status: str
    note: str
    kind: str


def forwarded_event(
    document: Mapping[str, Any],
    photo_base_url: str,
    *,
    area: AreaRef | None,
    version: int,
    at: datetime,
    hop: int,
    hand_over: HandOver,
    event_id: str | None = None,
) -> ReportForwarded:
    """The `report_forwarded` event of a stored report handed over: built here for a live change and for a replay
    (which gives it a stable `event_id`)."""
    return ReportForwarded(
        **({"event_id": event_id} if event_id else {}),
        report_id=str(document["_id"]),
        version=version,
        occurred_at=at,
        category=document["category"],
        description=document["description"],
        location=Location.model_validate(document["location"]),
        photos=photo_refs(photo_base_url, [photo["photo_id"] for photo in document["photos"]]),
        submitted_at=document["submitted_at"],
        area=area,
        from_opd=hand_over.from_opd,
        target_opd=hand_over.target_opd,
        status=hand_over.status,
        note=hand_over.note,
        hop=hop,
        kind=hand_over.kind,
    )
