"""The open-data exports against the running system: CSV and GeoJSON of the public reports, streamed (chunked, no
Content-Length), each filter narrowing them, private categories' reports absent, locations as published, the
licence and schema documented, and the same columns as /openapi.json says."""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from jaklapor.vocabulary import JAKARTA_TZ
from services.intake.open_data import EXPORT_COLUMNS, LICENCE
from tests.system import RunningSystem, client_headers, wait_for

pytestmark = pytest.mark.e2e

RNG = random.Random()
# Pasar Minggu, Jakarta Selatan, moved a little each run
POINT = (-6.2840 + RNG.uniform(-0.001, 0.001), 106.8430 + RNG.uniform(-0.001, 0.001))


def file_report(system: RunningSystem, category: str, description: str, dlat: float = 0.0) -> dict[str, Any]:
    lat, lon = POINT
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": category, "description": description, "lat": lat + dlat, "lon": lon},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    receipt = response.json()

    def routed() -> dict[str, Any] | None:
        view = requests.get(system.url("intake", f"/api/v1/reports/{receipt['tracking_token']}"), timeout=10).json()
        return view if view["responsible_opd"] else None

    return {**receipt, "view": wait_for(routed, 20, message=f"{receipt['report_id']} routed")}


@pytest.fixture(scope="module")
def reports(system: RunningSystem) -> dict[str, dict[str, Any]]:
    return {
        "road": file_report(system, "jalan", '=HYPERLINK("http://x") jalan rusak, "berlubang"\nbaris dua'),
        "noise": file_report(system, "gangguan-dan-kebisingan", "Musik keras", 0.0001234),
        "private": file_report(system, "kependudukan", "KTP saya belum jadi"),
    }


def export(system: RunningSystem, kind: str, **params: Any) -> requests.Response:
    response = requests.get(system.url("intake", f"/api/v1/open-data/reports.{kind}"), params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response


def csv_rows(system: RunningSystem, **params: Any) -> list[dict[str, str]]:
    response = export(system, "csv", **params)
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    reader = csv.DictReader(io.StringIO(response.content.decode("utf-8")))
    assert reader.fieldnames == list(EXPORT_COLUMNS)
    return list(reader)


def ids_of(system: RunningSystem, **params: Any) -> set[str]:
    return {row["report_id"] for row in csv_rows(system, **params)}


def test_csv_streams_public_reports_as_published(system: RunningSystem, reports: dict) -> None:
    response = export(system, "csv")
    # streamed: chunked, not a body built whole first
    assert response.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in response.headers
    assert LICENCE["url"] in response.headers["Link"]
    rows = {row["report_id"]: row for row in csv_rows(system)}
    road = rows[reports["road"]["report_id"]]
    view = reports["road"]["view"]
    assert road["description"].startswith("'=HYPERLINK")  # never a formula in a spreadsheet
    assert "baris dua" in road["description"] and '"berlubang"' in road["description"]
    assert (float(road["lat"]), float(road["lon"])) == (view["location"]["lat"], view["location"]["lon"])
    assert road["kota"] == view["area"]["kota"] and road["agency_code"] == view["responsible_opd"]["code"]
    assert road["status"] == "menunggu" and road["location_precision"] == "exact"
    noise = rows[reports["noise"]["report_id"]]
    assert noise["location_precision"] == "3"
    assert float(noise["lat"]) == round(reports["noise"]["view"]["location"]["lat"], 3)
    assert reports["private"]["report_id"] not in rows
    assert all(row["category"] not in ("kependudukan", "pmks-bantuan-sosial", "tenaga-kerja") for row in rows.values())


def test_geojson_is_a_feature_collection_with_licence_and_schema(system: RunningSystem, reports: dict) -> None:
    response = export(system, "geojson")
    assert response.headers["Content-Type"] == "application/geo+json"
    assert response.headers.get("Transfer-Encoding") == "chunked"
    document = response.json()
    assert document["type"] == "FeatureCollection"
    assert document["licence"] == LICENCE and document["schema"] == EXPORT_COLUMNS
    features = {feature["id"]: feature for feature in document["features"]}
    road = features[reports["road"]["report_id"]]
    lat, lon = reports["road"]["view"]["location"]["lat"], reports["road"]["view"]["location"]["lon"]
    assert road["geometry"] == {"type": "Point", "coordinates": [lon, lat]}
    assert list(road["properties"]) == list(EXPORT_COLUMNS)
    assert reports["private"]["report_id"] not in features
    assert "tracking_token" not in response.text and reports["road"]["tracking_token"] not in response.text


def test_every_filter_narrows_the_export(system: RunningSystem, reports: dict) -> None:
    road, noise = reports["road"]["report_id"], reports["noise"]["report_id"]
    area = reports["road"]["view"]["area"]
    today = datetime.now(UTC).astimezone(JAKARTA_TZ).date()
    assert {road, noise} <= ids_of(system, start_date=today.isoformat(), end_date=today.isoformat())
    assert road not in ids_of(system, end_date=(today - timedelta(days=1)).isoformat())
    assert road not in ids_of(system, start_date=(today + timedelta(days=1)).isoformat())
    assert ids_of(system, category="jalan") >= {road} and noise not in ids_of(system, category="jalan")
    assert {road, noise} <= ids_of(system, category="jalan,gangguan-dan-kebisingan")
    assert road in ids_of(system, status="menunggu") and road not in ids_of(system, status="selesai,ditolak")
    assert road in ids_of(system, status="open") and road not in ids_of(system, status="closed")
    for level in ("kota", "kecamatan", "kelurahan"):
        assert road in ids_of(system, **{level: area[level]})
        assert road not in ids_of(system, **{level: "Tidak Ada"})
    # a private category asked for by name gives nothing, not its reports
    assert ids_of(system, category="kependudukan") == set()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start_date": "kemarin"}, "start_date"),
        ({"start_date": "2026-02-01", "end_date": "2026-01-01"}, "end_date"),
        ({"end_date": "9999-12-31"}, "end_date"),  # its day's end overflowed mid-answer (found by the fuzzer)
        ({"category": "nope"}, "category"),
        ({"status": "pending"}, "status"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_filters_are_named(system: RunningSystem, params: dict, field: str) -> None:
    response = requests.get(system.url("intake", "/api/v1/open-data/reports.csv"), params=params, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_the_exports_are_documented(system: RunningSystem) -> None:
    document = requests.get(system.url("intake", "/openapi.json"), timeout=10).json()
    operation = document["paths"]["/api/v1/open-data/reports.{format}"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"start_date", "end_date", "category", "status", "kota", "kecamatan", "kelurahan"} <= names
    assert list(document["components"]["schemas"]["OpenDataRow"]["properties"]) == list(EXPORT_COLUMNS)
    assert "/open311/v2/requests.{format}" in document["paths"]
