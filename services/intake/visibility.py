"""What of a report may leave intake publicly (no I/O): the rule every public output applies, in one place.

Public outputs are the view of a report by its number, the nearby list, the open-data exports and every Open311 GET.
- A report of a **private** category (reference data `visibility: private`: reports about people, such as social
  welfare or civil documents) appears in none of them; its citizen reads it with the tracking token, its OPDs in
  their work list, and statistics count it.
- The **location** of a public report is published as precisely as its category allows (`location_precision`):
  exact, or rounded to 3 decimal places (about 110 m) for categories about what people do where they live or work.
  Filters on a location (nearby, Open311's lat/long/radius) compare the published point, so a narrowing radius
  cannot find the exact one. The tracking token's holder and the OPDs see the exact point.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jaklapor.reference import Category


def private_category_codes(categories: Mapping[str, Category]) -> list[str]:
    """The codes of the categories whose reports are never published (what a public query excludes)."""
    return [code for code, category in categories.items() if not category.is_public]


def public_category_codes(categories: Mapping[str, Category]) -> list[str]:
    return [code for code, category in categories.items() if category.is_public]


def is_published(report: Mapping[str, Any], categories: Mapping[str, Category]) -> bool:
    """Whether anyone may see the report (a category no longer in the reference data is not published)."""
    category = categories.get(report.get("category", ""))
    return category is not None and category.is_public


def published_location(location: Mapping[str, float], category: Category | None) -> dict[str, float]:
    """The point a public output shows of a report of `category`."""
    decimals = category.public_decimals if category is not None else 3
    if decimals is None:
        return {"lat": location["lat"], "lon": location["lon"]}
    return {"lat": round(location["lat"], decimals), "lon": round(location["lon"], decimals)}


def for_public(report: dict[str, Any], categories: Mapping[str, Category]) -> dict[str, Any] | None:
    """The report as public outputs may read it (its location as published), or None when it is not published."""
    if not is_published(report, categories):
        return None
    if "location" not in report:
        return report
    return {**report, "location": published_location(report["location"], categories.get(report["category"]))}


def only_public(reports: Iterable[dict[str, Any]], categories: Mapping[str, Category]) -> list[dict[str, Any]]:
    return [shown for report in reports if (shown := for_public(report, categories)) is not None]
