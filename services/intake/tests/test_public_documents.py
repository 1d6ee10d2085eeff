"""The documents the gateway builds once for clients: the areas tree and the map's boundaries."""

from __future__ import annotations

import gzip
import json
import re

import pytest
from shapely.geometry import Point, shape

from jaklapor.reference import load_areas, load_categories, load_kelurahan_geojson
from jaklapor.settings import InvalidSettings
from services.intake.domain import REJECTION_REASONS
from services.intake.public_documents import (
    OSM_TILE_URL,
    CachedDocument,
    app_config,
    categories_document,
    check_tile_url,
    reference_documents,
)
from services.intake.schemas import SubmissionForm, normalize_contact
from services.intake.settings import IntakeSettings

DOCUMENTS = reference_documents(load_areas(), load_kelurahan_geojson())
SECRETS = {"OPD_KEY_SECRET": "s", "TOKEN_SECRET": "t", "CONTACT_KEY": "k", "MAP_TILE_URL": ""}


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


def test_the_categories_come_with_their_group_and_the_groups_in_order() -> None:
    categories = load_categories()
    document = categories_document(categories)
    assert [c["code"] for c in document["categories"]] == list(categories)
    jalan = document["categories"][0]
    assert jalan == {
        "code": "jalan",
        "name": "Jalan",
        "name_en": "Roads",
        "description": categories["jalan"].description,
        "group": "Jalan & Transportasi",
        "response_days": 3,
        "visibility": "public",
        "location_precision": "exact",
    }
    groups = document["groups"]
    assert groups[0]["name"] == "Jalan & Transportasi" and "jalan" in groups[0]["categories"]
    assert sorted(code for group in groups for code in group["categories"]) == sorted(categories)
    by_code = {c["code"]: c for c in document["categories"]}
    assert all(by_code[code]["group"] == group["name"] for group in groups for code in group["categories"])


def test_the_app_config_gives_the_limits_the_server_checks() -> None:
    config = app_config(OSM_TILE_URL, "© OpenStreetMap contributors", 32 * 1024 * 1024)
    report = config["report"]
    assert report["description_max_chars"] == SubmissionForm.model_fields["description"].metadata[-1].max_length
    assert report["max_photos"] == 3 and report["max_photo_bytes"] == 10 * 1024 * 1024
    assert report["photo_types"] == ["image/jpeg", "image/png", "image/webp"]
    assert report["stored_photo_max_side"] == 2000 and report["max_request_bytes"] == 32 * 1024 * 1024
    contact = config["contact"]
    assert contact["max_chars"] == 254 and contact["kinds"] == ["email", "phone"]
    assert re.fullmatch(contact["phone_pattern"], contact["phone_example"])
    assert normalize_contact(contact["phone_example"]) == contact["phone_example"]
    assert config["nearby"] == {"default_radius_m": 250, "max_radius_m": 2000, "limit": 20}
    assert config["map"]["tile_url"] == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert config["map"]["tile_attribution"] == "© OpenStreetMap contributors"
    assert config["map"]["boundaries_url"] == "/api/v1/areas/kelurahan.geojson"
    assert config["stats"] == {"url": None}
    assert [reason["code"] for reason in config["rejection_reasons"]] == list(REJECTION_REASONS)
    assert app_config("", "", 1, stats_url="https://stats.example/")["stats"] == {"url": "https://stats.example"}


def test_no_tile_url_means_no_tiles_and_no_attribution() -> None:
    tiles = app_config("", "© OpenStreetMap contributors", 1)["map"]
    assert tiles["tile_url"] is None and tiles["tile_attribution"] is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("osm", OSM_TILE_URL),
        ("", ""),
        ("https://tiles.example/{z}/{x}/{y}.png", "https://tiles.example/{z}/{x}/{y}.png"),
        ("http://127.0.0.1:8080/{z}/{x}/{y}.webp", "http://127.0.0.1:8080/{z}/{x}/{y}.webp"),
    ],
)
def test_tile_urls(given: str, expected: str) -> None:
    assert check_tile_url(given) == expected


@pytest.mark.parametrize("bad", ["tiles.example/{z}/{x}/{y}.png", "https://tiles.example/{z}/{x}.png", "none"])
def test_a_bad_tile_url_stops_the_service_at_start(bad: str) -> None:
    with pytest.raises(InvalidSettings, match="MAP_TILE_URL"):
        IntakeSettings.from_config({**SECRETS, "MAP_TILE_URL": bad})
    assert IntakeSettings.from_config(SECRETS).map_tile_url == ""  # no value (an empty one included): no tiles
    assert IntakeSettings.from_config({**SECRETS, "MAP_TILE_URL": "osm"}).map_tile_url == OSM_TILE_URL
