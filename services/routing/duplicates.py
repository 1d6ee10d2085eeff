"""Likely duplicates routing suggests to the OPD (no I/O): earlier reports of the same category close by and recent.

Routing keeps its own small index of the reports it routed (category, point, submission time), fed by the
`report_submitted` events it already consumes; it never reads intake's store. When it assigns a new report it names
the earlier reports of the same category within DUPLICATE_RADIUS_M submitted within DUPLICATE_WINDOW_DAYS before it,
nearest first, at most MAX_SUGGESTIONS; the suggestion rides on the OPD message and on report_routed
(`possible_duplicates`), and intake shows the ones still open in the workbench.

Why 150 m and 7 days: a phone's fix in Jakarta's streets is off by 5-50 m (more between towers), and two people
report one pothole, blocked drain or fallen tree from either end of the same street segment, which in Jakarta's
kampung blocks is rarely longer than 100-150 m; wider, and distinct problems of a busy category (sampah, jalan rusak)
on neighbouring streets are suggested as one. A week covers the city's 3-day response target and the work after it:
a problem reported again within a week is most likely the same one still waiting, while an older report of the same
spot is more often a new occurrence (a drain that clogs again). Both are configuration (DUPLICATE_RADIUS_M,
DUPLICATE_WINDOW_DAYS); the index forgets a report once the window passed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

DUPLICATE_RADIUS_M = 150.0
DUPLICATE_WINDOW_DAYS = 7.0
MAX_SUGGESTIONS = 5
EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE_LAT = math.pi * EARTH_RADIUS_M / 180
#: the index files each report under a square cell of this many degrees (~220 m in Jakarta), and a search asks for the
#: few cells its box overlaps: equality on a key any store answers from an index. A range over latitude and longitude
#: is narrowed by an index on one of them at best (a store scanned all the category's reports of the week before)
CELL_DEGREES = 0.002


@dataclass(frozen=True)
class DuplicateTerms:
    radius_m: float = DUPLICATE_RADIUS_M
    window: timedelta = timedelta(days=DUPLICATE_WINDOW_DAYS)


@dataclass(frozen=True)
class Search:
    """What to ask the index for: the box around the point, the category and the submission window."""

    category: str
    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float
    since: datetime
    until: datetime

    @property
    def cells(self) -> list[str]:
        """The index cells the box overlaps (2-4 for the default radius; more for a wider one)."""
        rows = range(math.floor(self.min_lat / CELL_DEGREES), math.floor(self.max_lat / CELL_DEGREES) + 1)
        columns = range(math.floor(self.min_lon / CELL_DEGREES), math.floor(self.max_lon / CELL_DEGREES) + 1)
        return [f"{row}:{column}" for row in rows for column in columns]

    def holds(self, entry: Mapping[str, Any]) -> bool:
        """Whether an index entry is one the index would answer for this search (the query, in Python)."""
        return (
            entry["category"] == self.category
            and self.min_lat <= entry["lat"] <= self.max_lat
            and self.min_lon <= entry["lon"] <= self.max_lon
            and self.since <= entry["submitted_at"] <= self.until
        )


def search_for(category: str, lat: float, lon: float, submitted_at: datetime, terms: DuplicateTerms) -> Search:
    # a little wider than the circle, never narrower (the exact distance is checked afterwards)
    radius = terms.radius_m * 1.01
    dlat = radius / METRES_PER_DEGREE_LAT
    dlon = radius / (METRES_PER_DEGREE_LAT * max(math.cos(math.radians(abs(lat) + dlat)), 1e-6))
    return Search(category, lat - dlat, lat + dlat, lon - dlon, lon + dlon, submitted_at - terms.window, submitted_at)


def cell_of(lat: float, lon: float) -> str:
    """The index cell a point is filed under."""
    return f"{math.floor(lat / CELL_DEGREES)}:{math.floor(lon / CELL_DEGREES)}"


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def index_entry(
    report_id: str, category: str, lat: float, lon: float, submitted_at: datetime, terms: DuplicateTerms
) -> dict[str, Any]:
    """A report as routing's index keeps it, forgotten once its window passed (`expires_at`)."""
    return {
        "_id": report_id,
        "category": category,
        "lat": lat,
        "lon": lon,
        "cell": cell_of(lat, lon),
        "submitted_at": submitted_at,
        "expires_at": submitted_at + terms.window,
    }


def with_earlier(
    stored: list[dict[str, Any]], earlier: Iterable[Mapping[str, Any]], search: Search
) -> list[Mapping[str, Any]]:
    """The candidates of a report of a batch: those the index answered before the batch was recorded, and the
    reports before it in the batch (recorded after it today, when each report is handled alone). An entry
    recorded before keeps its first version, as the index does."""
    known = {doc["_id"] for doc in stored}
    return [*stored, *(entry for entry in earlier if entry["_id"] not in known and search.holds(entry))]


def likely_duplicates(
    candidates: Iterable[Mapping[str, Any]], report_id: str, lat: float, lon: float, terms: DuplicateTerms
) -> list[str]:
    """The candidates (from the index's box) within the radius, nearest first, the report itself left out."""
    found = []
    for candidate in candidates:
        if candidate["_id"] == report_id:
            continue
        distance = distance_m(lat, lon, candidate["lat"], candidate["lon"])
        if distance <= terms.radius_m:
            found.append((distance, str(candidate["_id"])))
    return [report for _distance, report in sorted(found)[:MAX_SUGGESTIONS]]
