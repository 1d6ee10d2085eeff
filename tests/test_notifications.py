"""Notifications end to end: a real SMTP server (aiosmtpd) and webhook receivers on loopback, a system of its own on the
real RabbitMQ. Citizens get an e-mail (or a relay webhook for a phone number) at every step of their report, with the
tracking link and a working unsubscribe link; agencies get signed webhooks and e-mails; a flaky receiver gets exactly
one accepted delivery, a dead one is dead-lettered while the others keep flowing; contacts are deleted after the
retention period and are found nowhere outside notify."""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from aiosmtpd.controller import Controller
from kombu import Connection, Producer

from jaklapor.events import ReportEscalated, ReportStatusChanged
from jaklapor.messaging import event_exchange
from jaklapor.vocabulary import utcnow
from services.notify.signing import verify_signature
from tests.photo_fixtures import jpeg_with_gps
from tests.system import (
    ROOT,
    MongoServerStandIn,
    RunningSystem,
    SseListener,
    Vhost,
    client_headers,
    free_port,
    s3_server,
    start_system,
    wait_for,
)
from tests.test_privacy import Spy, peek_all_queues

pytestmark = pytest.mark.e2e

BLOK_M = (-6.2443, 106.8003)  # Melawai, Kebayoran Baru, Jakarta Selatan
# what each category at Blok M is routed to, and how that OPD's receiver behaves
OK_OPD = "sudin-perhubungan-jakarta-selatan"  # parkir-liar: answers 200 at once
FLAKY_OPD = "kelurahan-melawai"  # sampah: fails twice per delivery, then 200
DOWN_OPD = "sudin-bina-marga-jakarta-selatan"  # jalan: always 503
SLOW_OPD = "sudin-pertamanan-hutan-kota-jakarta-selatan"  # pohon: answers after 3 s (the timeout is 1 s)
KECAMATAN = "kecamatan-kebayoran-baru"  # receives hand-overs and escalations: answers 200
SECRETS = {
    OK_OPD: "perhubungan-webhook-secret-0001",
    FLAKY_OPD: "melawai-webhook-secret-000002",
    DOWN_OPD: "bina-marga-webhook-secret-0003",
    SLOW_OPD: "pertamanan-webhook-secret-0004",
    KECAMATAN: "kecamatan-webhook-secret-00006",
}
OK_OPD_EMAIL = "posko.perhubungan.js@example.org"
RELAY_SECRET = "citizen-relay-secret-00000005"
RETENTION_SECONDS = 2.0
MAX_ATTEMPTS = 4
SLOW_SECONDS = 3.0
JK_NUMBER = re.compile(r"JK-\d{8}-\d{6}")
SKIPPED = "jaklapor_notify_notifications_skipped_total"


