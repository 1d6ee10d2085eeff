"""Nearby open reports: the search box, the distance, the order, and the repository's query on a MongoDB stand-in."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import mongomock
import pytest

from jaklapor.vocabulary import FINAL_STATUSES, STATUSES
from services.intake.dependencies import ReportRepository
from services.intake.nearby import (
    MAX_RADIUS_M,
    OPEN_STATUSES,
    bounding_box,
    distance_m,
    nearest,
)

BLOK_M = (-6.2443, 106.8003)
MONAS = (-6.175392, 106.827153)
SUBMITTED = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


def test_open_statuses_are_every_status_not_final() -> None:
    assert set(OPEN_STATUSES) == set(STATUSES) - FINAL_STATUSES
    assert "menunggu" in OPEN_STATUSES and "selesai" not in OPEN_STATUSES and "ditolak" not in OPEN_STATUSES


def test_distance_is_the_great_circle_distance() -> None:
    assert distance_m(*BLOK_M, *BLOK_M) == 0
    assert distance_m(0, 0, 0, 1) == pytest.approx(111_195, rel=1e-4)  # a degree along the equator
    # Blok M to Monas: 7.66 km north and 2.98 km east, about 8.22 km
    assert distance_m(*BLOK_M, *MONAS) == pytest.approx(8_220, rel=0.005)
    assert distance_m(*BLOK_M, *MONAS) == pytest.approx(distance_m(*MONAS, *BLOK_M))


@pytest.mark.parametrize("lat", [-6.2, 0.0, 60.0, -80.0])
@pytest.mark.parametrize("radius", [1, 250, MAX_RADIUS_M])
def test_the_box_holds_the_whole_circle(lat: float, radius: int) -> None:
    box = bounding_box(lat, 106.8, radius)
    for bearing in range(0, 360, 5):
        # a point just inside the circle in each direction (small-distance approximation, 1 % inside)
        d = radius * 0.99
        dlat = d * math.cos(math.radians(bearing)) / 111_195
        point_lat = max(-90.0, lat + dlat)
        dlon = d * math.sin(math.radians(bearing)) / (111_195 * max(math.cos(math.radians(point_lat)), 1e-9))
        if distance_m(lat, 106.8, point_lat, 106.8 + dlon) > radius:
            continue
        assert box.min_lat <= point_lat <= box.max_lat
        assert box.min_lon <= 106.8 + dlon <= box.max_lon
    # and no taller than the circle
    assert distance_m(lat, 106.8, box.max_lat, 106.8) == pytest.approx(radius, rel=1e-3)


def report(report_id: str, lat: float, lon: float, minutes: int = 0, **fields: object) -> dict:
    return {
        "_id": report_id,
        "category": "jalan",
        "status": "menunggu",
        "description": "Jalan berlubang",
        "location": {"lat": lat, "lon": lon},
        "area": None,
        "submitted_at": SUBMITTED + timedelta(minutes=minutes),
        "photos": [],
        "tracking_token_hash": report_id.ljust(64, "t"),
        **fields,
    }


def test_nearest_first_within_the_radius_then_the_newest() -> None:
    lat, lon = BLOK_M
    reports = [
        report("far", lat + 0.003, lon),  # ~330 m
        report("near-old", lat + 0.001, lon, minutes=0),  # ~111 m
        report("near-new", lat - 0.001, lon, minutes=5),  # ~111 m, newer
        report("here", lat, lon),
    ]
    found = nearest(reports, lat, lon, 250)
    assert [r["_id"] for r, _ in found] == ["here", "near-new", "near-old"]
    assert [round(d) for _, d in found] == [0, 111, 111]
    assert [r["_id"] for r, _ in nearest(reports, lat, lon, 250, limit=2)] == ["here", "near-new"]


def test_the_repository_finds_open_reports_in_the_box_with_public_fields_only() -> None:
    repository = ReportRepository(mongomock.MongoClient(tz_aware=True)["intake"])
    repository.ensure_indexes()
    lat, lon = BLOK_M
    for stored in (
        report("JK-1", lat, lon),
        report("JK-2", lat + 0.001, lon, category="pohon", status="dikerjakan"),
        report("JK-3", lat, lon, status="selesai"),
        report("JK-4", lat, lon + 0.01),  # ~1.1 km east
        report("JK-5", *MONAS),
    ):
        repository.insert(stored)
    box = bounding_box(lat, lon, 250)
    found = repository.open_reports_in(box, None, 100)
    assert sorted(r["_id"] for r in found) == ["JK-1", "JK-2"]
    assert all("tracking_token_hash" not in r and "history" not in r for r in found)
    assert [r["_id"] for r in repository.open_reports_in(box, "pohon", 100)] == ["JK-2"]
    assert len(repository.open_reports_in(bounding_box(lat, lon, 2000), None, 100)) == 3
    assert len(repository.open_reports_in(bounding_box(lat, lon, 2000), None, 1)) == 1


def test_a_circle_around_a_pole_takes_every_longitude() -> None:
    box = bounding_box(-89.99, 106.8, 2000)
    assert (box.min_lat, box.min_lon, box.max_lon) == (-90.0, -180.0, 180.0)
