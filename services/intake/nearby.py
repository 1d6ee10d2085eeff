"""Open reports near a point (no I/O): the search box, the exact distance, the nearest first.

A citizen about to file sees the open reports near the pin, so a known problem is followed instead of filed twice.

How the store is searched: by a bounding box on `location.lat` / `location.lon`, the exact (haversine) distance
computed here. MongoDB's own geo query (`2dsphere` index, `$nearSphere`) would need GeoJSON points in the documents
and is not understood by the local and test store (devtools/mongo_standin.py: mongomock has no geo operators); a box
on plain numbers works on both, with the index (status, category, location.lat) of `ReportRepository.ensure_indexes`
narrowing it to open reports of the category in the box's latitude band.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jaklapor.vocabulary import FINAL_STATUSES, STATUSES
from services.intake.domain import report_summary

DEFAULT_RADIUS_M = 250
MAX_RADIUS_M = 2000
#: reports answered, nearest first
NEARBY_LIMIT = 20
#: reports read from the box at most; the box of the largest radius (4 km wide) holds fewer open reports in practice
MAX_CANDIDATES = 2000
#: statuses of a report still being handled: what a citizen can follow instead of filing again
OPEN_STATUSES: tuple[str, ...] = tuple(status for status in STATUSES if status not in FINAL_STATUSES)

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
METRES_PER_DEGREE_LAT = math.pi * EARTH_RADIUS_M / 180


@dataclass(frozen=True)
class BoundingBox:
    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float


def bounding_box(lat: float, lon: float, radius_m: float) -> BoundingBox:
    """The smallest latitude/longitude box holding every point within `radius_m` of (lat, lon); a little wider
    than needed, never narrower (the distance is checked exactly afterwards). A box across the ±180° meridian is
    not wrapped: Jakarta is far from it."""
    dlat = radius_m / METRES_PER_DEGREE_LAT
    min_lat, max_lat = max(lat - dlat, -90.0), min(lat + dlat, 90.0)
    # a degree of longitude shrinks with the cosine of the latitude; at the box's edge nearest a pole it is smallest
    widest_lat = abs(lat) + dlat
    if widest_lat >= 90.0:  # the circle holds a pole: every longitude
        return BoundingBox(min_lat, max_lat, -180.0, 180.0)
    dlon = min(radius_m / (METRES_PER_DEGREE_LAT * math.cos(math.radians(widest_lat))), 180.0)
    return BoundingBox(min_lat, max_lat, lon - dlon, lon + dlon)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def nearest(
    reports: Iterable[dict[str, Any]], lat: float, lon: float, radius_m: float, limit: int = NEARBY_LIMIT
) -> list[tuple[dict[str, Any], float]]:
    """The reports within `radius_m` of (lat, lon) with their distance, nearest first (then the newest)."""
    found = []
    for report in reports:
        location = report["location"]
        distance = distance_m(lat, lon, location["lat"], location["lon"])
        if distance <= radius_m:
            found.append((report, distance))
    found.sort(key=lambda item: (item[1], -item[0]["submitted_at"].timestamp()))
    return found[:limit]


def nearby_summaries(
    candidates: Iterable[dict[str, Any]],
    lat: float,
    lon: float,
    radius_m: float,
    base_url: str,
    exclude: str | None = None,
) -> list[dict[str, Any]]:
    """The public summaries of the reports within `radius_m`, nearest first, each with its distance in whole metres
    (`exclude`: a report not to list, the one they are near to)."""
    others = (report for report in candidates if report["_id"] != exclude)
    return [
        {**report_summary(report, base_url), "distance_m": round(distance)}
        for report, distance in nearest(others, lat, lon, radius_m)
    ]
