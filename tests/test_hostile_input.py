"""Anonymous input from the internet is hostile: every nasty upload or field gets a 4xx naming the problem, quickly,
and nothing is stored; clients that flood are slowed without slowing anyone else; retries never duplicate."""

from __future__ import annotations

import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests import photo_fixtures as photos
from tests.system import OpdQueueReader, RunningSystem, client_headers, wait_for

pytestmark = pytest.mark.e2e

MONAS = (-6.175392, 106.827153)
GOOD_FIELDS = {
    "category": "jalan",
    "description": "Jalan berlubang dekat halte",
    "lat": str(MONAS[0]),
    "lon": str(MONAS[1]),
}
MONAS_ROAD_OPD = "sudin-bina-marga-jakarta-pusat"


def post_report(
    system: RunningSystem, fields: dict | None = None, photo: bytes | None = None, **kwargs
) -> requests.Response:
    files = {"photo": ("photo.jpg", photo if photo is not None else photos.jpeg_with_gps(*MONAS), "image/jpeg")}
    headers = {**client_headers(), **kwargs.pop("headers", {})}
    return requests.post(
        system.url("intake", "/api/v1/reports"),
        data={**GOOD_FIELDS, **(fields or {})},
        files=files,
        headers=headers,
        timeout=30,
        **kwargs,
    )


def stored_photo_count(system: RunningSystem) -> int:
    return len(list(system.s3.client().list_objects(system.s3.bucket, prefix="photos/", recursive=True)))


def category_total(system: RunningSystem, category: str) -> int:
    summary = requests.get(system.url("stats", "/api/v1/stats/summary"), timeout=10).json()
    return sum(row["total"] for row in summary["by_category"] if row["category"] == category)


def multipart(fields: dict[str, bytes], photo: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="p.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + photo
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


NASTY_PHOTOS = [
    ("decompression bomb PNG", photos.decompression_bomb_png, 422, "photo_too_many_pixels"),
    ("20000x20000 image", photos.huge_dimensions_jpeg, 422, "photo_too_many_pixels"),
    ("WebP canvas bomb", photos.webp_canvas_bomb, 422, "photo_too_many_pixels"),
    ("truncated JPEG", photos.truncated_jpeg, 422, "photo_corrupt"),
    ("wrong magic bytes", photos.wrong_magic_bytes, 415, "photo_unsupported_type"),
    ("PNG magic on a JPEG body", photos.png_magic_with_jpeg_body, 422, "photo_corrupt"),
    ("HTML disguised as JPEG", photos.html_disguised_as_jpeg, 415, "photo_unsupported_type"),
    ("GIF", photos.gif_bytes, 415, "photo_unsupported_type"),
    ("HEIC", photos.heic_header_bytes, 415, "photo_unsupported_type"),
    ("empty file", lambda: b"", 422, "photo_empty"),
]

BAD_FIELDS = [
    ({"lat": "NaN"}, "lat"),
    ({"lat": "Infinity"}, "lat"),
    ({"lon": "-inf"}, "lon"),
    ({"lat": "91"}, "lat"),
    ({"lon": "181.5"}, "lon"),
    ({"lat": "enam koma dua"}, "lat"),
    ({"lon": ""}, "lon"),
    ({"category": "bukan-kategori"}, "category"),
    ({"category": "<script>alert(1)</script>"}, "category"),
    ({"description": "   "}, "description"),
    ({"description": "a" * 2001}, "description"),
    ({"description": "rusak\x00\x07"}, "description"),
    ({"contact": "bukan@"}, "contact"),
]


@pytest.mark.parametrize(("name", "make", "status", "code"), NASTY_PHOTOS, ids=[n for n, *_ in NASTY_PHOTOS])
def test_nasty_uploads_are_refused_naming_the_photo(system: RunningSystem, name, make, status, code) -> None:
    before = stored_photo_count(system)
    started = time.monotonic()
    response = post_report(system, photo=make())
    elapsed = time.monotonic() - started
    assert response.status_code == status, f"{name}: {response.text}"
    error = response.json()["error"]
    assert error["code"] == code and error["field"] == "photo"
    assert elapsed < 5, f"{name} took {elapsed:.1f}s"
    assert stored_photo_count(system) == before


@pytest.mark.parametrize(
    ("fields", "field"), BAD_FIELDS, ids=[f"{k}={v!r:.20}" for d, _ in BAD_FIELDS for k, v in d.items()]
)
def test_bad_fields_are_refused_naming_the_field(system: RunningSystem, fields: dict, field: str) -> None:
    before = stored_photo_count(system)
    response = post_report(system, fields)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert stored_photo_count(system) == before


def test_invalid_utf8_is_refused(system: RunningSystem) -> None:
    body, content_type = multipart(
        {"category": b"jalan", "description": b"jalan \xff\xfe rusak", "lat": b"-6.2", "lon": b"106.8"},
        photos.jpeg_with_gps(*MONAS),
    )
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data=body,
        headers={"Content-Type": content_type, **client_headers()},
        timeout=10,
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "description"
    assert "UTF-8" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", b"category=jalan", 415),
        ("application/json", b'{"category": "jalan"', 400),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nbroken", 400),
        ("application/x-www-form-urlencoded", b"category=jalan&description=x&lat=-6.2", 422),
    ],
)
def test_malformed_bodies_get_a_4xx(system: RunningSystem, content_type: str, body: bytes, status: int) -> None:
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data=body,
        headers={"Content-Type": content_type, **client_headers()},
        timeout=10,
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]


