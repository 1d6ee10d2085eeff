"""The shared vocabulary: each word defined once and consistent with itself."""

from datetime import UTC, datetime, timedelta, timezone
from typing import get_args

from jaklapor import vocabulary as v
from jaklapor.events import ReportStatusChanged


def test_the_status_literal_of_the_contracts_is_the_vocabulary():
    assert (
        v.STATUSES == get_args(v.Status) == ("menunggu", "koordinasi", "disposisi", "dikerjakan", "selesai", "ditolak")
    )
    assert get_args(ReportStatusChanged.model_fields["to_status"].annotation) == v.STATUSES


def test_every_status_has_its_rules_and_words():
    assert set(v.ALLOWED_TRANSITIONS) == set(v.STATUSES)
    assert set(v.STATUS_LABELS) == set(v.STATUS_LABELS_EN) == set(v.STATUSES)
    assert {"selesai", "ditolak"} == v.FINAL_STATUSES
    assert v.MENUNGGU not in v.TARGET_STATUSES
    assert v.WAITING_STATUSES.isdisjoint(v.FINAL_STATUSES)
    assert v.FORWARDING_STATUSES <= v.WAITING_STATUSES


def test_response_deadline_uses_the_category_days_then_the_city_default_then_the_override():
    assigned = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    assert v.response_deadline(assigned, 7) == assigned + timedelta(days=7)
    assert v.response_deadline(assigned, None) == assigned + timedelta(days=v.DEFAULT_RESPONSE_DAYS)
    assert v.response_deadline(assigned, 7, override_seconds=30) == assigned + timedelta(seconds=30)


def test_moments_are_written_in_utc_with_z_and_read_in_jakarta_time():
    late_evening_utc = datetime(2026, 11, 30, 18, 30)  # naive UTC, as a store without tz_aware returns it
    assert v.iso(late_evening_utc) == "2026-11-30T18:30:00Z"
    assert v.iso(datetime(2026, 12, 1, 1, 30, tzinfo=timezone(timedelta(hours=7)))) == "2026-11-30T18:30:00Z"
    assert v.iso(None) is None
    assert v.jakarta_day(late_evening_utc) == "2026-12-01"
    assert v.jakarta_time(late_evening_utc) == "01-12-2026 01:30 WIB"
