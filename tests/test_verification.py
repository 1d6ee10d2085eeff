"""Verified completion end to end on the real RabbitMQ: the OPD's selesai waits for the city's verifier, a refusal
sends the report back with a new deadline, an approval closes it; the citizen follows it all, the statistics count
the closures whose evidence matched; an exempt category closes at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from jaklapor.opd_keys import VERIFIER_CODE, derive_key
from services.intake.tests.evidence_photos import north_of, photo
from tests.system import OPD_KEY_SECRET, VERIFIED_CATEGORY, RunningSystem, SseListener, client_headers, wait_for
from tests.test_dashboard import browse, parse

pytestmark = pytest.mark.e2e

BLOK_M = (-6.2443, 106.8003)  # Melawai, Kebayoran Baru, Jakarta Selatan
TROTOAR_OPD = "sudin-perhubungan-jakarta-selatan"  # trotoar at Melawai
JALAN_OPD = "sudin-bina-marga-jakarta-selatan"
VERIFIER = {"Authorization": f"Bearer {derive_key(OPD_KEY_SECRET, VERIFIER_CODE)}"}


def submit(system: RunningSystem, category: str, seed: int) -> dict[str, Any]:
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": category, "description": "Trotoar amblas di depan halte", "lat": BLOK_M[0], "lon": BLOK_M[1]},
        files={"photo": ("IMG_0001.jpg", photo(seed), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def routed_and_working(system: RunningSystem, report_id: str, opd: str) -> str:
    """Wait until routing assigned the report to `opd`, which then takes it; its transitions URL."""
    url = system.url("intake", f"/api/v1/opd/reports/{report_id}")
    wait_for(lambda: requests.get(url, headers=system.opd_headers(opd), timeout=10).status_code == 200, 30)
    transitions = f"{url}/transitions"
    taken = requests.post(transitions, json={"status": "dikerjakan", "note": "OTW"}, headers=system.opd_headers(opd))
    assert taken.status_code == 200, taken.text
    return transitions


def finish(system: RunningSystem, transitions: str, opd: str, evidence: bytes) -> requests.Response:
    return requests.post(
        transitions,
        data={"status": "selesai", "note": "Trotoar sudah diperbaiki"},
        files={"photo": ("bukti.jpg", evidence, "image/jpeg")},
        headers=system.opd_headers(opd),
        timeout=30,
    )


def evidence_stats(system: RunningSystem) -> dict[str, Any]:
    response = requests.get(system.url("stats", "/api/v1/stats/evidence"), timeout=10)
    assert response.status_code == 200
    return response.json()


def test_selesai_pending_refused_reworked_approved(system: RunningSystem) -> None:
    before = evidence_stats(system)
    receipt = submit(system, VERIFIED_CATEGORY, seed=21)
    report_id, token = receipt["report_id"], receipt["tracking_token"]
    stream = SseListener(receipt["stream_url"])
    transitions = routed_and_working(system, report_id, TROTOAR_OPD)
    filed = datetime.fromisoformat(receipt["submitted_at"].replace("Z", "+00:00"))

    # 1. the OPD finishes with a photo taken 3.2 km away: the report waits for the verifier
    far = photo(22, north_of(*BLOK_M, 3200), filed + timedelta(hours=2))
    done = finish(system, transitions, TROTOAR_OPD, far)
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["pending_verification"]) == ("dikerjakan", True)
    tracking = requests.get(system.url("intake", f"/api/v1/reports/{token}"), timeout=10).json()
    assert (tracking["status"], tracking["status_label"]) == ("dikerjakan", "Menunggu verifikasi")
    live = stream.next_matching(lambda f: f["event"] == "completion_submitted", timeout=15)
    assert live["json"]["status_label"] == "Menunggu verifikasi"

    # 2. the verifier sees it with the automatic verdict; it cannot act as an OPD, the OPD cannot verify
    queue = requests.get(system.url("intake", "/api/v1/verifier/reports"), headers=VERIFIER, timeout=10).json()
    (item,) = [r for r in queue["reports"] if r["report_id"] == report_id]
    assert item["completion"]["checks"][0]["text"]["id"].startswith("jauh dari lokasi (3,2 km)")
    assert item["completion"]["opd"]["code"] == TROTOAR_OPD and item["photos"]
    as_opd = requests.post(
        transitions, json={"status": "koordinasi", "note": "x", "target_opd": JALAN_OPD}, headers=VERIFIER
    )
    assert (as_opd.status_code, as_opd.json()["error"]["code"]) == (403, "verifier_not_an_opd")
    verify = system.url("intake", f"/api/v1/verifier/reports/{report_id}")
    opd_verifies = requests.post(f"{verify}/approve", headers=system.opd_headers(TROTOAR_OPD), timeout=10)
    assert (opd_verifies.status_code, opd_verifies.json()["error"]["code"]) == (403, "not_a_verifier")

    # 3. refused with a reason: back to the same OPD as dikerjakan with a new deadline, told to the citizen
    refused = requests.post(f"{verify}/refuse", json={"reason": "Foto bukan di lokasi laporan"}, headers=VERIFIER)
    assert refused.status_code == 200, refused.text
    view = refused.json()
    assert (view["status"], view["responsible_opd"]["code"], view["pending_verification"]) == (
        "dikerjakan",
        TROTOAR_OPD,
        False,
    )
    deadline = datetime.fromisoformat(view["work_deadline"].replace("Z", "+00:00"))
    assert abs(deadline - (datetime.now(UTC) + timedelta(days=3))) < timedelta(minutes=5)
    live = stream.next_matching(lambda f: f["event"] == "verification_refused", timeout=15)
    assert "Foto bukan di lokasi laporan" in live["json"]["note"]
    work_list = requests.get(
        system.url("intake", "/api/v1/opd/reports"), headers=system.opd_headers(TROTOAR_OPD), timeout=10
    ).json()
    (listed,) = [r for r in work_list["reports"] if r["report_id"] == report_id]
    assert listed["work_deadline"] == view["work_deadline"] and listed["verification"]["state"] == "refused"

    # 4. the OPD finishes again with a good photo; the verifier approves: selesai, as every consumer knows it
    near = photo(23, north_of(*BLOK_M, 30), filed + timedelta(hours=3))
    assert finish(system, transitions, TROTOAR_OPD, near).json()["pending_verification"]
    approved = requests.post(f"{verify}/approve", headers=VERIFIER, timeout=10)
    assert approved.status_code == 200 and approved.json()["status"] == "selesai"
    live = stream.next_matching(lambda f: f["json"].get("status") == "selesai", timeout=15)
    assert live["event"] == "status_changed"
    history = requests.get(system.url("intake", f"/api/v1/reports/{token}"), timeout=10).json()["history"]
    kinds = [entry["kind"] for entry in history]
    assert kinds[-4:] == ["completion_submitted", "verification_refused", "completion_submitted", "transition"]
    assert history[-1]["verified_by"] == VERIFIER_CODE
    stream.close()

    # 5. the statistics count the closure, its evidence matched, and the refusal
    def counted() -> dict[str, Any] | None:
        now = evidence_stats(system)
        return now if now["closures_checked"] > before["closures_checked"] else None

    after = wait_for(counted, 15, message="the closure counted in /api/v1/stats/evidence")
    assert after["evidence_matched"] == before["evidence_matched"] + 1
    assert after["verification_refusals"] == before["verification_refusals"] + 1

    # the public dashboard shows the share
    page = browse(system.url("stats", "/dashboard"), "--dump-dom")
    dom = parse(page.stdout)
    shown = evidence_stats(system)
    assert dom.find(id="kpi-evidence").text == f"{shown['percent']:g}%".replace(".", ",")
    assert dom.find(id="kpi-evidence-sub").text.startswith(f"{shown['evidence_matched']} dari ")


def test_an_exempt_category_closes_at_once_with_its_evidence_counted(system: RunningSystem) -> None:
    before = evidence_stats(system)
    receipt = submit(system, "jalan", seed=24)
    transitions = routed_and_working(system, receipt["report_id"], JALAN_OPD)
    done = finish(system, transitions, JALAN_OPD, photo(25))  # no GPS: closes, does not match
    assert done.status_code == 200 and done.json()["status"] == "selesai"

    def counted() -> dict[str, Any] | None:
        now = evidence_stats(system)
        return now if now["closures_checked"] > before["closures_checked"] else None

    after = wait_for(counted, 15, message="the exempt closure counted")
    assert after["evidence_matched"] == before["evidence_matched"]
