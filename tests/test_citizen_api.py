"""What the citizen web app (and any other client) reads besides its own reports, against the running system: open
reports nearby, a report by its number, the areas and their map, the categories by group, the client's limits, and
the live stream across origins. Each answer is checked against the gateway's own OpenAPI document."""

from __future__ import annotations

import random
from typing import Any

import pytest
import requests
from openapi_schema_validator import OAS30Validator

from tests.photo_fixtures import jpeg_with_gps
from tests.system import RunningSystem, client_headers, wait_for

pytestmark = pytest.mark.e2e

# a street in Cakung, Jakarta Timur, moved a little each run so other tests' reports are not in the way
RNG = random.Random()
POINT = (-6.1900 + RNG.uniform(-0.002, 0.002), 106.9400 + RNG.uniform(-0.002, 0.002))
PARK_OPD_CATEGORY = "pohon"


@pytest.fixture(scope="module")
def openapi(system: RunningSystem) -> dict[str, Any]:
    return requests.get(system.url("intake", "/openapi.json"), timeout=10).json()


def conforms(openapi: dict[str, Any], schema_name: str, body: Any) -> None:
    """`body` is what the OpenAPI document promises under components/schemas/`schema_name`."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": openapi["components"]}
    OAS30Validator(schema).validate(body)


def file_report(system: RunningSystem, lat: float, lon: float, category: str, description: str, **extra: str) -> dict:
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": category, "description": description, "lat": lat, "lon": lon, **extra},
        files={"photo": ("p.jpg", jpeg_with_gps(lat, lon), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def routed(system: RunningSystem, receipt: dict) -> dict:
    def view() -> dict | None:
        body = requests.get(system.url("intake", f"/api/v1/reports/{receipt['tracking_token']}"), timeout=5).json()
        return body if body["responsible_opd"] else None

    return wait_for(view, 20, message=f"{receipt['report_id']} routed")


def nearby(system: RunningSystem, **params: Any) -> requests.Response:
    return requests.get(system.url("intake", "/api/v1/reports/nearby"), params=params, timeout=10)


def test_nearby_shows_open_reports_of_the_category_nearest_first(system: RunningSystem, openapi: dict) -> None:
    lat, lon = POINT
    here = file_report(system, lat, lon, "jalan", "Jalan berlubang di sini", contact="warga.nearby@example.org")
    close = file_report(system, lat + 0.0009, lon, "jalan", "Jalan amblas 100 m ke utara")
    tree = file_report(system, lat, lon + 0.0005, PARK_OPD_CATEGORY, "Pohon tumbang")
    far = file_report(system, lat + 0.009, lon, "jalan", "Jalan rusak 1 km ke utara")
    done = file_report(system, lat, lon + 0.0001, "jalan", "Sudah diperbaiki")
    view = routed(system, done)
    opd = view["responsible_opd"]["code"]
    transitions = system.url("intake", f"/api/v1/opd/reports/{done['report_id']}/transitions")
    rejection = {"status": "ditolak", "note": "Duplikat", "reason": "duplikat"}
    answer = requests.post(transitions, json=rejection, headers=system.opd_headers(opd), timeout=10)
    assert answer.status_code == 200, answer.text
    routed(system, here)

    response = nearby(system, lat=lat, lon=lon, category="jalan")
    assert response.status_code == 200
    body = response.json()
    conforms(openapi, "NearbyReports", body)
    ids = [report["report_id"] for report in body["reports"]]
    assert ids[:2] == [here["report_id"], close["report_id"]]
    assert tree["report_id"] not in ids and far["report_id"] not in ids and done["report_id"] not in ids
    first = body["reports"][0]
    assert first["distance_m"] == 0 and first["area"]["kota"] == "Jakarta Timur"
    assert first["photos"][0].startswith(system.url("intake", "/api/v1/photos/"))
    text = response.text
    assert here["tracking_token"] not in text and "warga.nearby" not in text and "token" not in text
    assert 90 <= body["reports"][1]["distance_m"] <= 110

    wide = nearby(system, lat=lat, lon=lon, radius_m=2000).json()["reports"]
    wide_ids = [report["report_id"] for report in wide]
    assert {here["report_id"], tree["report_id"], far["report_id"]} <= set(wide_ids)
    assert done["report_id"] not in wide_ids
    distances = [report["distance_m"] for report in wide]
    assert distances == sorted(distances)


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"lon": 106.9}, 400, "lat"),
        ({"lat": -6.19, "lon": 106.9, "radius_m": 5000}, 400, "radius_m"),
        ({"lat": "utara", "lon": 106.9}, 400, "lat"),
        ({"lat": -6.19, "lon": 106.9, "category": "bukan-kategori"}, 422, "category"),
    ],
)
def test_a_bad_nearby_query_is_named(system: RunningSystem, params: dict, status: int, field: str) -> None:
    response = nearby(system, **params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field


def test_anyone_follows_a_report_by_its_number(system: RunningSystem, openapi: dict) -> None:
    lat, lon = POINT
    receipt = file_report(system, lat, lon - 0.001, "jalan", "Lubang besar", contact="warga.public@example.org")
    routed(system, receipt)
    response = requests.get(system.url("intake", f"/api/v1/reports/public/{receipt['report_id']}"), timeout=10)
    assert response.status_code == 200
    view = response.json()
    conforms(openapi, "PublicReport", view)
    assert view["report_id"] == receipt["report_id"]
    assert [entry["kind"] for entry in view["history"]][:2] == ["submitted", "routed"]
    assert view["responsible_opd"]["code"] and view["area"]["kota"] == "Jakarta Timur"
    assert "stream_url" not in view
    assert receipt["tracking_token"] not in response.text and "warga.public" not in response.text

    unknown = requests.get(system.url("intake", "/api/v1/reports/public/JK-20000101-999999"), timeout=10)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "report_not_found")
    malformed = requests.get(system.url("intake", "/api/v1/reports/public/nomor-saya"), timeout=10)
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "invalid_report_number")


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/api/v1/areas", "application/json"), ("/api/v1/areas/kelurahan.geojson", "application/geo+json")],
)
def test_the_area_documents_are_compressed_and_cached(
    system: RunningSystem, openapi: dict, path: str, content_type: str
) -> None:
    response = requests.get(system.url("intake", path), timeout=10)  # requests takes gzip and decodes it
    assert response.status_code == 200 and response.headers["Content-Type"].startswith(content_type)
    assert response.headers["Content-Encoding"] == "gzip"
    assert int(response.headers["Content-Length"]) < len(response.content) / 3
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    etag = response.headers["ETag"]
    again = requests.get(system.url("intake", path), headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 304 and again.content == b""
    plain = requests.get(system.url("intake", path), headers={"Accept-Encoding": "identity"}, timeout=10)
    assert "Content-Encoding" not in plain.headers and plain.json() == response.json()
    if path == "/api/v1/areas":
        conforms(openapi, "AreaTree", response.json())
        kota = {k["name"] for k in response.json()["kota"]}
        assert {"Jakarta Pusat", "Jakarta Selatan", "Jakarta Timur", "Kepulauan Seribu"} <= kota
    else:
        assert len(response.json()["features"]) == 267


def test_a_kelurahan_point_is_routed_to_its_kelurahan(system: RunningSystem) -> None:
    """The point a picker gives for a kelurahan files a report that routing places in that kelurahan."""
    tree = requests.get(system.url("intake", "/api/v1/areas"), timeout=10).json()
    kota = next(k for k in tree["kota"] if k["name"] == "Jakarta Utara")
    kelurahan = kota["kecamatan"][0]["kelurahan"][0]
    receipt = file_report(system, kelurahan["point"]["lat"], kelurahan["point"]["lon"], "sampah", "Sampah menumpuk")
    assert routed(system, receipt)["area"]["code"] == kelurahan["code"]


def test_categories_come_grouped(system: RunningSystem, openapi: dict) -> None:
    body = requests.get(system.url("intake", "/api/v1/categories"), timeout=10).json()
    conforms(openapi, "CategoryList", body)
    assert all(category["group"] and category["response_days"] >= 1 for category in body["categories"])
    assert body["groups"][0]["name"] == "Jalan & Transportasi"
    grouped = [code for group in body["groups"] for code in group["categories"]]
    assert sorted(grouped) == sorted(category["code"] for category in body["categories"])


def test_the_app_config_gives_the_limits_and_the_map(system: RunningSystem, openapi: dict) -> None:
    response = requests.get(system.url("intake", "/api/v1/app-config"), timeout=10)
    assert response.status_code == 200
    config = response.json()
    conforms(openapi, "AppConfig", config)
    # the test system leaves MAP_TILE_URL unset: config.yaml's default, OpenStreetMap's tiles
    assert config["map"]["tile_url"] == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert config["map"]["tile_attribution"] == "© OpenStreetMap contributors"
    assert requests.get(system.url("intake", config["map"]["boundaries_url"]), timeout=10).status_code == 200
    # a description one character over the limit the config gives is refused, as promised
    too_long = "x" * (config["report"]["description_max_chars"] + 1)
    refused = requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": "jalan", "description": too_long, "lat": POINT[0], "lon": POINT[1]},
        headers=client_headers(),
        timeout=10,
    )
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "description"


def test_the_live_stream_answers_the_citizen_app_across_origins(system: RunningSystem) -> None:
    """The app, served by intake, opens an EventSource on notify's origin: notify allows intake's origin, no other."""
    intake_origin = system.url("intake").rstrip("/")
    receipt = file_report(system, POINT[0], POINT[1] + 0.002, "jalan", "Jalan retak")
    stream_url = receipt["stream_url"]
    assert not stream_url.startswith(intake_origin)  # another origin indeed
    with requests.get(stream_url, headers={"Origin": intake_origin}, stream=True, timeout=10) as live:
        assert live.status_code == 200
        assert live.headers["Access-Control-Allow-Origin"] == intake_origin
        assert live.headers["Vary"] == "Origin"
    preflight = requests.options(
        stream_url,
        headers={
            "Origin": intake_origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id",
        },
        timeout=10,
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == intake_origin
    assert "last-event-id" in preflight.headers["Access-Control-Allow-Headers"].lower()