# ---- a real SMTP server --------------------------------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(
                {"rcpt": list(envelope.rcpt_tos), "message": message, "raw": envelope.content, "at": time.monotonic()}
            )
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if address.lower() in (r.lower() for r in m["rcpt"])]

    def wait_for(self, address: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict:
        return wait_for(
            lambda: next((m for m in self.to(address) if predicate(m)), None),
            timeout,
            message=f"an e-mail to {address}",
        )

    def all_raw(self) -> list[str]:
        with self.lock:
            return [m["raw"].decode("utf-8", "replace") for m in self.messages]


def body_of(mail: dict[str, Any]) -> str:
    return mail["message"].get_body(preferencelist=("plain",)).get_content()


# ---- webhook receivers ---------------------------------------------------------------------------------------------


class Hooks:
    """Threaded HTTP receivers on one port; the path says how they behave: /ok, /flaky (503 twice per delivery, then
    200), /down (always 503), /slow (answers after SLOW_SECONDS)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.failures: dict[str, int] = {}
        self.switch_status = 503  # what /switch answers (the test flips it)
        self.hang_first = True  # /hang holds the first request of each delivery for a minute
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                delivery = self.headers.get("X-Jaklapor-Delivery", "")
                status = 200
                if self.path.startswith("/flaky"):
                    with hooks.lock:
                        seen = hooks.failures.get(delivery, 0)
                        hooks.failures[delivery] = seen + 1
                    status = 503 if seen < 2 else 200
                elif self.path.startswith("/down"):
                    status = 503
                elif self.path.startswith("/switch"):
                    status = hooks.switch_status
                hang = False
                if self.path.startswith("/hang"):
                    with hooks.lock:
                        hang = hooks.hang_first and delivery not in hooks.failures
                        hooks.failures[delivery] = 1
                with hooks.lock:
                    hooks.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": body,
                            "json": json.loads(body),
                            "status": status,
                            "at": time.monotonic(),
                        }
                    )
                if self.path.startswith("/slow"):
                    time.sleep(SLOW_SECONDS)
                if hang:
                    time.sleep(60)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting (slow receiver)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def received(self, path_prefix: str, report_id: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r["path"].startswith(path_prefix) and (report_id is None or r["json"].get("report_id") == report_id)
            ]


# ---- the system ----------------------------------------------------------------------------------------------------


@dataclass
class Setup:
    system: RunningSystem
    inbox: Inbox
    hooks: Hooks
    smtp_port: int


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("notifications")
    inbox = Inbox()
    smtp_port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    hooks = Hooks()
    hooks.start()
    channels = {
        OK_OPD: {"webhook": {"url": hooks.url("/ok/perhubungan"), "secret": SECRETS[OK_OPD]}, "email": OK_OPD_EMAIL},
        FLAKY_OPD: {"webhook": {"url": hooks.url("/flaky/melawai"), "secret": SECRETS[FLAKY_OPD]}},
        DOWN_OPD: {"webhook": {"url": hooks.url("/down/bina-marga"), "secret": SECRETS[DOWN_OPD]}},
        SLOW_OPD: {"webhook": {"url": hooks.url("/slow/pertamanan"), "secret": SECRETS[SLOW_OPD]}},
        KECAMATAN: {"webhook": {"url": hooks.url("/ok/kecamatan"), "secret": SECRETS[KECAMATAN]}},
    }
    channels_file = tmp / "opd-channels.yaml"
    channels_file.write_text(yaml.safe_dump(channels))
    vhost = Vhost.create()
    s3 = s3_server(tmp / "s3")
    s3.start()
    system = None
    try:
        system = start_system(
            tmp,
            vhost,
            s3,
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(smtp_port),
            SMTP_STARTTLS="false",
            SMTP_FROM="JakLapor <noreply@jaklapor.example.org>",
            OPD_CHANNELS_FILE=str(channels_file),
            CITIZEN_WEBHOOK_URL=hooks.url("/ok/relay"),
            CITIZEN_WEBHOOK_SECRET=RELAY_SECRET,
            WEBHOOK_TIMEOUT_SECONDS="1",
            DELIVERY_BACKOFF_BASE_SECONDS="0.3",
            DELIVERY_BACKOFF_MAX_SECONDS="1",
            DELIVERY_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
            DELIVERY_POLL_SECONDS="0.1",
            DELIVERY_PER_DESTINATION="2",
            CONTACT_RETENTION_DAYS=repr(RETENTION_SECONDS / 86400),
            CONTACT_PURGE_CHECK_SECONDS="0.2",
        )
        yield Setup(system, inbox, hooks, smtp_port)
    finally:
        if system is not None:
            system.stop()
        s3.stop()
        vhost.delete()
        controller.stop()
        hooks.stop()


def submit(system: RunningSystem, category: str, contact: str | None = None, description: str = "") -> dict:
    data = {"category": category, "description": description or f"Laporan {category}", "lat": BLOK_M[0]}
    data["lon"] = BLOK_M[1]
    if contact is not None:
        data["contact"] = contact
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data=data,
        files={"photo": ("p.jpg", jpeg_with_gps(*BLOK_M), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def transition(
    system: RunningSystem, receipt: dict, opd: str, status: str, note: str, photo: bool = False, **extra: str
) -> None:
    """Set a status as the OPD's own system would: a report still being routed answers 409 `not_routed_yet` with
    Retry-After, and the client asks again (a refusal writes nothing)."""
    url = system.url("intake", f"/api/v1/opd/reports/{receipt['report_id']}/transitions")
    headers = system.opd_headers(opd)
    fields = {"status": status, "note": note, **extra}

    def attempt() -> tuple[requests.Response] | None:  # in a tuple: a refused Response is falsy
        if photo:
            files = {"photo": ("bukti.jpg", jpeg_with_gps(*BLOK_M), "image/jpeg")}
            response = requests.post(url, data=fields, files=files, headers=headers, timeout=30)
        else:
            response = requests.post(url, json=fields, headers=headers, timeout=30)
        routing = response.status_code == 409 and response.json()["error"]["code"] == "not_routed_yet"
        return None if routing else (response,)

    (response,) = wait_for(attempt, 30, interval=0.2, message=f"{receipt['report_id']} routed")
    assert response.status_code == 200, response.text


def metric(system: RunningSystem, name: str, **labels: str) -> float:
    """The value of one series of notify's /metrics (whatever order its labels are printed in)."""
    for line in requests.get(system.url("notify", "/metrics"), timeout=10).text.splitlines():
        series, _, value = line.rpartition(" ")
        metric_name, _, label_text = series.partition("{")
        if metric_name == name and dict(re.findall(r'(\w+)="([^"]*)"', label_text)) == labels:
            return float(value)
    return 0.0


def deliveries(system: RunningSystem, channel: str, audience: str, outcome: str) -> float:
    return metric(system, "jaklapor_notify_deliveries_total", channel=channel, audience=audience, outcome=outcome)


def links_in(text: str) -> tuple[str, str]:
    tracking = re.search(r"http://\S+/api/v1/reports/[A-Za-z0-9_-]+", text)
    unsubscribe = re.search(r"http://\S+/api/v1/unsubscribe/[A-Za-z0-9_-]+", text)
    assert tracking and unsubscribe, text
    return tracking.group(0), unsubscribe.group(0)


def new_contact() -> str:
    return f"warga.{uuid.uuid4().hex[:10]}@example.org"


# ---- citizens ------------------------------------------------------------------------------------------------------


def test_citizen_gets_an_email_at_every_step_and_the_agency_a_signed_webhook(setup: Setup) -> None:
    system, inbox = setup.system, setup.inbox
    contact = new_contact()
    receipt = submit(system, "parkir-liar", contact, "Mobil parkir di trotoar depan Blok M Square")
    report_id = receipt["report_id"]
    steps = [
        ("Menunggu", None),
        ("Dikerjakan", "Petugas menuju lokasi"),
        ("Selesai", "Kendaraan sudah diderek"),
    ]
    mails = [inbox.wait_for(contact, lambda m: "Menunggu" in m["message"]["Subject"], 15)]
    transition(system, receipt, OK_OPD, "dikerjakan", steps[1][1] or "")
    mails.append(inbox.wait_for(contact, lambda m: "Dikerjakan" in m["message"]["Subject"]))
    transition(system, receipt, OK_OPD, "selesai", steps[2][1] or "", photo=True)
    mails.append(inbox.wait_for(contact, lambda m: "Selesai" in m["message"]["Subject"]))

    for mail, (label, note) in zip(mails, steps, strict=True):
        message = mail["message"]
        text = body_of(mail)
        assert mail["rcpt"] == [contact] and message["To"] == contact
        assert message["Subject"] == f"[JakLapor] Laporan {report_id}: {label}"
        assert f"Status        : {label}" in text
        assert set(JK_NUMBER.findall(text + message["Subject"])) == {report_id}, "only this report is mentioned"
        if note:
            assert f"Catatan       : {note}" in text and f"Note from the agency: {note}" in text
        tracking, unsubscribe = links_in(text)
        assert tracking == receipt["tracking_url"]
        assert unsubscribe.startswith(system.url("notify", "/api/v1/unsubscribe/"))
        assert message["List-Unsubscribe"] == f"<{unsubscribe}>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # the link opens this report's tracking view
        view = requests.get(tracking, timeout=10)
        assert view.status_code == 200 and view.json()["report_id"] == report_id
    assert "Suku Dinas Perhubungan Kota Administrasi Jakarta Selatan" in body_of(mails[0])
    assert "Laporan Anda telah selesai ditangani" in body_of(mails[2])
    assert len({links_in(body_of(m))[1] for m in mails}) == 1, "one unsubscribe link per subscription"
    assert len(inbox.to(contact)) == 3, "one e-mail per step, no duplicates"

    # the agency's system got the new report, signed with its secret; its officers got an e-mail
    (hook,) = wait_for(lambda: setup.hooks.received("/ok/perhubungan", report_id), 10, message="agency webhook")
    assert hook["json"]["type"] == "report_assigned" and hook["json"]["opd"] == OK_OPD
    assert hook["json"]["response_deadline"] and hook["json"]["area"]["kelurahan"] == "Melawai"
    assert hook["json"]["transitions_url"].endswith(f"/api/v1/opd/reports/{report_id}/transitions")
    signature = hook["headers"]["X-Jaklapor-Signature"]
    assert verify_signature(SECRETS[OK_OPD], signature, hook["body"])
    assert not verify_signature(SECRETS[FLAKY_OPD], signature, hook["body"])
    assert not verify_signature(SECRETS[OK_OPD], signature, hook["body"] + b" ")
    agency_mail = inbox.wait_for(OK_OPD_EMAIL, lambda m: report_id in m["message"]["Subject"])
    assert "Laporan baru" in agency_mail["message"]["Subject"] and contact not in agency_mail["raw"].decode()
    assert deliveries(system, "email", "citizen", "sent") >= 3


def test_the_live_stream_shows_each_status_and_ends_after_the_final_one(setup: Setup) -> None:
    system = setup.system
    receipt = submit(system, "parkir-liar", description="Mobil parkir di depan halte Blok M")
    stream = SseListener(receipt["stream_url"])
    routed = stream.next_matching(lambda f: f["event"] == "routed", timeout=15)
    assert (routed["json"]["status"], routed["json"]["status_label"]) == ("menunggu", "Menunggu")
    transition(system, receipt, OK_OPD, "dikerjakan", "Petugas menuju lokasi")
    transition(system, receipt, OK_OPD, "selesai", "Kendaraan sudah diderek", photo=True)
    done = stream.next_matching(lambda f: f["json"].get("status") == "selesai", timeout=15)
    # nothing follows a final status: the server ends the stream after sending it
    stream.frames_until_end(15)
    stream.close()

    # a client reconnecting from an earlier entry gets the rest, then the stream ends
    again = SseListener(receipt["stream_url"], headers={"Last-Event-ID": routed["id"]})
    assert again.status_code == 200
    rest = again.frames_until_end(15)
    again.close()
    assert [(f["event"], f["json"]["status"]) for f in rest] == [
        ("status_changed", "dikerjakan"),
        ("status_changed", "selesai"),
    ]
    # one that has the final entry is told there is nothing more (204: an EventSource stops reconnecting)
    last = requests.get(receipt["stream_url"], headers={"Last-Event-ID": done["id"]}, timeout=10)
    assert last.status_code == 204 and last.content == b""


def publish_event(system: RunningSystem, event: Any) -> None:
    """Publish an event as its service would (for steps the test cannot wait for, such as a missed deadline)."""
    with Connection(system.amqp_uri) as connection:
        Producer(connection.channel()).publish(
            event.to_message(),
            exchange=event_exchange(event.source).name,
            routing_key=event.type_name,
            serializer="json",
            delivery_mode=2,
        )


def test_hand_over_and_escalation_reach_both_agencies_and_the_citizen(setup: Setup) -> None:
    system, inbox, hooks = setup.system, setup.inbox, setup.hooks
    contact = new_contact()
    receipt = submit(system, "parkir-liar", contact)
    report_id = receipt["report_id"]
    inbox.wait_for(contact, lambda m: "Menunggu" in m["message"]["Subject"], 15)

    note = "Bukan kewenangan kami; mohon ditangani kecamatan"
    transition(system, receipt, OK_OPD, "koordinasi", note, target_opd=KECAMATAN)
    handed = inbox.wait_for(contact, lambda m: "Koordinasi" in m["message"]["Subject"])
    assert "dikoordinasikan ke Kecamatan Kebayoran Baru" in body_of(handed) and note in body_of(handed)
    (forwarded,) = wait_for(lambda: hooks.received("/ok/kecamatan", report_id), 10, message="hand-over webhook")
    assert forwarded["json"]["type"] == "report_forwarded" and forwarded["json"]["from_opd"] == OK_OPD
    assert forwarded["json"]["forward_kind"] == "koordinasi" and forwarded["json"]["note"] == note
    assert verify_signature(SECRETS[KECAMATAN], forwarded["headers"]["X-Jaklapor-Signature"], forwarded["body"])
    # routing delivering the hand-over to the kecamatan tells nobody again
    time.sleep(0.5)
    assert len(hooks.received("/ok/kecamatan", report_id)) == 1 and len(inbox.to(contact)) == 2

    # the kecamatan misses its deadline (as intake's deadline timer would publish it): both agencies hear of it
    escalated = ReportEscalated(
        report_id=report_id,
        version=50,
        category="parkir-liar",
        status="koordinasi",
        from_opd=KECAMATAN,
        to_opd=OK_OPD,
        deadline=utcnow(),
        hop=2,
        submitted_at=receipt["submitted_at"],
    )
    publish_event(system, escalated)
    overdue = wait_for(
        lambda: [r for r in hooks.received("/ok/kecamatan", report_id) if r["json"]["type"] == "report_overdue"],
        10,
        message="the OPD that missed its deadline told",
    )
    assert overdue[0]["json"]["to_opd"] == OK_OPD and overdue[0]["json"]["missed_deadline"]
    moved_up = wait_for(
        lambda: [r for r in hooks.received("/ok/perhubungan", report_id) if r["json"]["type"] == "report_escalated"],
        10,
        message="the OPD receiving it told",
    )
    assert moved_up[0]["json"]["from_opd"] == KECAMATAN
    late = inbox.wait_for(contact, lambda m: "terlewati" in body_of(m))
    assert "dinaikkan ke Suku Dinas Perhubungan" in body_of(late)


def test_phone_contact_is_notified_through_the_relay_webhook(setup: Setup) -> None:
    system = setup.system
    phone = f"0813{uuid.uuid4().int % 10**8:08d}"
    receipt = submit(system, "parkir-liar", phone)
    (hook,) = wait_for(lambda: setup.hooks.received("/ok/relay", receipt["report_id"]), 15, message="relay webhook")
    body = hook["json"]
    assert verify_signature(RELAY_SECRET, hook["headers"]["X-Jaklapor-Signature"], hook["body"])
    assert body["type"] == "citizen_notification" and body["to"] == "+62" + phone[1:]
    assert body["status"] == "menunggu" and body["tracking_url"] == receipt["tracking_url"]
    assert receipt["report_id"] in body["text"] and body["unsubscribe_url"] in body["text"]
    assert deliveries(system, "webhook", "citizen", "sent") >= 1


def test_the_unsubscribe_link_stops_further_messages(setup: Setup) -> None:
    system, inbox = setup.system, setup.inbox
    contact = new_contact()
    receipt = submit(system, "parkir-liar", contact)
    first = inbox.wait_for(contact, lambda m: True, 15)
    _tracking, unsubscribe = links_in(body_of(first))
    skipped_before = metric(system, SKIPPED, audience="citizen", reason="unsubscribed")

    page = requests.get(unsubscribe, headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "tidak akan menerima pemberitahuan lagi" in page.text and contact not in page.text
    again = requests.get(unsubscribe, timeout=10)
    assert again.status_code == 200 and again.json()["status"] == "unsubscribed"
    one_click = requests.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}, timeout=10)  # RFC 8058
    assert one_click.status_code == 200 and one_click.json()["status"] == "unsubscribed"
    assert requests.get(unsubscribe[:-4] + "AAAA", timeout=10).status_code == 404

    transition(system, receipt, OK_OPD, "dikerjakan", "Petugas menuju lokasi")
    # notify counts the step it did not send when it handles the event
    wait_for(
        lambda: metric(system, SKIPPED, audience="citizen", reason="unsubscribed") > skipped_before,
        5,
        message="the step counted as not sent",
    )
    time.sleep(0.5)
    assert [m["message"]["Subject"] for m in inbox.to(contact)] == [first["message"]["Subject"]]
    assert metric(system, "jaklapor_notify_contacts_removed_total", reason="unsubscribed") >= 1


