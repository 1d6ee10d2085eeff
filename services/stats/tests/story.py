"""A report's life as the events intake and routing publish about it: the contract stats folds, live and in a
rebuild (intake replays the same events on request).

Every change intake makes bumps the report version by one; routing answers a submitted or forwarded event with the
version of that event and the hop.
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
from services.stats.domain import deadline_rule, fold

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
MELAWAI = AreaRef(code="31.74.07.1001", kelurahan="Melawai", kecamatan="Kebayoran Baru", kota="Jakarta Selatan")
# routing's rule: each category's own target (penanganan-banjir: 1 day), else the city's 3 days
DEADLINE_RULE = deadline_rule({code: c.response_days for code, c in load_categories().items()})
TEBET = AreaRef(code="31.74.01.1001", kelurahan="Tebet Barat", kecamatan="Tebet", kota="Jakarta Selatan")
LOCATION = Location(lat=-6.2443, lon=106.8003)


def opd(code: str, level: str = "suku-dinas") -> OpdRef:
    return OpdRef(code=code, name=code.replace("-", " ").title(), level=level)


@dataclass
class Story:
    report_id: str
    category: str = "jalan"
    area: AreaRef | None = field(default_factory=lambda: MELAWAI)
    start: datetime = T0
    events: list[Event] = field(default_factory=list)
    clock: datetime = T0
    version: int = 1
    trigger_version: int = 1
    hop: int = 0
    status: str = "menunggu"
    assigned: str | None = None
    deadline: datetime | None = None

    def __post_init__(self) -> None:
        self.clock = self.start
        self.events.append(
            ReportSubmitted(
                report_id=self.report_id,
                version=1,
                occurred_at=self.clock,
                category=self.category,
                description="Jalan berlubang",
                location=LOCATION,
                photos=[],
                submitted_at=self.clock,
                tracking_token_hash="0" * 64,
            )
        )

    def projection(self) -> dict[str, Any]:
        """The statistics projection of the story's events, folded as stats folds them."""
        projection = fold(self.events)
        assert projection is not None
        return projection

    def later(self, **delta: float) -> datetime:
        self.clock = self.clock + timedelta(**delta)
        return self.clock

    def routed(self, code: str, after: float = 0.5) -> Story:
        at = self.later(seconds=after)
        self.deadline = DEADLINE_RULE(self.category, at)
        self.events.append(
            ReportRouted(
                report_id=self.report_id,
                version=self.trigger_version,
                occurred_at=at,
                opd=opd(code),
                area=self.area,
                routing_key=f"{code}.x",
                hop=self.hop,
                category=self.category,
                response_deadline=self.deadline,
            )
        )
        self.version += 1
        self.assigned = code
        return self

    def triage(self, reason: str = "outside_jakarta", after: float = 0.5) -> Story:
        self.events.append(
            ReportUnroutable(
                report_id=self.report_id,
                version=self.trigger_version,
                occurred_at=self.later(seconds=after),
                reason=reason,
                detail="Lokasi di luar DKI Jakarta",
                area=self.area,
                routing_key="triage.x",
                hop=self.hop,
                category=self.category,
            )
        )
        self.version += 1
        self.assigned = "triage"
        return self

    def transition(
        self, status: str, *, hours: float = 1.0, target: str | None = None, reason: str | None = None, note: str = ""
    ) -> Story:
        at = self.later(hours=hours)
        actor = self.assigned or ""
        self.version += 1
        self.events.append(
            ReportStatusChanged(
                report_id=self.report_id,
                version=self.version,
                occurred_at=at,
                from_status=self.status,
                to_status=status,
                actor_opd=actor,
                note=note or "catatan",
                category=self.category,
                assigned_opd=target or actor,
                target_opd=target,
                reason=reason,
                area=self.area,
                submitted_at=self.start,
            )
        )
        if target is not None:
            self._forwarded(at, actor, target, status, kind=status)
        self.status = status
        return self

    def escalated(self, to: str, *, minutes: float = 1.0) -> Story:
        deadline = self.deadline
        assert deadline is not None, "escalation needs a routed hop with a deadline"
        self.clock = deadline
        at = self.later(minutes=minutes)
        self.version += 1
        self.events.append(
            ReportEscalated(
                report_id=self.report_id,
                version=self.version,
                occurred_at=at,
                category=self.category,
                status=self.status,
                from_opd=self.assigned or "",
                to_opd=to,
                deadline=deadline,
                hop=self.hop + 1,
                area=self.area,
                submitted_at=self.start,
            )
        )
        self._forwarded(at, self.assigned or "", to, self.status, kind="escalation", note="Batas waktu terlewati")
        return self

    def _forwarded(
        self, at: datetime, from_opd: str, to: str, status: str, *, kind: str, note: str = "catatan"
    ) -> None:
        self.hop += 1
        self.trigger_version = self.version
        self.events.append(
            ReportForwarded(
                report_id=self.report_id,
                version=self.version,
                occurred_at=at,
                category=self.category,
                description="Jalan berlubang",
                location=LOCATION,
                photos=[],
                submitted_at=self.start,
                area=self.area,
                from_opd=from_opd,
                target_opd=to,
                status=status,
                note=note,
                hop=self.hop,
                kind=kind,
            )
        )
        self.assigned = to
        self.deadline = None


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
    # the top of the chain misses its deadline too: intake records it, with no event
    exhausted = Story("JK-9", category="penanganan-banjir").routed("kota-jakarta-selatan")
    exhausted.escalated("lingkungan-hidup").routed("lingkungan-hidup")
    waiting = Story("JK-7", start=T0 + timedelta(days=1)).routed("sudin-bina-marga-jakarta-selatan")
    reopened = Story("JK-8").routed("sudin-bina-marga-jakarta-selatan")
    reopened.transition("dikerjakan").transition("selesai", hours=2)
    # a reopen: the status machine may allow it later (verification failed); statistics already handle it
    reopened.transition("dikerjakan", hours=5, note="Verifikasi gagal").transition("selesai", hours=3)
    return [done, bounced, disposed, rejected, triaged, escalated, waiting, reopened, exhausted]
