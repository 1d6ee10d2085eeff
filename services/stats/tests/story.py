"""A report's life told twice, as the services tell it: the events intake and routing publish, and the report document
intake stores (with its history). Used to prove that statistics folded from events equal those rebuilt from the store.

It follows services/intake/service.py: every write bumps the report version by one and appends one history entry;
routing answers a submitted or forwarded event with the version of that event and the hop.
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
    ReportEscalated,
    ReportForwarded,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportUnroutable,
)
from jaklapor.reference import load_categories
from services.intake.domain import history_entry
from services.stats.domain import deadline_rule

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
MELAWAI = AreaRef(code="31.74.07.1001", kelurahan="Melawai", kecamatan="Kebayoran Baru", kota="Jakarta Selatan")
# routing's rule: each category's own target (penanganan-banjir: 1 day), else the city's 3 days
DEADLINE_RULE = deadline_rule({code: c.response_days for code, c in load_categories().items()})
TEBET = AreaRef(code="31.74.01.1001", kelurahan="Tebet Barat", kecamatan="Tebet", kota="Jakarta Selatan")


def opd(code: str, level: str = "suku-dinas") -> OpdRef:
    return OpdRef(code=code, name=code.replace("-", " ").title(), level=level)


@dataclass
class Story:
    report_id: str
    category: str = "jalan"
    area: AreaRef | None = field(default_factory=lambda: MELAWAI)
    start: datetime = T0
    events: list[Event] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    clock: datetime = T0
    trigger_version: int = 1
    hop: int = 0

    def __post_init__(self) -> None:
        self.clock = self.start
        submitted = ReportSubmitted(
            report_id=self.report_id,
            version=1,
            occurred_at=self.clock,
            category=self.category,
            description="Jalan berlubang",
            location=Location(lat=-6.2443, lon=106.8003),
            photos=[],
            submitted_at=self.clock,
            tracking_token_hash="0" * 64,
        )
        self.events.append(submitted)
        self.report = {
            "_id": self.report_id,
            "category": self.category,
            "description": "Jalan berlubang",
            "location": {"lat": -6.2443, "lon": 106.8003},
            "status": "menunggu",
            "version": 1,
            "hop": 0,
            "assigned_opd": None,
            "area": None,
            "submitted_at": self.clock,
            "response_deadline": None,
            "history": [history_entry("submitted", self.clock, "menunggu", note="Laporan diterima")],
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

    def routed(self, code: str, after: float = 0.5) -> Story:
        at = self.later(seconds=after)
        deadline = DEADLINE_RULE(self.category, at)
        ref = opd(code)
        self.events.append(
            ReportRouted(
                report_id=self.report_id,
                version=self.trigger_version,
                occurred_at=at,
                opd=ref,
                area=self.area,
                routing_key=f"{code}.x",
                hop=self.hop,
                category=self.category,
                response_deadline=deadline,
            )
        )
        entry = history_entry(
            "routed", at, self.report["status"], actor="routing", note=f"Diteruskan ke {ref.name}", opd=ref.model_dump()
        )
        # intake keeps the deadline on the report while the OPD has not answered, not in the history entry
        self._write(entry, assigned_opd=ref.model_dump(), area=self._area_doc(), response_deadline=deadline)
        return self

    def triage(self, reason: str = "outside_jakarta", after: float = 0.5) -> Story:
        at = self.later(seconds=after)
        self.events.append(
            ReportUnroutable(
                report_id=self.report_id,
                version=self.trigger_version,
                occurred_at=at,
                reason=reason,
                detail="Lokasi di luar DKI Jakarta",
                area=self.area,
                routing_key="triage.x",
                hop=self.hop,
                category=self.category,
            )
        )
        ref = opd("triage", "triage")
        entry = history_entry(
            "triage", at, self.report["status"], actor="routing", note="Perlu diperiksa", opd=ref.model_dump()
        )
        entry["reason"] = reason
        self._write(entry, assigned_opd=ref.model_dump(), area=self._area_doc(), triage_reason=reason)
        return self

    def transition(
        self, status: str, *, hours: float = 1.0, target: str | None = None, reason: str | None = None
    ) -> Story:
        at = self.later(hours=hours)
        actor = self.report["assigned_opd"]["code"]
        from_status = self.report["status"]
        version = self.report["version"] + 1
        forwards = target is not None
        assigned = opd(target).model_dump() if forwards else self.report["assigned_opd"]
        self.events.append(
            ReportStatusChanged(
                report_id=self.report_id,
                version=version,
                occurred_at=at,
                from_status=from_status,
                to_status=status,
                actor_opd=actor,
                note="catatan",
                category=self.category,
                assigned_opd=assigned["code"],
                target_opd=target,
                reason=reason,
                area=self.area,
                submitted_at=self.start,
            )
        )
        if forwards:
            self.hop += 1
            self.trigger_version = version
            self.events.append(
                ReportForwarded(
                    report_id=self.report_id,
                    version=version,
                    occurred_at=at,
                    category=self.category,
                    description="Jalan berlubang",
                    location=Location(lat=-6.2443, lon=106.8003),
                    photos=[],
                    submitted_at=self.start,
                    area=self.area,
                    from_opd=actor,
                    target_opd=target,
                    status=status,
                    note="catatan",
                    hop=self.hop,
                    kind=status,
                )
            )
        entry = history_entry(
            "transition", at, status, actor=actor, note="catatan", opd=assigned if forwards else None, reason=reason
        )
        self._write(entry, status=status, assigned_opd=assigned, hop=self.hop)
        return self

    def escalated(self, to: str, *, minutes: float = 1.0) -> Story:
        deadline = self.report["response_deadline"]
        self.clock = deadline
        at = self.later(minutes=minutes)
        version = self.report["version"] + 1
        from_opd = self.report["assigned_opd"]["code"]
        self.hop += 1
        self.trigger_version = version
        self.events.append(
            ReportEscalated(
                report_id=self.report_id,
                version=version,
                occurred_at=at,
                category=self.category,
                status=self.report["status"],
                from_opd=from_opd,
                to_opd=to,
                deadline=deadline,
                hop=self.hop,
                area=self.area,
                submitted_at=self.start,
            )
        )
        self.events.append(
            ReportForwarded(
                report_id=self.report_id,
                version=version,
                occurred_at=at,
                category=self.category,
                description="Jalan berlubang",
                location=Location(lat=-6.2443, lon=106.8003),
                photos=[],
                submitted_at=self.start,
                area=self.area,
                from_opd=from_opd,
                target_opd=to,
                status=self.report["status"],
                note="Batas waktu terlewati",
                hop=self.hop,
                kind="escalation",
            )
        )
        ref = opd(to).model_dump()
        entry = history_entry(
            "escalated",
            at,
            self.report["status"],
            actor="sistem",
            note="Batas waktu terlewati",
            opd=ref,
            from_opd=from_opd,
            deadline=deadline,
        )
        self._write(entry, assigned_opd=ref, hop=self.hop, response_deadline=None)
        return self

    def overdue(self) -> Story:
        """The top of the chain missed its deadline too: intake records it, with no event."""
        deadline = self.report["response_deadline"]
        entry = history_entry("overdue", self.later(hours=80), self.report["status"], actor="sistem", deadline=deadline)
        self._write(entry, response_deadline=None, escalation_exhausted=True)
        return self


def stories() -> list[Story]:
    """A set of reports covering every path: plain, koordinasi, disposisi, ditolak, triage, escalation, reopen."""
    done = Story("JK-1").routed("sudin-bina-marga-jakarta-selatan")
    done.transition("dikerjakan", hours=2).transition("selesai", hours=20)
    bounced = Story("JK-2", category="parkir-liar").routed("sudin-bina-marga-jakarta-selatan")
    bounced.transition("koordinasi", hours=0.5, target="sudin-perhubungan-jakarta-selatan")
    bounced.routed("sudin-perhubungan-jakarta-selatan").transition("dikerjakan", hours=3).transition("selesai", hours=5)
    disposed = Story("JK-3", category="pohon").routed("pertamanan-hutan-kota")
    disposed.transition("disposisi", hours=1, target="sudin-pertamanan-hutan-kota-jakarta-selatan")
    disposed.routed("sudin-pertamanan-hutan-kota-jakarta-selatan").transition("dikerjakan", hours=1)
    rejected = Story("JK-4", area=TEBET).routed("kelurahan-tebet-barat")
    rejected.transition("ditolak", hours=0.2, reason="duplikat")
    triaged = Story("JK-5", area=None).triage()
    triaged.transition("koordinasi", hours=4, target="sudin-bina-marga-jakarta-selatan").routed(
        "sudin-bina-marga-jakarta-selatan"
    )
    escalated = Story("JK-6", category="penanganan-banjir").routed("kelurahan-melawai")
    escalated.escalated("kecamatan-kebayoran-baru").routed("kecamatan-kebayoran-baru").transition("dikerjakan")
    exhausted = Story("JK-9", category="penanganan-banjir").routed("kota-jakarta-selatan")
    exhausted.escalated("lingkungan-hidup").routed("lingkungan-hidup").overdue()
    waiting = Story("JK-7", start=T0 + timedelta(days=1)).routed("sudin-bina-marga-jakarta-selatan")
    reopened = Story("JK-8").routed("sudin-bina-marga-jakarta-selatan")
    reopened.transition("dikerjakan").transition("selesai", hours=2)
    # a reopen: the status machine may allow it later (verification failed); statistics already handle it
    reopened.report["history"].append(
        history_entry("transition", reopened.later(hours=5), "dikerjakan", actor="sudin-bina-marga-jakarta-selatan")
    )
    reopened.report["version"] += 1
    reopened.events.append(
        ReportStatusChanged(
            report_id="JK-8",
            version=reopened.report["version"],
            occurred_at=reopened.clock,
            from_status="selesai",
            to_status="dikerjakan",
            actor_opd="sudin-bina-marga-jakarta-selatan",
            note="Verifikasi gagal",
            category="jalan",
            area=MELAWAI,
            submitted_at=T0,
        )
    )
    reopened.report["status"] = "dikerjakan"
    reopened.transition("selesai", hours=3)
    return [done, bounced, disposed, rejected, triaged, escalated, waiting, reopened, exhausted]