def test_contact_is_deleted_after_the_retention_period(setup: Setup) -> None:
    system, inbox = setup.system, setup.inbox
    contact = new_contact()
    receipt = submit(system, "parkir-liar", contact)
    report_id = receipt["report_id"]
    first = inbox.wait_for(contact, lambda m: True, 15)
    _tracking, unsubscribe = links_in(body_of(first))
    transition(system, receipt, OK_OPD, "dikerjakan", "Petugas menuju lokasi")
    transition(system, receipt, OK_OPD, "selesai", "Sudah ditertibkan", photo=True)
    done = inbox.wait_for(contact, lambda m: "Selesai" in m["message"]["Subject"])
    finished = time.monotonic()
    assert f"dihapus {RETENTION_SECONDS / 86400:g} hari" in body_of(done)

    purged = wait_for(
        lambda: [
            json.loads(line)
            for line in system.logs().splitlines()
            if "contact purged after the retention period" in line and report_id in line
        ],
        15,
        message="the contact purged",
    )
    assert time.monotonic() - finished < RETENTION_SECONDS + 5
    assert purged[0]["report_id"] == report_id and contact not in json.dumps(purged)
    assert metric(system, "jaklapor_notify_contacts_removed_total", reason="retention") >= 1
    # the link in the old e-mails now says the contact is gone
    assert requests.get(unsubscribe, timeout=10).json()["status"] == "removed"

    # a later status change of this report (published as intake would) finds no contact to write to
    removed_before = metric(system, SKIPPED, audience="citizen", reason="contact_removed")
    later = ReportStatusChanged(
        report_id=report_id,
        version=99,
        from_status="selesai",
        to_status="selesai",
        actor_opd=OK_OPD,
        note="Catatan tambahan setelah selesai",
        category="parkir-liar",
        submitted_at=receipt["submitted_at"],
    )
    publish_event(system, later)
    wait_for(
        lambda: metric(system, SKIPPED, audience="citizen", reason="contact_removed") > removed_before,
        5,
        message="the late step counted as not sent",
    )
    time.sleep(0.5)
    assert len(inbox.to(contact)) == 3


