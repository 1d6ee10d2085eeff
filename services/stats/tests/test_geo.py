"""The dashboard's kelurahan map: the boundary file simplified, every kelurahan kept."""

from __future__ import annotations

import json

from shapely.geometry import shape

from jaklapor.reference import load_kelurahan_geojson
from services.stats.geo import PRECISION, TOLERANCE_DEGREES, simplify_kelurahan


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
