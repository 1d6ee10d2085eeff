"""The events routing receives, built for tests: a report submitted at Blok M (or elsewhere) and a hand-over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jaklapor.events import AreaRef, Location, PhotoRef, ReportForwarded, ReportSubmitted
from jaklapor.vocabulary import KOORDINASI

REPORT = "JK-20261128-000001"
NOW = datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC)
SUBMITTED_AT = NOW - timedelta(minutes=5)
BLOK_M = Location(lat=-6.2443, lon=106.8001)
DEPOK = Location(lat=-6.4025, lon=106.7942)
MELAWAI = AreaRef(code="31.74.07.1001", kelurahan="Melawai", kecamatan="Kebayoran Baru", kota="Jakarta Selatan")


def submitted(category: str = "sampah", location: Location = BLOK_M, report_id: str = REPORT) -> ReportSubmitted:
    return ReportSubmitted(
        report_id=report_id,
        version=1,
        occurred_at=SUBMITTED_AT,
        category=category,
        description="Sampah menumpuk",
        location=location,
        photos=[PhotoRef(photo_id="p1", url="https://lapor.example/api/v1/photos/p1")],
        submitted_at=SUBMITTED_AT,
        tracking_token_hash="a" * 64,
    )


def forwarded(target: str, area: AreaRef | None = MELAWAI, **fields: Any) -> ReportForwarded:
    return ReportForwarded(
        report_id=REPORT,
        version=3,
        occurred_at=NOW - timedelta(minutes=1),
        category="sampah",
        description="Sampah menumpuk",
        location=BLOK_M,
        photos=[],
        submitted_at=SUBMITTED_AT,
        area=area,
        from_opd="kelurahan-melawai",
        target_opd=target,
        status=fields.pop("status", KOORDINASI),
        note="Bukan wewenang kami",
        hop=fields.pop("hop", 2),
        **fields,
    )
