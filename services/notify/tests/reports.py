"""The events notify receives, built for tests: one report at Blok M, submitted, routed and changing status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jaklapor.events import AreaRef, Location, OpdRef, PhotoRef, ReportRouted, ReportStatusChanged, ReportSubmitted

REPORT = "JK-20261127-000001"
AT = datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)
AREA = AreaRef(code="31.74.07.1001", kelurahan="Melawai", kecamatan="Kebayoran Baru", kota="Jakarta Selatan")


def routed(hop: int = 0) -> ReportRouted:
    return ReportRouted(
        report_id=REPORT,
        version=2,
        occurred_at=AT,
        opd=OpdRef(code="kelurahan-melawai", name="Kelurahan Melawai", level="kelurahan"),
        area=AREA,
        routing_key="kelurahan-melawai.jakarta-selatan.kebayoran-baru.melawai",
        hop=hop,
        category="sampah",
        response_deadline=AT + timedelta(days=3),
    )


def status_changed(to_status: str = "dikerjakan", from_status: str = "menunggu", **kw: Any) -> ReportStatusChanged:
    return ReportStatusChanged(
        report_id=REPORT,
        version=3,
        occurred_at=AT,
        from_status=from_status,
        to_status=to_status,
        actor_opd="kelurahan-melawai",
        note="Petugas menuju lokasi",
        category="sampah",
        submitted_at=AT,
        area=AREA,
        **kw,
    )


def submitted(token_hash: str = "a" * 64, has_contact: bool = True) -> ReportSubmitted:
    return ReportSubmitted(
        report_id=REPORT,
        version=1,
        occurred_at=AT,
        category="sampah",
        description="Sampah menumpuk",
        location=Location(lat=-6.2443, lon=106.8003),
        photos=[PhotoRef(photo_id="p1", url="https://lapor.example/api/v1/photos/p1")],
        submitted_at=AT,
        tracking_token_hash=token_hash,
        has_contact=has_contact,
    )
