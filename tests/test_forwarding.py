"""Koordinasi, disposisi and escalation on the real RabbitMQ: the report moves to the new OPD's queue, the old OPD can
no longer act, the history shows every hop, and a missed response deadline moves the report up the chain."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import pytest
import requests

from tests.photo_fixtures import jpeg_with_gps
from tests.system import (
    OpdQueueReader,
    RunningSystem,
    SseListener,
    Vhost,
    client_headers,
    s3_server,
    start_system,
    wait_for,
)

pytestmark = pytest.mark.e2e

MELAWAI = (-6.2443, 106.8003)  # Kebayoran Baru, Jakarta Selatan


def submit(system: RunningSystem, category: str, description: str) -> dict:
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": category, "description": description, "lat": MELAWAI[0], "lon": MELAWAI[1]},
        files={"photo": ("p.jpg", jpeg_with_gps(*MELAWAI), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def tracking(system: RunningSystem, receipt: dict) -> dict:
    return requests.get(system.url("intake", f"/api/v1/reports/{receipt['tracking_token']}"), timeout=10).json()


def assigned_to(system: RunningSystem, receipt: dict, opd: str) -> dict:
    return wait_for(
        lambda: (
            (view := tracking(system, receipt))["responsible_opd"] and view["responsible_opd"]["code"] == opd and view
        ),
        15,
        message=f"{receipt['report_id']} assigned to {opd}",
    )


def transition(system: RunningSystem, receipt: dict, opd: str, **body: str) -> requests.Response:
    return requests.post(
        system.url("intake", f"/api/v1/opd/reports/{receipt['report_id']}/transitions"),
        json=body,
        headers=system.opd_headers(opd),
        timeout=10,
    )


def test_koordinasi_moves_the_report_to_the_other_opd(system: RunningSystem, opd_queues: OpdQueueReader) -> None:
    receipt = submit(system, "sampah", "Jalan ambles di depan pasar, bukan sampah")
    report_id = receipt["report_id"]
    first = assigned_to(system, receipt, "kelurahan-melawai")
    assert first["response_deadline"] is not None
    opd_queues.get("kelurahan-melawai", predicate=lambda b: b["report_id"] == report_id)

    note = "Jalan ambles perlu perbaikan konstruksi; diteruskan ke Sudin Bina Marga"
    handed = transition(
        system,
        receipt,
        "kelurahan-melawai",
        status="koordinasi",
        note=note,
        target_opd="sudin-bina-marga-jakarta-selatan",
    )
    assert handed.status_code == 200, handed.text
    assert handed.json()["responsible_opd"]["code"] == "sudin-bina-marga-jakarta-selatan"

    message, body = opd_queues.get("sudin-bina-marga-jakarta-selatan", predicate=lambda b: b["report_id"] == report_id)
    assert (
        message.delivery_info["routing_key"]
        == "sudin-bina-marga-jakarta-selatan.jakarta-selatan.kebayoran-baru.melawai"
    )
    assert body["hop"] == 1 and body["forwarded_from"] == "kelurahan-melawai"
    assert body["forward_kind"] == "koordinasi" and body["note"] == note
    assert body["status"] == "koordinasi" and body["response_deadline"]

    # the kelurahan can no longer act on it; the Sudin can, but only a Dinas may give a disposisi
    late = transition(system, receipt, "kelurahan-melawai", status="dikerjakan", note="")
    assert late.status_code == 404
    sideways = transition(system, receipt, "sudin-bina-marga-jakarta-selatan", status="disposisi", note="x")
    assert sideways.status_code == 403 and sideways.json()["error"]["code"] == "disposisi_not_allowed"
    taken = transition(
        system, receipt, "sudin-bina-marga-jakarta-selatan", status="dikerjakan", note="Tim menuju lokasi"
    )
    assert taken.status_code == 200, taken.text

    view = tracking(system, receipt)
    hops = [(h["kind"], h["status"], h["actor_opd"]) for h in view["history"]]
    assert hops == [
        ("submitted", "menunggu", None),
        ("routed", "menunggu", "routing"),
        ("transition", "koordinasi", "kelurahan-melawai"),
        ("routed", "koordinasi", "routing"),
        ("transition", "dikerjakan", "sudin-bina-marga-jakarta-selatan"),
    ]
    handover = view["history"][2]
    assert handover["note"] == note and handover["opd"]["code"] == "sudin-bina-marga-jakarta-selatan"
    assert handover["at"]
    assert view["response_deadline"] is None  # answered: the clock stopped


def test_disposisi_goes_from_the_dinas_to_its_suku_dinas(system: RunningSystem, opd_queues: OpdQueueReader) -> None:
    receipt = submit(system, "sampah", "Tumpukan sampah menutup saluran jalan")
    report_id = receipt["report_id"]
    assigned_to(system, receipt, "kelurahan-melawai")
    # the kelurahan hands it to the provincial Dinas Bina Marga, which instructs its Suku Dinas in Jakarta Selatan
    assert (
        transition(
            system,
            receipt,
            "kelurahan-melawai",
            status="koordinasi",
            note="Ke Dinas Bina Marga",
            target_opd="bina-marga",
        ).status_code
        == 200
    )
    assigned_to(system, receipt, "bina-marga")
    refused = transition(
        system, receipt, "bina-marga", status="disposisi", note="x", target_opd="sudin-bina-marga-jakarta-utara"
    )
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "target_opd"

    disposed = transition(system, receipt, "bina-marga", status="disposisi", note="Tangani segera")
    assert disposed.status_code == 200, disposed.text
    assert disposed.json()["responsible_opd"]["code"] == "sudin-bina-marga-jakarta-selatan"
    _message, body = opd_queues.get("sudin-bina-marga-jakarta-selatan", predicate=lambda b: b["report_id"] == report_id)
    assert body["forward_kind"] == "disposisi" and body["forwarded_from"] == "bina-marga" and body["hop"] == 2

    # the Dinas has let go of the report
    assert transition(system, receipt, "bina-marga", status="dikerjakan", note="").status_code == 404


@pytest.fixture(scope="module")
def hasty_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """Deadlines of one second, checked five times a second: the whole chain escalates in seconds."""
    vhost = Vhost.create()
    s3 = s3_server(tmp_path_factory.mktemp("deadlines-s3"))
    s3.start()
    running = start_system(
        tmp_path_factory.mktemp("deadlines"), vhost, s3, RESPONSE_DEADLINE_SECONDS="1", DEADLINE_CHECK_SECONDS="0.2"
    )
    yield running
    running.stop()
    s3.stop()
    vhost.delete()


def metric(system: RunningSystem, service: str, series: str) -> float:
    for line in requests.get(system.url(service, "/metrics"), timeout=10).text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_unanswered_report_escalates_up_the_chain(hasty_system: RunningSystem) -> None:
    system = hasty_system
    receipt = submit(system, "sampah", "Sampah menumpuk sudah seminggu")
    stream = SseListener(receipt["stream_url"])
    chain = ["kelurahan-melawai", "kecamatan-kebayoran-baru", "kota-jakarta-selatan", "lingkungan-hidup"]
    for lower, higher in pairwise(chain):
        frame = stream.next_matching(lambda f, to=higher: f["event"] == "escalated" and f["json"]["to_opd"] == to, 15)
        assert frame["json"]["from_opd"] == lower and frame["json"]["missed_deadline"]
    view = assigned_to(system, receipt, "lingkungan-hidup")
    assert view["escalations"] == 3
    assert [h["kind"] for h in view["history"]].count("escalated") == 3
    escalated = [h for h in view["history"] if h["kind"] == "escalated"]
    assert [h["from_opd"] for h in escalated] == chain[:-1]
    assert all(h["actor_opd"] == "sistem" and h["missed_deadline"] for h in escalated)

    # each level was handed the report on its own queue, saying why
    reader = OpdQueueReader(system.amqp_uri)
    try:
        for lower, higher in pairwise(chain):
            _message, body = reader.get(higher, predicate=lambda b: b["report_id"] == receipt["report_id"])
            assert body["forward_kind"] == "escalation" and body["forwarded_from"] == lower
    finally:
        reader.close()

    # the Dinas is the top: once its deadline passes the report shows as overdue, and ops see it
    wait_for(lambda: tracking(system, receipt)["overdue"], 15, message="overdue at the top of the chain")
    assert metric(system, "intake", "jaklapor_reports_overdue") >= 1
    assert metric(system, "intake", 'jaklapor_reports_escalated_total{from_level="kelurahan"}') >= 1
    answered = transition(system, receipt, "lingkungan-hidup", status="dikerjakan", note="Truk dikirim")
    assert answered.status_code == 200
    assert tracking(system, receipt)["overdue"] is False
    stream.close()


def test_an_answer_before_the_deadline_stops_the_clock(hasty_system: RunningSystem) -> None:
    system = hasty_system
    receipt = submit(system, "sampah", "Sampah di depan rumah")
    assigned_to(system, receipt, "kelurahan-melawai")
    assert transition(system, receipt, "kelurahan-melawai", status="dikerjakan", note="").status_code == 200
    # several deadline checks pass; the report stays with the kelurahan that answered
    checks = metric(system, "intake", 'jaklapor_reports_escalated_total{from_level="kelurahan"}')
    other = submit(system, "sampah", "Pembanding: laporan yang tidak dijawab")
    assigned_to(system, other, "kecamatan-kebayoran-baru")  # the unanswered one escalated meanwhile
    view = tracking(system, receipt)
    assert view["responsible_opd"]["code"] == "kelurahan-melawai" and view["escalations"] == 0
    assert metric(system, "intake", 'jaklapor_reports_escalated_total{from_level="kelurahan"}') >= checks + 1
