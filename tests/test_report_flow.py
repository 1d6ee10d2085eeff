"""One report from citizen to agency and back, through all four services on the real RabbitMQ."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess

import pytest
import requests
from PIL import Image

from tests.photo_fixtures import jpeg_with_gps
from tests.system import OpdQueueReader, RunningSystem, SseListener, client_headers, wait_for

pytestmark = pytest.mark.e2e

BLOK_M = (-6.2443, 106.8003)  # Melawai, Kebayoran Baru, Jakarta Selatan
DEPOK = (-6.4025, 106.7942)  # Depok, West Java: outside Jakarta
PARKING_OPD = "sudin-perhubungan-jakarta-selatan"
CONTACT = "warga.blokm.e2e@example.org"


def submit(system: RunningSystem, lat: float, lon: float, category: str, **extra: str) -> requests.Response:
    photo = jpeg_with_gps(lat, lon)
    data = {"category": category, "description": "Mobil parkir di trotoar depan Blok M Square", "lat": lat, "lon": lon}
    data.update(extra)
    return requests.post(
        system.url("intake", "/api/v1/reports"),
        data=data,
        files={"photo": ("IMG_0001.jpg", photo, "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )


def has_exif(jpeg: bytes) -> bool:
    image = Image.open(io.BytesIO(jpeg))
    return bool(image.getexif()) or any(k in image.info for k in ("exif", "xmp", "XML:com.adobe.xmp", "icc_profile"))


def exiftool_gps_tags(jpeg: bytes, tmp_path) -> list[str]:
    exiftool = shutil.which("exiftool")
    assert exiftool, "exiftool (Debian libimage-exiftool-perl) is needed to check stored photos"
    path = tmp_path / "stored.jpg"
    path.write_bytes(jpeg)
    tags = json.loads(
        subprocess.run([exiftool, "-json", "-a", "-G1", str(path)], capture_output=True, check=True).stdout
    )[0]
    return [k for k in tags if "GPS" in k or k.startswith(("EXIF:", "XMP", "IFD0:", "ExifIFD:"))]


def test_categories_list_every_crm_category(system: RunningSystem) -> None:
    response = requests.get(system.url("intake", "/api/v1/categories"), timeout=10)
    assert response.status_code == 200
    codes = {c["code"] for c in response.json()["categories"]}
    assert {"jalan", "pohon", "parkir-liar", "sampah", "gangguan-ketenteraman-dan-ketertiban"} <= codes
    assert len(codes) >= 29


def test_report_travels_from_citizen_to_agency_and_back(
    system: RunningSystem, opd_queues: OpdQueueReader, tmp_path
) -> None:
    # 1. the citizen submits a GPS-tagged photo of illegal parking at Blok M
    response = submit(system, *BLOK_M, "parkir-liar", contact=CONTACT)
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert re.fullmatch(r"JK-\d{8}-\d{6}", receipt["report_id"])
    assert receipt["status"] == "menunggu"
    token = receipt["tracking_token"]
    assert len(token) >= 32
    report_id = receipt["report_id"]

    stream = SseListener(receipt["stream_url"])
    assert stream.status_code == 200 and stream.content_type.startswith("text/event-stream")

    # 2. routing delivers it to the Suku Dinas Perhubungan of Jakarta Selatan's durable queue
    message, body = opd_queues.get(PARKING_OPD, predicate=lambda b: b["report_id"] == report_id)
    assert message.delivery_info["routing_key"] == f"{PARKING_OPD}.jakarta-selatan.kebayoran-baru.melawai"
    assert body["area"]["kelurahan"] == "Melawai" and body["area"]["kota"] == "Jakarta Selatan"
    assert body["opd"]["code"] == PARKING_OPD
    assert body["category"] == "parkir-liar"
    assert body["transitions_url"].endswith(f"/api/v1/opd/reports/{report_id}/transitions")
    raw = message.body if isinstance(message.body, str) else message.body.decode()
    assert CONTACT not in raw and token not in raw
    assert message.properties.get("delivery_mode") == 2

    # the stored photo carries no EXIF / GPS, whether fetched through the link or straight from the object store
    photo = requests.get(body["photos"][0]["url"], timeout=10)
    assert photo.status_code == 200 and photo.headers["Content-Type"] == "image/jpeg"
    assert not has_exif(photo.content)
    assert exiftool_gps_tags(photo.content, tmp_path) == []
    stored = system.s3.client().get_object(system.s3.bucket, f"photos/{body['photos'][0]['photo_id']}.jpg").read()
    assert stored == photo.content

    # 3. the agency works it through the official statuses with its own key
    transitions = system.url("intake", f"/api/v1/opd/reports/{report_id}/transitions")
    headers = system.opd_headers(PARKING_OPD)
    other = system.opd_headers("sudin-bina-marga-jakarta-selatan")
    refused = requests.post(transitions, json={"status": "dikerjakan", "note": "x"}, headers=other, timeout=10)
    assert refused.status_code == 404
    assert requests.post(transitions, json={"status": "dikerjakan"}, timeout=10).status_code == 401

    working = requests.post(
        transitions, json={"status": "dikerjakan", "note": "Petugas menuju lokasi"}, headers=headers
    )
    assert working.status_code == 200, working.text
    assert working.json()["status"] == "dikerjakan"
    live = stream.next_matching(lambda f: f["json"].get("status") == "dikerjakan")
    assert live["event"] == "status_changed" and live["json"]["note"] == "Petugas menuju lokasi"

    no_evidence = requests.post(transitions, data={"status": "selesai", "note": "Sudah ditertibkan"}, headers=headers)
    assert no_evidence.status_code == 422 and no_evidence.json()["error"]["field"] == "photo"
    evidence = jpeg_with_gps(*BLOK_M, size=(400, 300))
    done = requests.post(
        transitions,
        data={"status": "selesai", "note": "Kendaraan sudah diderek"},
        files={"photo": ("bukti.jpg", evidence, "image/jpeg")},
        headers=headers,
    )
    assert done.status_code == 200, done.text
    stream.next_matching(lambda f: f["json"].get("status") == "selesai")
    illegal = requests.post(transitions, json={"status": "dikerjakan", "note": "lagi"}, headers=headers)
    assert illegal.status_code == 409 and illegal.json()["error"]["code"] == "illegal_transition"
    stream.close()

    # 4. the citizen's tracking view shows the whole story, and never the contact
    tracking = requests.get(system.url("intake", f"/api/v1/reports/{token}"), timeout=10)
    assert tracking.status_code == 200
    view = tracking.json()
    assert view["status"] == "selesai"
    assert view["responsible_opd"]["code"] == PARKING_OPD
    assert view["area"]["kelurahan"] == "Melawai"
    assert [h["kind"] for h in view["history"]] == ["submitted", "routed", "transition", "transition"]
    assert [h["status"] for h in view["history"]][-2:] == ["dikerjakan", "selesai"]
    assert view["history"][-1]["actor_opd"] == PARKING_OPD
    assert len(view["photos"]) == 1 and len(view["evidence_photos"]) == 1
    assert not has_exif(requests.get(view["evidence_photos"][0], timeout=10).content)
    assert CONTACT not in tracking.text

    # 5. statistics count it, per status, category and kota
    def counted() -> dict | None:
        summary = requests.get(system.url("stats", "/api/v1/stats/summary"), timeout=10).json()
        parking = next((c for c in summary["by_category"] if c["category"] == "parkir-liar"), None)
        return summary if parking and parking["by_status"]["selesai"] >= 1 else None

    summary = wait_for(counted, 10, message="the report counted as selesai in the statistics")
    assert summary["by_status"]["selesai"]["count"] >= 1
    selatan = next(k for k in summary["by_kota"] if k["kota"] == "Jakarta Selatan")
    assert selatan["by_status"]["selesai"] >= 1
    assert "selesai" in summary["headline"]


def test_point_outside_jakarta_goes_to_triage(system: RunningSystem, opd_queues: OpdQueueReader) -> None:
    response = submit(system, *DEPOK, "jalan")
    assert response.status_code == 201
    report_id = response.json()["report_id"]
    message, body = opd_queues.get("triage", predicate=lambda b: b["report_id"] == report_id)
    assert message.delivery_info["routing_key"] == "triage.outside-jakarta"
    assert body["triage_reason"].startswith("outside_jakarta")
    view = requests.get(system.url("intake", f"/api/v1/reports/{response.json()['tracking_token']}"), timeout=10).json()
    assert view["responsible_opd"]["code"] == "triage"
    assert view["triage_reason"] == "outside_jakarta"

    # the citizen reads why, in Indonesian only, in the tracking view and on the live stream alike
    (triage,) = [h for h in view["history"] if h["kind"] == "triage"]
    note = triage["note"]
    assert re.fullmatch(
        r"Perlu diperiksa petugas: lokasi \d+,\d km dari kelurahan terdekat \(.+\), di luar batas \d+ m", note
    )
    assert triage["status"] == "menunggu"
    stream = SseListener(response.json()["stream_url"])
    live = stream.next_matching(lambda f: f["event"] == "triage")
    stream.close()
    assert (live["json"]["note"], live["json"]["status"]) == (note, "menunggu")
    # the English detail stays with the triage desk
    assert "from the nearest kelurahan" in body["triage_reason"]


@pytest.mark.parametrize(
    ("fields", "field", "status"),
    [
        ({"category": "bukan-kategori"}, "category", 422),
        ({"lat": "NaN"}, "lat", 422),
        ({"lat": "-95"}, "lat", 422),
        ({"lon": "timur"}, "lon", 422),
        ({"description": ""}, "description", 422),
        ({"description": "x" * 2001}, "description", 422),
        ({"contact": "bukan kontak"}, "contact", 422),
    ],
)
def test_bad_submissions_name_the_field_and_store_nothing(
    system: RunningSystem, fields: dict, field: str, status: int
) -> None:
    bucket = system.s3.client()
    before = len(list(bucket.list_objects(system.s3.bucket, prefix="photos/", recursive=True)))
    data = {"category": "jalan", "description": "Jalan berlubang", "lat": "-6.2", "lon": "106.8", **fields}
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data=data,
        files={"photo": ("a.jpg", jpeg_with_gps(-6.2, 106.8), "image/jpeg")},
        headers=client_headers(),
        timeout=10,
    )
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["field"] == field
    after = len(list(bucket.list_objects(system.s3.bucket, prefix="photos/", recursive=True)))
    assert after == before


def test_every_service_reports_health_and_metrics(system: RunningSystem) -> None:
    for service in ("intake", "routing", "notify", "stats"):
        health = requests.get(system.url(service, "/health"), timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        metrics = requests.get(system.url(service, "/metrics"), timeout=10)
        assert metrics.status_code == 200
        assert "jaklapor_http_requests_total" in metrics.text
        assert "process_resident_memory_bytes" in metrics.text
