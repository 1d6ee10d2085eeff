"""The kelurahan map for browsers: the boundary file simplified, every kelurahan kept; a point inside each."""

from __future__ import annotations

import json

from shapely.geometry import Point, shape

from jaklapor.reference import load_kelurahan_geojson
from jaklapor.reference.geo import PRECISION, TOLERANCE_DEGREES, representative_points, simplify_kelurahan


def test_every_kelurahan_is_kept_with_its_names_and_a_valid_shape() -> None:
    original = load_kelurahan_geojson()
    simplified = simplify_kelurahan(original)
    assert len(simplified["features"]) == len(original["features"]) == 267
    for before, after in zip(original["features"], simplified["features"], strict=True):
        assert after["properties"] == {k: before["properties"][k] for k in ("code", "kelurahan", "kecamatan", "kota")}
        geometry = shape(after["geometry"])
        assert not geometry.is_empty
        # no point of the outline moves far: about the tolerance (tiny islets of Kepulauan Seribu may shrink away)
        assert geometry.hausdorff_distance(shape(before["geometry"])) <= 2 * TOLERANCE_DEGREES + 10**-PRECISION


def test_it_is_much_lighter_and_rounded() -> None:
    original = load_kelurahan_geojson()
    simplified = simplify_kelurahan(original)
    small = json.dumps(simplified, separators=(",", ":"))
    assert len(small) < 0.5 * len(json.dumps(original, separators=(",", ":")))
    ring = simplified["features"][0]["geometry"]["coordinates"][0][0]
    assert all(len(str(c).split(".")[1]) <= PRECISION for point in ring for c in point)


def test_each_kelurahan_has_a_point_inside_it() -> None:
    original = load_kelurahan_geojson()
    points = representative_points(original)
    assert len(points) == 267
    for feature in original["features"]:
        lat, lon = points[feature["properties"]["code"]]
        assert shape(feature["geometry"]).contains(Point(lon, lat)), feature["properties"]["kelurahan"]
