"""Duplicates end to end on the real RabbitMQ, with a real SMTP server: a supporter counts once and its contact gets
the report's notifications; routing suggests the earlier report on the OPD's queue message and intake shows it in the
workbench; a merged report follows each change of its primary (its own history, stream and e-mails); the statistics
count one problem, not two, and the rebuild from intake's replay agrees; unmerge puts the report back on its own
course."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller

from tests.photo_fixtures import jpeg_with_gps
from tests.system import (
    ROOT,
    OpdQueueReader,
    RunningSystem,
    SseListener,
    Vhost,
    client_headers,
    free_port,
    s3_server,
    start_system,
    wait_for,
)
from tests.test_notifications import Inbox, body_of

pytestmark = pytest.mark.e2e

BLOK_M = (-6.2443, 106.8003)  # Melawai, Kebayoran Baru
NEAR_BLOK_M = (-6.2437, 106.8004)  # about 70 m north: within routing's 150 m
OPD = "sudin-bina-marga-jakarta-selatan"  # jalan at Blok M
CATEGORY = "jalan"
STATS_OPD = f"/api/v1/stats/agencies?opd={OPD}&min_reports=1"


@dataclass
class Setup:
    system: RunningSystem
    inbox: Inbox


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("duplicates")
    inbox = Inbox()
    smtp_port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
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
            DELIVERY_POLL_SECONDS="0.1",
        )
        yield Setup(system, inbox)
    finally:
        if system is not None:
            system.stop()
        s3.stop()
        vhost.delete()
        controller.stop()


def submit(system: RunningSystem, where: tuple[float, float], contact: str, description: str) -> dict[str, Any]:
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": CATEGORY, "description": description, "lat": where[0], "lon": where[1], "contact": contact},
        files={"photo": ("p.jpg", jpeg_with_gps(*where), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def opd_view(system: RunningSystem, report_id: str) -> dict[str, Any]:
    def routed() -> dict[str, Any] | None:
        response = requests.get(
            system.url("intake", f"/api/v1/opd/reports/{report_id}"), headers=system.opd_headers(OPD), timeout=10
        )
        return response.json() if response.status_code == 200 else None

    return wait_for(routed, 20, message=f"{report_id} routed to {OPD}")


def act(system: RunningSystem, report_id: str, status: str, note: str, photo: bool = False) -> dict[str, Any]:
    url = system.url("intake", f"/api/v1/opd/reports/{report_id}/transitions")
    headers = system.opd_headers(OPD)
    if photo:
        files = {"photo": ("bukti.jpg", jpeg_with_gps(*BLOK_M), "image/jpeg")}
        response = requests.post(url, data={"status": status, "note": note}, files=files, headers=headers, timeout=30)
    else:
        response = requests.post(url, json={"status": status, "note": note}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def support(system: RunningSystem, report_id: str, key: str, contact: str | None = None) -> requests.Response:
    return requests.post(
        system.url("intake", f"/api/v1/reports/public/{report_id}/supporters"),
        json={"contact": contact} if contact else {},
        headers={**client_headers(), "Idempotency-Key": key},
        timeout=10,
    )


def public(system: RunningSystem, report_id: str) -> dict[str, Any]:
    return requests.get(system.url("intake", f"/api/v1/reports/public/{report_id}"), timeout=10).json()


def work_list(system: RunningSystem) -> list[str]:
    response = requests.get(system.url("intake", "/api/v1/opd/reports"), headers=system.opd_headers(OPD), timeout=10)
    return [report["report_id"] for report in response.json()["reports"]]


def stats(system: RunningSystem, path: str) -> dict[str, Any]:
    return requests.get(system.url("stats", path), timeout=10).json()


def rebuild_check(system: RunningSystem) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONGO_URI": system.mongo_uri, "AMQP_URI": system.amqp_uri}
    return subprocess.run(
        [sys.executable, "-m", "jaklapor_app.cli", "stats-rebuild", "--check"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_duplicates_from_support_to_merge_and_back(setup: Setup) -> None:
    system, inbox = setup.system, setup.inbox
    reader = OpdQueueReader(system.amqp_uri)
    try:
        first = submit(system, BLOK_M, "pelapor@example.org", "Jalan berlubang besar di depan Blok M Square")
        first_id = first["report_id"]
        _, message = reader.get(OPD, 20, lambda body: body["report_id"] == first_id)
        assert message["possible_duplicates"] == []
        opd_view(system, first_id)

        # ---- a neighbour supports it instead of filing again: counted once per device, told of every change
        counted = support(system, first_id, "device-of-tetangga-0001", "tetangga@example.org")
        again = support(system, first_id, "device-of-tetangga-0001", "tetangga@example.org")
        other = support(system, first_id, "device-of-warung-00002")
        assert (counted.status_code, again.status_code, other.status_code) == (201, 200, 201)
        assert (counted.json()["counted"], again.json()["counted"]) == (True, False)
        assert public(system, first_id)["supporters"] == 2 == other.json()["supporters"]

        # ---- the same hole reported again 70 m away: routing suggests the first one to the OPD
        second = submit(system, NEAR_BLOK_M, "pelapor2@example.org", "Lubang di jalan dekat Blok M")
        second_id = second["report_id"]
        _, message = reader.get(OPD, 20, lambda body: body["report_id"] == second_id)
        assert message["possible_duplicates"] == [first_id]
        view = opd_view(system, second_id)
        assert [r["report_id"] for r in view["possible_duplicates"]] == [first_id]
        assert view["may_merge"] is True and first_id in [r["report_id"] for r in view["nearby"]]
    finally:
        reader.close()

    # ---- the OPD merges the second into the first: it leaves the work list and its citizen is told
    stream = SseListener(second["stream_url"])
    try:
        merged = requests.post(
            system.url("intake", f"/api/v1/opd/reports/{second_id}/merge"),
            json={"primary_id": first_id},
            headers=system.opd_headers(OPD),
            timeout=10,
        )
        assert merged.status_code == 200, merged.text
        assert merged.json()["merged_into"] == first_id
        assert second_id not in work_list(system) and first_id in work_list(system)
        assert public(system, second_id)["merged_into"] == first_id
        stream.next_matching(lambda f: f["json"].get("kind") == "merged", timeout=15)
        inbox.wait_for("pelapor2@example.org", lambda m: f"digabung ke {first_id}" in body_of(m), timeout=15)

        # ---- the primary's changes reach the merged report through its own aggregate
        act(system, first_id, "dikerjakan", "Petugas menuju lokasi")
        act(system, first_id, "selesai", "Lubang sudah ditambal", photo=True)
        done = wait_for(
            lambda: (v := public(system, second_id))["status"] == "selesai" and v, 20, message="merged follows"
        )
        followed = [e for e in done["history"] if e.get("merged_into") == first_id]
        assert [e["status"] for e in followed] == ["dikerjakan", "selesai"]
        assert followed[-1]["note"] == "Lubang sudah ditambal" and done["evidence_photos"]
        frame = stream.next_matching(lambda f: f["json"].get("status") == "selesai", timeout=15)
        assert frame["json"]["kind"] == "status_changed"
    finally:
        stream.close()
    for address in ("pelapor@example.org", "pelapor2@example.org", "tetangga@example.org"):
        inbox.wait_for(address, lambda m: "selesai" in body_of(m).lower(), timeout=20)
    assert inbox.to("pelapor@example.org") and not any("warung" in raw for raw in inbox.all_raw())

    # ---- statistics: one problem with two reports; the agency completed one, not two
    summary = wait_for(
        lambda: (
            (s := stats(system, "/api/v1/stats/summary"))["reports_merged"] == 1
            and s["by_status"]["selesai"]["count"] == 1
            and s
        ),
        20,
        message="stats counted the merge",
    )
    assert (summary["problems"], summary["reports"], summary["total"]) == (1, 2, 1)
    agency = stats(system, STATS_OPD)["agency"]
    assert (agency["received"], agency["completed"]) == (1, 1)
    checked = wait_for(lambda: (r := rebuild_check(system)).returncode == 0 and r, 20, message="rebuild == live")
    assert "0 differ" in checked.stdout

    # ---- unmerge (a mistake): the report goes back to the status it had when merged, in the work list again
    unmerged = requests.post(
        system.url("intake", f"/api/v1/opd/reports/{second_id}/unmerge"),
        json={},
        headers=system.opd_headers(OPD),
        timeout=10,
    )
    assert unmerged.status_code == 200, unmerged.text
    assert (unmerged.json()["status"], unmerged.json()["merged_into"]) == ("menunggu", None)
    assert second_id in work_list(system)
    wait_for(
        lambda: (s := stats(system, "/api/v1/stats/summary"))["reports_merged"] == 0 and s["total"] == 2,
        20,
        message="stats counted the unmerge",
    )
    wait_for(lambda: rebuild_check(system).returncode == 0, 20, message="rebuild == live after the unmerge")