# ---- agencies: retries, dead letters, isolation ---------------------------------------------------------------------


def deliveries_to(hooks: Hooks, prefix: str, report_id: str) -> dict[str, list[dict[str, Any]]]:
    by_delivery: dict[str, list[dict[str, Any]]] = {}
    for request in hooks.received(prefix, report_id):
        by_delivery.setdefault(request["headers"]["X-Jaklapor-Delivery"], []).append(request)
    return by_delivery


def test_a_receiver_that_fails_twice_gets_exactly_one_accepted_delivery(setup: Setup) -> None:
    system, hooks = setup.system, setup.hooks
    retried_before = deliveries(system, "webhook", "opd", "retried")
    receipt = submit(system, "sampah", description="Sampah menumpuk di pinggir jalan")
    report_id = receipt["report_id"]
    wait_for(
        lambda: any(r["status"] == 200 for r in hooks.received("/flaky", report_id)), 15, message="accepted at last"
    )
    time.sleep(1.5)  # longer than any backoff step: nothing more may arrive
    (attempts,) = deliveries_to(hooks, "/flaky", report_id).values()
    assert [r["status"] for r in attempts] == [503, 503, 200]
    assert [r["headers"]["X-Jaklapor-Attempt"] for r in attempts] == ["1", "2", "3"]
    assert len({r["body"] for r in attempts}) == 1, "every attempt sends the same body"
    assert all(verify_signature(SECRETS[FLAKY_OPD], r["headers"]["X-Jaklapor-Signature"], r["body"]) for r in attempts)
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.15 and gaps[1] >= 0.3, f"exponential backoff between attempts: {gaps}"
    assert deliveries(system, "webhook", "opd", "retried") >= retried_before + 2


