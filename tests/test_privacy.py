"""Reporter identity never leaves the services that need it: a unique contact given at submission is searched for in
every message, log line, metric and public response the system produced; stored photos carry no EXIF or GPS."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import requests
from kombu import Connection, Queue, binding

from jaklapor.messaging import DEAD_LETTER_EXCHANGE, OPD_EXCHANGE, event_exchange
from tests.broker_admin import rabbitmqctl
from tests.photo_fixtures import jpeg_with_gps
from tests.system import RunningSystem, SseListener, client_headers, wait_for

pytestmark = pytest.mark.e2e

BLOK_M = (-6.2443, 106.8003)
PARKING_OPD = "sudin-perhubungan-jakarta-selatan"


class Spy:
    """Exclusive queues bound to every exchange the system publishes on: a copy of everything broadcast."""

    def __init__(self, amqp_uri: str) -> None:
        self.connection = Connection(amqp_uri)
        self.channel = self.connection.channel()
        sources = [event_exchange(s) for s in ("intake", "routing", "notify")] + [OPD_EXCHANGE, DEAD_LETTER_EXCHANGE]
        self.queue = Queue(
            f"test.spy.{uuid.uuid4().hex[:8]}",
            bindings=[binding(exchange, routing_key="#") for exchange in sources],
            exclusive=True,
            auto_delete=True,
        )
        for exchange in sources:
            exchange.declare(channel=self.channel)
        self.queue(self.channel).declare()

    def drain(self) -> list[str]:
        seen = []
        while (message := self.channel.basic_get(self.queue.name, no_ack=True)) is not None:
            body = message.body if isinstance(message.body, str) else message.body.decode("utf-8", "replace")
            seen.append(body + json.dumps(message.headers or {}, default=str))
        return seen

    def close(self) -> None:
        self.connection.close()


def peek_all_queues(system: RunningSystem) -> list[str]:
    """Every message sitting in any queue of the system's vhost, read without consuming it."""
    names = rabbitmqctl("list_queues", "-p", system.vhost.name, "--no-table-headers", "name").split()
    seen = []
    with Connection(system.amqp_uri) as connection:
        channel = connection.channel()
        for name in names:
            if name.startswith(("notify.live.", "intake.opd-lists.", "test.spy.")):
                continue  # exclusive to their consumer; the spy holds a copy of what they carry
            while (message := channel.basic_get(name, no_ack=False)) is not None:
                seen.append(message.body if isinstance(message.body, str) else message.body.decode("utf-8", "replace"))
        channel.close()  # unacked messages go back to their queues
    return seen


@pytest.fixture
def spy(system: RunningSystem) -> Iterator[Spy]:
    watcher = Spy(system.amqp_uri)
    yield watcher
    watcher.close()


def test_contact_is_found_nowhere_outside_notify(system: RunningSystem, spy: Spy, tmp_path) -> None:
    marker = uuid.uuid4().hex[:10]
    email = f"Rahasia.{marker}@Example.ORG"
    phone_local = f"0812{int(marker, 16) % 10**8:08d}"
    forms = {email, email.lower(), f"rahasia.{marker}@example.org", phone_local, "+62" + phone_local[1:], marker}

    receipts = []
    for contact in (email, phone_local):
        response = requests.post(
            system.url("intake", "/api/v1/reports"),
            data={
                "category": "parkir-liar",
                "description": "Parkir di trotoar",
                "lat": BLOK_M[0],
                "lon": BLOK_M[1],
                "contact": contact,
            },
            files={"photo": ("p.jpg", jpeg_with_gps(*BLOK_M), "image/jpeg")},
            headers=client_headers(),
            timeout=30,
        )
        assert response.status_code == 201, response.text
        receipts.append(response.json())

    # walk the first report through its statuses while a citizen watches the live stream
    receipt = receipts[0]
    stream = SseListener(receipt["stream_url"])
    tracking_url = system.url("intake", f"/api/v1/reports/{receipt['tracking_token']}")
    wait_for(lambda: requests.get(tracking_url, timeout=5).json()["responsible_opd"], 10, message="routed")
    transitions = system.url("intake", f"/api/v1/opd/reports/{receipt['report_id']}/transitions")
    headers = system.opd_headers(PARKING_OPD)
    assert requests.post(transitions, json={"status": "dikerjakan", "note": "OTW"}, headers=headers).status_code == 200
    done = requests.post(
        transitions,
        data={"status": "selesai", "note": "Beres"},
        files={"photo": ("bukti.jpg", jpeg_with_gps(*BLOK_M), "image/jpeg")},
        headers=headers,
        timeout=30,
    )
    assert done.status_code == 200
    stream.next_matching(lambda f: f["json"].get("status") == "selesai")
    stream.close()

    # notify did receive both contacts (positive control: the search below would find a leak)
    logs = wait_for(
        lambda: (text := system.logs()).count("contact registered for notifications") >= 2 and text,
        10,
        message="notify registering the contacts",
    )

    public = [
        requests.get(tracking_url, timeout=10).text,
        requests.get(system.url("intake", f"/api/v1/reports/{receipts[1]['tracking_token']}"), timeout=10).text,
        requests.get(system.url("intake", f"/api/v1/opd/reports/{receipt['report_id']}"), headers=headers).text,
        requests.get(system.url("stats", "/api/v1/stats/summary"), timeout=10).text,
        json.dumps(receipts),
        json.dumps([f["json"] for f in stream.received]),
    ]
    metrics = [
        requests.get(system.url(s, "/metrics"), timeout=10).text for s in ("intake", "routing", "notify", "stats")
    ]
    messages = spy.drain() + peek_all_queues(system)
    assert any(receipt["report_id"] in m for m in messages), "the spy saw the report's messages"

    for where, texts in {
        "log lines": [logs],
        "metrics": metrics,
        "public responses": public,
        "messages": messages,
    }.items():
        for form in forms:
            leaks = [t[:200] for t in texts if form.lower() in t.lower()]
            assert not leaks, f"contact {form!r} found in {where}: {leaks[:2]}"


def test_no_stored_photo_carries_exif_or_gps(system: RunningSystem, tmp_path) -> None:
    exiftool = shutil.which("exiftool")
    assert exiftool, "exiftool (Debian libimage-exiftool-perl) is required"
    # at least one photo submitted with GPS EXIF is in the store (this module's other test, or this one)
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": "jalan", "description": "Jalan retak", "lat": BLOK_M[0], "lon": BLOK_M[1]},
        files={"photo": ("p.jpg", jpeg_with_gps(*BLOK_M), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201
    client = system.s3.client()
    objects = list(client.list_objects(system.s3.bucket, prefix="photos/", recursive=True))
    assert objects
    paths = []
    for index, obj in enumerate(objects):
        path = tmp_path / f"{index}.jpg"
        path.write_bytes(client.get_object(system.s3.bucket, obj.object_name).read())
        paths.append(str(path))
    found = json.loads(subprocess.run([exiftool, "-json", "-a", "-G1", *paths], capture_output=True, check=True).stdout)
    for tags in found:
        leaked = [
            k for k in tags if "GPS" in k or k.split(":")[0] in ("EXIF", "ExifIFD", "IFD0", "XMP-exif", "XMP-tiff")
        ]
        assert not leaked, f"{tags['SourceFile']}: {leaked}"
    print(f"\nexiftool checked {len(found)} stored photos: no EXIF, no GPS")
