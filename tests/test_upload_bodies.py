"""Unusual but valid uploads, and broken ones, against the running system (issue 12 items 4-7): chunked bodies are
accepted within the size limit, broken bodies are told what is wrong, any JSON nesting gets a 4xx, and a report takes
up to 3 photos, shown to the citizen and the agency, while nothing a client sends is dropped quietly."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import select
import socket
import uuid
from collections.abc import Iterator

import pytest
import requests
from PIL import Image

from services.intake.domain import MAX_PHOTOS_PER_REPORT
from tests import photo_fixtures as photos
from tests.system import OpdQueueReader, RunningSystem, client_headers, wait_for

pytestmark = pytest.mark.e2e

MONAS = (-6.175392, 106.827153)
FIELDS = {"category": "jalan", "description": "Jalan berlubang dekat halte", "lat": str(MONAS[0]), "lon": str(MONAS[1])}
BOUNDARY = "jaklapor-e2e-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024  # the system under test runs with the default MAX_REQUEST_BYTES


def multipart(fields: dict[str, str], photo_parts: list[bytes], boundary: str = BOUNDARY) -> bytes:
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for index, photo in enumerate(photo_parts):
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="p{index}.jpg"\r\n'
                "Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + photo
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


def distinct_photos(count: int) -> list[bytes]:
    return [photos.jpeg_with_gps(*MONAS, size=(320 + 40 * i, 240)) for i in range(count)]


def post(system: RunningSystem, path: str, body: bytes | Iterator[bytes], content_type: str, **headers: str):
    return requests.post(
        system.url("intake", path),
        data=body,
        headers={"Content-Type": content_type, **client_headers(), **headers},
        timeout=30,
    )


def post_photos(system: RunningSystem, photo_parts: list[bytes], **fields: str) -> requests.Response:
    files = [("photo", (f"IMG_{i}.jpg", photo, "image/jpeg")) for i, photo in enumerate(photo_parts)]
    return requests.post(
        system.url("intake", "/api/v1/reports"),
        data={**FIELDS, **fields},
        files=files,
        headers=client_headers(),
        timeout=30,
    )


def stored_photo_count(system: RunningSystem) -> int:
    return len(list(system.s3.client().list_objects("e2e-photos", prefix="photos/", recursive=True)))


def raw_exchange(system: RunningSystem, head: bytes, chunks: Iterator[bytes]) -> tuple[str, int]:
    """Send a request head and body pieces on a raw socket; the answer, and how many body bytes went out first."""
    sent = 0
    with socket.create_connection(("127.0.0.1", system.ports["intake"]), timeout=30) as sock:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered before the whole body was sent
            sock.sendall(chunk)
            sent += len(chunk)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer.decode(errors="replace"), sent


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def chunked_head(content_type: str) -> bytes:
    return (
        "POST /api/v1/reports HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n"
        f"X-Forwarded-For: {client_headers()['X-Forwarded-For']}\r\n\r\n"
    ).encode()


# ---- item 4: chunked uploads -----------------------------------------------------------------------------------------


def test_a_chunked_upload_over_a_raw_socket_is_accepted(system: RunningSystem) -> None:
    body = multipart(FIELDS, [photos.jpeg_with_gps(*MONAS)])
    pieces = [chunk(body[i : i + 4096]) for i in range(0, len(body), 4096)] + [b"0\r\n\r\n"]
    answer, _sent = raw_exchange(system, chunked_head(MULTIPART), iter(pieces))
    assert answer.startswith("HTTP/1.1 201"), answer[:400]
    receipt = json.loads(answer.split("\r\n\r\n", 1)[1])
    view = requests.get(receipt["tracking_url"], timeout=10).json()
    assert view["description"] == FIELDS["description"] and len(view["photos"]) == 1
    assert requests.get(view["photos"][0], timeout=10).status_code == 200


def test_a_streamed_upload_from_a_generator_is_accepted(system: RunningSystem) -> None:
    body = multipart(FIELDS, distinct_photos(2))

    def stream() -> Iterator[bytes]:  # requests sends a generator with Transfer-Encoding: chunked
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    response = post(system, "/api/v1/reports", stream(), MULTIPART)
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 201, response.text
    assert len(requests.get(response.json()["tracking_url"], timeout=10).json()["photos"]) == 2


def test_a_streamed_urlencoded_report_without_photo_is_accepted(system: RunningSystem) -> None:
    body = "&".join(f"{k}={v}" for k, v in FIELDS.items()).encode()
    response = post(system, "/api/v1/reports", iter([body[:20], body[20:]]), "application/x-www-form-urlencoded")
    assert response.status_code == 201, response.text


def test_a_chunked_upload_over_the_limit_gets_413_while_it_is_still_sending(system: RunningSystem) -> None:
    before = stored_photo_count(system)
    start = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="photo"; filename="big.jpg"\r\n\r\n'.encode()
    megabyte = b"\xff" * (1024 * 1024)

    def endless() -> Iterator[bytes]:
        yield chunk(start)
        for _ in range(200):  # 200 MB if nobody stopped it
            yield chunk(megabyte)

    answer, sent = raw_exchange(system, chunked_head(MULTIPART), endless())
    assert answer.startswith("HTTP/1.1 413"), answer[:400]
    assert '"request_too_large"' in answer and str(DEFAULT_MAX_REQUEST_BYTES) in answer
    # the answer came while the client was still sending: the server stopped reading at the limit (plus what the
    # kernel's socket buffers held), it did not wait for the 200 MB
    assert sent < DEFAULT_MAX_REQUEST_BYTES + 64 * 1024 * 1024
    assert stored_photo_count(system) == before


# ---- item 5: broken bodies -------------------------------------------------------------------------------------------

GOOD_BODY = multipart(FIELDS, [photos.jpeg_with_gps(*MONAS)])
BROKEN_BODIES = [
    ("truncated", MULTIPART, GOOD_BODY[: len(GOOD_BODY) // 2], "truncated"),
    ("no closing boundary", MULTIPART, GOOD_BODY[: -len(f"--{BOUNDARY}--\r\n")], "truncated"),
    ("wrong boundary", "multipart/form-data; boundary=not-the-one", GOOD_BODY, "does not contain the boundary"),
    ("missing boundary", "multipart/form-data", GOOD_BODY, "needs a boundary"),
    ("garbage", MULTIPART, bytes(range(256)) * 40, "does not contain the boundary"),
]


@pytest.mark.parametrize(
    ("content_type", "body", "says"), [c[1:] for c in BROKEN_BODIES], ids=[c[0] for c in BROKEN_BODIES]
)
@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_a_broken_multipart_body_gets_400_saying_what_is_wrong(
    system: RunningSystem, content_type: str, body: bytes, says: str, transfer: str
) -> None:
    before = stored_photo_count(system)
    sent = body if transfer == "content-length" else iter([body[:100], body[100:]])
    response = post(system, "/api/v1/reports", sent, content_type)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_multipart" and says in error["message"], error
    assert stored_photo_count(system) == before


def test_an_urlencoded_body_that_is_not_utf8_gets_400(system: RunningSystem) -> None:
    response = post(
        system, "/api/v1/reports", b"category=jalan&description=\xff\xfe", "application/x-www-form-urlencoded"
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_urlencoded"


# ---- item 6: nesting -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def routed_report(system: RunningSystem) -> dict:
    response = post_photos(system, distinct_photos(1))
    assert response.status_code == 201, response.text
    receipt = response.json()
    view = wait_for(
        lambda: (v := requests.get(receipt["tracking_url"], timeout=10).json())["responsible_opd"] and v,
        15,
        message="the report routed",
    )
    return {**receipt, "opd": view["responsible_opd"]["code"]}


@pytest.mark.parametrize("depth", [1000, 100_000])
@pytest.mark.parametrize("closed", [True, False], ids=["closed", "unclosed"])
def test_deeply_nested_json_gets_400_on_both_endpoints(
    system: RunningSystem, routed_report: dict, depth: int, closed: bool
) -> None:
    body = ('{"status": ' + "[" * depth + ("]" * depth + "}" if closed else "")).encode()
    report = f"/api/v1/opd/reports/{routed_report['report_id']}/transitions"
    for path, headers in (("/api/v1/reports", {}), (report, system.opd_headers(routed_report["opd"]))):
        for sent in (body, iter([body[:1000], body[1000:]])):
            response = post(system, path, sent, "application/json", **headers)
            assert response.status_code == 400, (path, response.text)
            assert response.json()["error"]["code"] == "invalid_json"
            assert ("deeper than" if closed else "left open") in response.json()["error"]["message"]
    view = requests.get(routed_report["tracking_url"], timeout=10).json()
    assert view["status"] == "menunggu"


# ---- item 7: several photos, and nothing dropped quietly ------------------------------------------------------------


@pytest.mark.parametrize("count", [2, MAX_PHOTOS_PER_REPORT])
def test_several_photos_reach_the_tracking_view_and_the_agency(
    system: RunningSystem, opd_queues: OpdQueueReader, count: int
) -> None:
    sent = distinct_photos(count)
    response = post_photos(system, sent)
    assert response.status_code == 201, response.text
    receipt = response.json()
    view = requests.get(receipt["tracking_url"], timeout=10).json()
    assert len(view["photos"]) == count
    # each is a re-encoded copy of what was sent, in the order sent (told apart by their widths)
    widths = []
    for url in view["photos"]:
        stored = requests.get(url, timeout=10)
        assert stored.status_code == 200 and stored.headers["Content-Type"] == "image/jpeg"
        image = Image.open(io.BytesIO(stored.content))
        assert not image.getexif()
        widths.append(image.width)
    assert widths == [320 + 40 * i for i in range(count)]

    routed = wait_for(
        lambda: requests.get(receipt["tracking_url"], timeout=10).json()["responsible_opd"], 15, message="routed"
    )
    _message, body = opd_queues.get(
        routed["code"], timeout=15, predicate=lambda b: b["report_id"] == receipt["report_id"]
    )
    assert [p["url"] for p in body["photos"]] == view["photos"]


def test_a_fourth_photo_is_refused_and_nothing_is_stored(system: RunningSystem) -> None:
    before = stored_photo_count(system)
    response = post_photos(system, distinct_photos(MAX_PHOTOS_PER_REPORT + 1))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "photo" and f"at most {MAX_PHOTOS_PER_REPORT}" in error["message"]
    assert stored_photo_count(system) == before


def test_a_bad_later_photo_refuses_the_report_and_removes_the_good_ones_stored(system: RunningSystem) -> None:
    before = stored_photo_count(system)
    response = post_photos(system, [*distinct_photos(2), photos.truncated_jpeg()])
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("photo_corrupt", "photo")
    assert stored_photo_count(system) == before


@pytest.mark.parametrize("field", ["category", "description", "lat", "lon", "contact"])
def test_a_repeated_field_is_refused_naming_it(system: RunningSystem, field: str) -> None:
    before = stored_photo_count(system)
    data = [*{**FIELDS, "contact": "warga@example.org"}.items(), (field, FIELDS.get(field, "warga@example.org"))]
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data=data,
        files={"photo": ("p.jpg", photos.jpeg_with_gps(*MONAS), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "repeated_field" and response.json()["error"]["field"] == field
    assert stored_photo_count(system) == before


def test_a_photo_in_a_json_body_is_refused(system: RunningSystem) -> None:
    photo = base64.b64encode(photos.jpeg_with_gps(*MONAS)).decode()
    response = requests.post(
        system.url("intake", "/api/v1/reports"), json={**FIELDS, "photo": photo}, headers=client_headers(), timeout=30
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "photo" and "multipart/form-data" in error["message"]


def test_a_file_under_another_name_is_refused(system: RunningSystem) -> None:
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data=FIELDS,
        files={"image": ("p.jpg", photos.jpeg_with_gps(*MONAS), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "image"


def test_a_retry_must_carry_the_same_photos(system: RunningSystem) -> None:
    key = str(uuid.uuid4())
    first_photos = distinct_photos(2)
    first = post_photos_with_key(system, first_photos, key)
    assert first.status_code == 201, first.text
    again = post_photos_with_key(system, first_photos, key)
    assert again.status_code == 201 and again.json()["report_id"] == first.json()["report_id"]
    other_second = [first_photos[0], photos.jpeg_with_gps(*MONAS, size=(200, 100))]
    changed = post_photos_with_key(system, other_second, key)
    assert changed.status_code == 422 and changed.json()["error"]["code"] == "idempotency_key_reused"
    fewer = post_photos_with_key(system, first_photos[:1], key)
    assert fewer.status_code == 422 and fewer.json()["error"]["code"] == "idempotency_key_reused"


def post_photos_with_key(system: RunningSystem, photo_parts: list[bytes], key: str) -> requests.Response:
    files = [("photo", (f"IMG_{hashlib.sha1(p).hexdigest()}.jpg", p, "image/jpeg")) for p in photo_parts]
    return requests.post(
        system.url("intake", "/api/v1/reports"),
        data=FIELDS,
        files=files,
        headers={**client_headers(), "Idempotency-Key": key},
        timeout=30,
    )


def test_the_api_document_describes_several_photos(system: RunningSystem) -> None:
    document = requests.get(system.url("intake", "/openapi.json"), timeout=10).json()
    body = document["paths"]["/api/v1/reports"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    photo = body["properties"]["photo"]
    assert photo["type"] == "array" and photo["maxItems"] == MAX_PHOTOS_PER_REPORT
    assert photo["items"]["format"] == "binary"