def test_a_dead_receiver_is_dead_lettered_while_other_deliveries_keep_flowing(setup: Setup) -> None:
    system, hooks = setup.system, setup.hooks
    dead_before = deliveries(system, "webhook", "opd", "dead_lettered")
    doomed = [submit(system, "jalan", description=f"Jalan berlubang {i}") for i in range(3)]
    stuck = [submit(system, "pohon", description=f"Pohon tumbang {i}") for i in range(3)]
    wait_for(lambda: hooks.received("/slow") and hooks.received("/down"), 15, message="the bad receivers are being hit")

    # while those fail and time out, a new report reaches the healthy agency at once
    started = time.monotonic()
    healthy = submit(system, "parkir-liar", description="Parkir liar saat receiver lain bermasalah")
    wait_for(lambda: hooks.received("/ok/perhubungan", healthy["report_id"]), 5, message="the healthy delivery")
    latency = time.monotonic() - started
    assert latency < 2.0, f"the healthy receiver waited {latency:.2f}s"
    assert len(hooks.received("/slow")) < len(stuck) * MAX_ATTEMPTS, "the slow receiver was still being tried"

    # each delivery to the dead receiver is tried MAX_ATTEMPTS times, then dead-lettered with its reason logged
    def all_dead() -> bool:
        logs = system.logs()
        return all(
            any("delivery dead-lettered" in line and r["report_id"] in line for line in logs.splitlines())
            for r in doomed
        )

    wait_for(all_dead, 20, message="the dead receiver's deliveries dead-lettered")
    for receipt in doomed:
        (attempts,) = deliveries_to(hooks, "/down", receipt["report_id"]).values()
        assert len(attempts) == MAX_ATTEMPTS
    line = next(
        json.loads(line)
        for line in system.logs().splitlines()
        if "delivery dead-lettered" in line and doomed[0]["report_id"] in line
    )
    assert (line["error"], line["attempt"], line["channel"], line["audience"]) == (
        "http 503",
        MAX_ATTEMPTS,
        "webhook",
        "opd",
    )
    assert deliveries(system, "webhook", "opd", "dead_lettered") >= dead_before + 3
    # the slow receiver's deliveries time out: failures, never a hang
    wait_for(
        lambda: all(
            any("delivery dead-lettered" in line and r["report_id"] in line for line in system.logs().splitlines())
            for r in stuck
        ),
        30,
        message="the slow receiver's deliveries dead-lettered after timeouts",
    )
    assert '"error": "webhook timeout"' in system.logs()


