"""The kelurahan boundaries for maps in a browser (no I/O): the stats dashboard's and the citizen app's.

`jakarta_kelurahan.geojson` (267 kelurahan, MIT, see ATTRIBUTION.md) is simplified with shapely (Douglas-Peucker,
topology preserved) to about 50 m and its coordinates rounded to 4 decimals (about 11 m): a fraction of the size,
with no visible change at city scale. Each kelurahan also has a representative point, surely inside it, where a map
puts its pin when a citizen picks the kelurahan instead of a spot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shapely.geometry import mapping, shape

TOLERANCE_DEGREES = 0.0005
PRECISION = 4
#: decimals of a representative point (about 0.1 m): rounding cannot move it out of its kelurahan
POINT_PRECISION = 6


def _rounded(coordinates: Any, precision: int) -> Any:
    if isinstance(coordinates, list | tuple) and coordinates and isinstance(coordinates[0], int | float):
        return [round(float(c), precision) for c in coordinates]
    return [_rounded(part, precision) for part in coordinates]


def _drop_repeats(ring: list[list[float]]) -> list[list[float]]:
    kept: list[list[float]] = []
    for point in ring:
        if not kept or point != kept[-1]:
            kept.append(point)
    return kept


def simplify_kelurahan(
    geojson: Mapping[str, Any], tolerance: float = TOLERANCE_DEGREES, precision: int = PRECISION
) -> dict[str, Any]:
    """A FeatureCollection with the same features and properties (code, kelurahan, kecamatan, kota), lighter."""
    features = []
    for feature in geojson["features"]:
        geometry = shape(feature["geometry"])
        simplified = geometry.simplify(tolerance, preserve_topology=True)
        if simplified.is_empty:
            simplified = geometry
        shaped = mapping(simplified)
        coordinates = _rounded(shaped["coordinates"], precision)
        if shaped["type"] == "Polygon":
            coordinates = [_drop_repeats(ring) for ring in coordinates]
        elif shaped["type"] == "MultiPolygon":
            coordinates = [[_drop_repeats(ring) for ring in polygon] for polygon in coordinates]
        properties = feature.get("properties") or {}
        features.append(
            {
                "type": "Feature",
                "properties": {k: properties.get(k) for k in ("code", "kelurahan", "kecamatan", "kota")},
                "geometry": {"type": shaped["type"], "coordinates": coordinates},
            }
        )
    return {"type": "FeatureCollection", "features": features}


def representative_points(
    geojson: Mapping[str, Any], precision: int = POINT_PRECISION
) -> dict[str, tuple[float, float]]:
    """Each kelurahan's code -> (lat, lon) of a point inside its (full-detail) boundary (shapely's
    `representative_point`: inside even where the centroid of a crescent or an archipelago is not)."""
    points = {}
    for feature in geojson["features"]:
        point = shape(feature["geometry"]).representative_point()
        points[feature["properties"]["code"]] = (round(point.y, precision), round(point.x, precision))
    return points