def test_a_channel_without_a_camera_may_send_no_photo(system: RunningSystem) -> None:
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data=b"category=jalan&description=Laporan+via+SMS&lat=-6.2&lon=106.8",
        headers={"Content-Type": "application/x-www-form-urlencoded", **client_headers()},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    view = requests.get(response.json()["tracking_url"], timeout=10).json()
    assert view["photos"] == [] and view["description"] == "Laporan via SMS"


def test_oversized_body_is_refused_before_it_is_read(system: RunningSystem) -> None:
    """A 50 MB upload gets 413 from the headers alone: the server does not wait for (or read) the body."""
    with socket.create_connection(("127.0.0.1", system.ports["intake"]), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/reports HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 52428800\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n"
        )
        started = time.monotonic()
        answer = sock.recv(65536).decode(errors="replace")
        elapsed = time.monotonic() - started
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert '"request_too_large"' in answer
    assert elapsed < 5


def test_nothing_refused_reaches_the_statistics(system: RunningSystem) -> None:
    # a category no other test submits, so reports still in flight from other tests do not blur the count
    category = {"category": "tenaga-kerja"}
    before = category_total(system, "tenaga-kerja")
    for _name, make, _status, _code in NASTY_PHOTOS[:4]:
        assert post_report(system, category, photo=make()).status_code >= 400
    for fields, _field in BAD_FIELDS[:4]:
        assert post_report(system, {**category, **fields}).status_code == 422
    marker = post_report(system, category)
    assert marker.status_code == 201
    wait_for(lambda: category_total(system, "tenaga-kerja") >= before + 1, 10, message="the marker report counted")
    assert category_total(system, "tenaga-kerja") == before + 1


def test_a_flooding_client_is_limited_without_slowing_others(system: RunningSystem) -> None:
    flooder = client_headers("10.200.0.1")
    answers = [post_report(system, headers=flooder) for _ in range(25)]
    statuses = [a.status_code for a in answers]
    assert statuses[:20] == [201] * 20, statuses
    limited = [a for a in answers if a.status_code == 429]
    assert limited, statuses
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert limited[0].json()["error"]["code"] == "rate_limited"
    # another citizen is served at once
    started = time.monotonic()
    assert post_report(system, headers=client_headers("10.200.0.2")).status_code == 201
    assert time.monotonic() - started < 5


def test_a_retried_submission_returns_the_same_report(system: RunningSystem, opd_queues: OpdQueueReader) -> None:
    key = str(uuid.uuid4())
    photo = photos.jpeg_with_gps(*MONAS)
    first = post_report(system, photo=photo, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    again = post_report(system, photo=photo, headers={"Idempotency-Key": key})
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["report_id"] == first.json()["report_id"]
    assert again.json()["tracking_token"] == first.json()["tracking_token"]
    tracking = requests.get(system.url("intake", f"/api/v1/reports/{again.json()['tracking_token']}"), timeout=10)
    assert tracking.status_code == 200

    reused = post_report(system, {"description": "laporan lain"}, photo=photo, headers={"Idempotency-Key": key})
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    assert post_report(system, headers={"Idempotency-Key": "short"}).status_code == 400

    # concurrent retries of one submission (a phone on a flaky network) still make one report
    burst_key = str(uuid.uuid4())
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: post_report(system, photo=photo, headers={"Idempotency-Key": burst_key}), range(8))
        )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["report_id"] for a in answers}) == 1

    # and the agency hears of each report once
    report_ids = {first.json()["report_id"], answers[0].json()["report_id"]}
    delivered: list[str] = []

    def both_delivered() -> bool:
        try:
            _message, body = opd_queues.get(MONAS_ROAD_OPD, timeout=0.5)
        except AssertionError:
            pass
        else:
            delivered.append(body["report_id"])
        return report_ids <= set(delivered)

    wait_for(both_delivered, 15, message="both reports on the kelurahan queue")
    assert sorted(r for r in delivered if r in report_ids) == sorted(report_ids)
