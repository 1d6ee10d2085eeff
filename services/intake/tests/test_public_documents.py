"""The documents the gateway builds once for clients: the areas tree and the map's boundaries."""

from __future__ import annotations

import gzip
import json

from shapely.geometry import Point, shape

from jaklapor.reference import load_areas, load_kelurahan_geojson
from services.intake.public_documents import CachedDocument, reference_documents

DOCUMENTS = reference_documents(load_areas(), load_kelurahan_geojson())


def test_the_tree_holds_every_area_once_by_name_with_a_point_inside_each_kelurahan() -> None:
    tree = json.loads(DOCUMENTS.areas.body)
    areas = load_areas()
    assert [kota["name"] for kota in tree["kota"]] == sorted(k.name for k in areas.kota.values())
    kecamatan = [kc for kota in tree["kota"] for kc in kota["kecamatan"]]
    kelurahan = [kl for kc in kecamatan for kl in kc["kelurahan"]]
    assert len(kecamatan) == len(areas.kecamatan) and len(kelurahan) == len(areas.kelurahan) == 267
    assert {kl["code"] for kl in kelurahan} == set(areas.kelurahan)
    for kc in kecamatan:
        names = [kl["name"] for kl in kc["kelurahan"]]
        assert names == sorted(names, key=str.casefold)
    boundaries = {f["properties"]["code"]: shape(f["geometry"]) for f in load_kelurahan_geojson()["features"]}
    for kl in kelurahan:
        assert set(kl) == {"code", "name", "point"}
        assert boundaries[kl["code"]].contains(Point(kl["point"]["lon"], kl["point"]["lat"])), kl["name"]
    selatan = next(kota for kota in tree["kota"] if kota["name"] == "Jakarta Selatan")
    kebayoran = next(kc for kc in selatan["kecamatan"] if kc["name"] == "Kebayoran Baru")
    assert any(kl["name"] == "Melawai" and kl["code"] == "31.74.07.1001" for kl in kebayoran["kelurahan"])


def test_the_boundaries_are_the_simplified_feature_collection() -> None:
    geojson = json.loads(DOCUMENTS.kelurahan_geojson.body)
    assert geojson["type"] == "FeatureCollection" and len(geojson["features"]) == 267
    assert DOCUMENTS.kelurahan_geojson.content_type == "application/geo+json"
    assert set(geojson["features"][0]["properties"]) == {"code", "kelurahan", "kecamatan", "kota"}


def test_a_cached_document_is_compressed_and_named_by_its_content() -> None:
    document = CachedDocument.of({"a": "Ä" * 1000})
    assert gzip.decompress(document.gzipped) == document.body and len(document.gzipped) < len(document.body)
    assert json.loads(document.body) == {"a": "Ä" * 1000}
    assert CachedDocument.of({"a": "Ä" * 1000}) == document  # the same content, the same bytes and ETag
    assert CachedDocument.of({"a": "b"}).etag != document.etag
