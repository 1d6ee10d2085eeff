"""A report's life told twice, as intake tells it: the document it stores (fields and history) and the events it and
routing publish. It follows services/intake/service.py: every write bumps the report version by one and appends one
history entry; routing answers a submitted or forwarded event with the version of that event and the hop, and intake
records the id of each routing result it applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from jaklapor.events import (
    AreaRef,
    Event,
    Location,
    OpdRef,
    PhotoRef,
    ReportEscalated,
    ReportForwarded,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportUnroutable,
)
from services.intake.domain import history_entry, photo_url

BASE_URL = "http://intake.test"
T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
MELAWAI = AreaRef(code="31.74.07.1001", kelurahan="Melawai", kecamatan="Kebayoran Baru", kota="Jakarta Selatan")
TEBET = AreaRef(code="31.74.01.1001", kelurahan="Tebet Barat", kecamatan="Tebet", kota="Jakarta Selatan")
LOCATION = Location(lat=-6.2443, lon=106.8003)
RESPONSE_TIME = timedelta(days=3)


def opd(code: str, level: str = "suku-dinas") -> OpdRef:
    return OpdRef(code=code, name=code.replace("-", " ").title(), level=level)


def photo(photo_id: str) -> PhotoRef:
    return PhotoRef(photo_id=photo_id, url=photo_url(BASE_URL, photo_id))


@dataclass
class ReportStory:
    report_id: str
    category: str = "jalan"
    area: AreaRef | None = field(default_factory=lambda: MELAWAI)
    photos: tuple[str, ...] = ("p" * 24,)
    events: list[Event] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    clock: datetime = T0
    trigger_version: int = 1
    hop: int = 0

    def __post_init__(self) -> None:
        self.events.append(
            ReportSubmitted(
                report_id=self.report_id,
                version=1,
                occurred_at=self.clock,
                category=self.category,
                description="Jalan berlubang",
                location=LOCATION,
                photos=[photo(p) for p in self.photos],
                submitted_at=self.clock,
                tracking_token_hash="0" * 64,
            )
        )
        self.report = {
            "_id": self.report_id,
            "tracking_token_hash": "0" * 64,
            "category": self.category,
            "description": "Jalan berlubang",
            "location": LOCATION.model_dump(),
            "photos": [{"photo_id": p, "width": 640, "height": 480, "content_type": "image/jpeg"} for p in self.photos],
            "status": "menunggu",
            "version": 1,
            "hop": 0,
            "assigned_opd": None,
            "area": None,
            "submitted_at": self.clock,
            "history": [history_entry("submitted", self.clock, "menunggu", note="Laporan diterima")],
            "applied_events": [],
        }

    def later(self, **delta: float) -> datetime:
        self.clock = self.clock + timedelta(**delta)
        return self.clock

    def _write(self, entry: dict[str, Any], **changes: Any) -> int:
        self.report["history"].append(entry)
        self.report["version"] += 1
        self.report.update(changes)
        return self.report["version"]

    def _area_doc(self) -> dict[str, Any] | None:
        return {**self.area.model_dump(), "kota_slug": "jakarta-selatan"} if self.area else None

    def _base(self, version: int, at: datetime) -> dict[str, Any]:
        return {"report_id": self.report_id, "version": version, "occurred_at": at, "category": self.category}

    def routed(self, code: str, after: float = 0.5) -> ReportStory:
        at = self.later(seconds=after)
        ref = opd(code)
        event = ReportRouted(
            **self._base(self.trigger_version, at),
            opd=ref,
            area=self.area,
            routing_key=f"{code}.x",
            hop=self.hop,
            response_deadline=at + RESPONSE_TIME,
            status=self.report["status"],
        )
        self.events.append(event)
        entry = history_entry(
            "routed",
            at,
            self.report["status"],
            actor="routing",
            note=f"Diteruskan ke {ref.name}",
            opd=ref.model_dump(),
            hop=self.hop,
            response_deadline=event.response_deadline,
        )
        self.report["applied_events"].append(event.event_id)
        self._write(entry, assigned_opd=ref.model_dump(), area=self._area_doc(), response_deadline=at + RESPONSE_TIME)
        return self

    def triage(self, reason: str = "outside_jakarta", after: float = 0.5) -> ReportStory:
        at = self.later(seconds=after)
        event = ReportUnroutable(
            **self._base(self.trigger_version, at),
            reason=reason,
            detail="Location outside DKI Jakarta",
            area=self.area,
            routing_key="triage.x",
            hop=self.hop,
            status=self.report["status"],
            citizen_note="Perlu diperiksa",
        )
        self.events.append(event)
        ref = opd("triage", "triage").model_dump()
        entry = history_entry(
            "triage", at, self.report["status"], actor="routing", note=event.citizen_note, opd=ref, reason=reason
        )
        self.report["applied_events"].append(event.event_id)
        self._write(entry, assigned_opd=ref, area=self._area_doc(), triage_reason=reason)
        return self

    def transition(
        self,
        status: str,
        *,
        hours: float = 1.0,
        target: str | None = None,
        reason: str | None = None,
        evidence: tuple[str, ...] = (),
    ) -> ReportStory:
        at = self.later(hours=hours)
        actor = self.report["assigned_opd"]["code"]
        version = self.report["version"] + 1
        assigned = opd(target).model_dump() if target else self.report["assigned_opd"]
        self.events.append(
            ReportStatusChanged(
                **self._base(version, at),
                from_status=self.report["status"],
                to_status=status,
                actor_opd=actor,
                note="catatan",
                assigned_opd=assigned["code"],
                target_opd=target,
                reason=reason,
                area=self.area,
                submitted_at=T0,
                evidence_photos=[photo(p) for p in evidence],
            )
        )
        if target is not None:
            self.hop += 1
            self.trigger_version = version
            self.events.append(self._forwarded(version, at, actor, target, status, "catatan", kind=status))
        entry = history_entry(
            "transition",
            at,
            status,
            actor=actor,
            note="catatan",
            opd=assigned if target else None,
            reason=reason,
            photos=list(evidence) or None,
        )
        self._write(entry, status=status, assigned_opd=assigned, hop=self.hop, response_deadline=None)
        return self

    def _forwarded(
        self, version: int, at: datetime, from_opd: str, to: str, status: str, note: str, *, kind: str
    ) -> ReportForwarded:
        return ReportForwarded(
            **self._base(version, at),
            description="Jalan berlubang",
            location=LOCATION,
            photos=[photo(p) for p in self.photos],
            submitted_at=T0,
            area=self.area,
            from_opd=from_opd,
            target_opd=to,
            status=status,
            note=note,
            hop=self.hop,
            kind=kind,
        )

    def escalated(self, to: str, *, minutes: float = 1.0) -> ReportStory:
        deadline = self.report["response_deadline"]
        self.clock = deadline
        at = self.later(minutes=minutes)
        version = self.report["version"] + 1
        from_opd = self.report["assigned_opd"]["code"]
        status = self.report["status"]
        self.hop += 1
        self.trigger_version = version
        note = "Batas waktu terlewati"
        self.events.append(
            ReportEscalated(
                **self._base(version, at),
                status=status,
                from_opd=from_opd,
                to_opd=to,
                deadline=deadline,
                hop=self.hop,
                area=self.area,
                submitted_at=T0,
            )
        )
        self.events.append(self._forwarded(version, at, from_opd, to, status, note, kind="escalation"))
        ref = opd(to).model_dump()
        entry = history_entry(
            "escalated", at, status, actor="sistem", note=note, opd=ref, from_opd=from_opd, deadline=deadline
        )
        self._write(entry, assigned_opd=ref, hop=self.hop, response_deadline=None)
        return self

    def overdue(self) -> ReportStory:
        """The top of the chain missed its deadline too: intake records it, with no event."""
        deadline = self.report["response_deadline"]
        entry = history_entry("overdue", self.later(hours=80), self.report["status"], actor="sistem", deadline=deadline)
        self._write(entry, response_deadline=None, escalation_exhausted=True)
        return self


def report_stories() -> list[ReportStory]:
    """Reports covering every kind of history entry: plain, koordinasi, disposisi, ditolak, triage, escalation,
    overdue at the top, a report routing has not answered yet."""
    done = ReportStory("JK-1").routed("sudin-bina-marga-jakarta-selatan")
    done.transition("dikerjakan", hours=2).transition("selesai", hours=20, evidence=("e" * 24,))
    bounced = ReportStory("JK-2", category="parkir-liar").routed("sudin-bina-marga-jakarta-selatan")
    bounced.transition("koordinasi", hours=0.5, target="sudin-perhubungan-jakarta-selatan")
    bounced.routed("sudin-perhubungan-jakarta-selatan").transition("dikerjakan", hours=3)
    disposed = ReportStory("JK-3", category="pohon", photos=()).routed("pertamanan-hutan-kota")
    disposed.transition("disposisi", hours=1, target="sudin-pertamanan-hutan-kota-jakarta-selatan")
    disposed.routed("sudin-pertamanan-hutan-kota-jakarta-selatan").transition("dikerjakan", hours=1)
    rejected = ReportStory("JK-4", area=TEBET).routed("kelurahan-tebet-barat")
    rejected.transition("ditolak", hours=0.2, reason="duplikat")
    triaged = ReportStory("JK-5", area=None).triage()
    triaged.transition("koordinasi", hours=4, target="sudin-bina-marga-jakarta-selatan").routed(
        "sudin-bina-marga-jakarta-selatan"
    )
    escalated = ReportStory("JK-6", category="penanganan-banjir").routed("kelurahan-melawai")
    escalated.escalated("kecamatan-kebayoran-baru").routed("kecamatan-kebayoran-baru").transition("dikerjakan")
    exhausted = ReportStory("JK-9", category="penanganan-banjir").routed("kota-jakarta-selatan")
    exhausted.escalated("lingkungan-hidup").routed("lingkungan-hidup").overdue()
    unanswered = ReportStory("JK-7")
    return [done, bounced, disposed, rejected, triaged, escalated, exhausted, unanswered]