# ---- configuration -------------------------------------------------------------------------------------------------


def test_an_unknown_opd_in_the_channels_file_stops_notify_at_start(setup: Setup, tmp_path: Path) -> None:
    bad = tmp_path / "channels.yaml"
    bad.write_text(yaml.safe_dump({"dinas-yang-tidak-ada": {"email": "x@example.org"}, OK_OPD: {"webhook": {}}}))
    env = setup.system.build_env()
    env.update(OPD_CHANNELS_FILE=str(bad), NOTIFY_HTTP=f"127.0.0.1:{free_port()}")
    result = subprocess.run(
        [sys.executable, "-m", "jaklapor_app.cli", "run", "--no-s3-standin", "--services", "notify"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "dinas-yang-tidak-ada: unknown OPD code" in output
    assert f"{OK_OPD}.webhook: url is missing" in output


# ---- privacy -------------------------------------------------------------------------------------------------------


def test_the_contact_is_found_nowhere_outside_notify(setup: Setup) -> None:
    system, inbox, hooks = setup.system, setup.inbox, setup.hooks
    spy = Spy(system.amqp_uri)
    try:
        marker = uuid.uuid4().hex[:10]
        contact = f"Rahasia.{marker}@Example.ORG"
        phone = f"0812{int(marker, 16) % 10**8:08d}"
        forms = {contact.lower(), f"rahasia.{marker}@example.org", phone, "+62" + phone[1:], phone[1:], marker}
        receipt = submit(system, "parkir-liar", contact)
        by_phone = submit(system, "parkir-liar", phone)
        transition(system, receipt, OK_OPD, "dikerjakan", "Petugas menuju lokasi")
        transition(system, receipt, OK_OPD, "selesai", "Beres", photo=True)
        # positive controls: the contacts did reach the citizen's channels, so the search below would find a leak
        inbox.wait_for(f"rahasia.{marker}@example.org", lambda m: "Selesai" in m["message"]["Subject"])
        wait_for(lambda: hooks.received("/ok/relay", by_phone["report_id"]), 10, message="relay")
        wait_for(lambda: hooks.received("/ok/perhubungan", receipt["report_id"]), 10, message="agency webhook")

        agency_mail = [m for m in inbox.all_raw() if OK_OPD_EMAIL in m]
        assert agency_mail
        headers = system.opd_headers(OK_OPD)
        public = [
            requests.get(receipt["tracking_url"], timeout=10).text,
            requests.get(by_phone["tracking_url"], timeout=10).text,
            requests.get(system.url("intake", f"/api/v1/opd/reports/{receipt['report_id']}"), headers=headers).text,
            requests.get(system.url("stats", "/api/v1/stats/summary"), timeout=10).text,
        ]
        metrics = [
            requests.get(system.url(s, "/metrics"), timeout=10).text for s in ("intake", "routing", "notify", "stats")
        ]
        agency_hooks = [r["body"].decode() for r in hooks.received("/") if not r["path"].startswith("/ok/relay")]
        messages = spy.drain() + peek_all_queues(system)
        assert any(receipt["report_id"] in m for m in messages), "the spy saw the report's messages"
        for where, texts in {
            "log lines": [system.logs()],
            "metrics": metrics,
            "public responses": public,
            "broker messages": messages,
            "agency webhooks": agency_hooks,
            "agency e-mails": agency_mail,
        }.items():
            for form in forms:
                leaks = [t[:200] for t in texts if form.lower() in t.lower()]
                assert not leaks, f"contact {form!r} found in {where}: {leaks[:2]}"
    finally:
        spy.close()


# ---- restarts ------------------------------------------------------------------------------------------------------


def test_deliveries_survive_a_crash_of_notify(tmp_path: Path) -> None:
    """notify killed (SIGKILL) with one delivery waiting for its retry and one attempt in flight; the store (the
    MongoDB wire stand-in) outlives it. After a restart both are delivered, each accepted exactly once."""
    hooks = Hooks()
    hooks.start()
    channels = {
        FLAKY_OPD: {"webhook": {"url": hooks.url("/switch/melawai"), "secret": SECRETS[FLAKY_OPD]}},
        OK_OPD: {"webhook": {"url": hooks.url("/hang/perhubungan"), "secret": SECRETS[OK_OPD]}},
    }
    channels_file = tmp_path / "opd-channels.yaml"
    channels_file.write_text(yaml.safe_dump(channels))
    vhost, s3, mongo = Vhost.create(), s3_server(tmp_path / "s3"), MongoServerStandIn()
    s3.start()
    mongo.start()
    system = None
    try:
        system = start_system(
            tmp_path,
            vhost,
            s3,
            mongo_uri=mongo.uri,
            groups=(("intake", "routing", "stats"), ("notify",)),
            OPD_CHANNELS_FILE=str(channels_file),
            DELIVERY_BACKOFF_BASE_SECONDS="1",
            DELIVERY_BACKOFF_MAX_SECONDS="1",
            DELIVERY_POLL_SECONDS="0.1",
            WEBHOOK_TIMEOUT_SECONDS="10",
            DELIVERY_ATTEMPT_TIMEOUT_SECONDS="2",  # a lease of 2 * 2 + 5 = 9 s
        )
        waiting = submit(system, "sampah", description="Sampah di selokan")
        in_flight = submit(system, "parkir-liar", description="Parkir liar di trotoar")
        wait_for(lambda: hooks.received("/switch", waiting["report_id"]), 15, message="first attempt, refused")
        wait_for(lambda: hooks.received("/hang", in_flight["report_id"]), 15, message="an attempt in flight")
        wait_for(
            lambda: any(
                "delivery attempt failed; retrying" in line and waiting["report_id"] in line
                for line in system.logs().splitlines()
            ),
            5,
            message="the retry scheduled",
        )
        assert system.send_signal("notify", signal.SIGKILL) == -signal.SIGKILL
        killed_at = time.monotonic()
        hooks.switch_status = 200
        system.restart("notify")

        wait_for(lambda: len(hooks.received("/switch", waiting["report_id"])) == 2, 10, message="retried after restart")
        wait_for(lambda: len(hooks.received("/hang", in_flight["report_id"])) == 2, 20, message="lease ran out")
        assert time.monotonic() - killed_at >= 5, "the interrupted attempt waited for its lease"
        time.sleep(1.5)
        switch = hooks.received("/switch", waiting["report_id"])
        assert [r["status"] for r in switch] == [503, 200]
        assert [r["headers"]["X-Jaklapor-Attempt"] for r in switch] == ["1", "2"]
        hang = hooks.received("/hang", in_flight["report_id"])
        assert len(hang) == 2 and hang[0]["body"] == hang[1]["body"]
        assert len({r["headers"]["X-Jaklapor-Delivery"] for r in switch + hang}) == 2
    finally:
        if system is not None:
            system.stop()
        mongo.stop()
        s3.stop()
        vhost.delete()
        hooks.stop()
