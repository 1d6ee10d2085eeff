"""Verified completion in a real browser (Playwright, Debian's Chromium) against the running system: the verifier's
screen on a desk and a phone (the queue with both sides' photos and the automatic verdict, refuse needs a reason,
approve closes; axe-core clean), the OPD seeing the pending state and the refusal, and the citizen's tracking page
reading "Menunggu verifikasi" and the refusal as a history step."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from jaklapor.opd_keys import VERIFIER_CODE, derive_key
from services.intake.tests.evidence_photos import north_of, photo
from tests.browser import DESK, browser_fixture, new_phone, serious_accessibility_violations, wait_until_image_shows
from tests.system import OPD_KEY_SECRET, VERIFIED_CATEGORY, RunningSystem, client_headers, wait_for
from tests.test_opd_workbench import save_screenshot

pytestmark = pytest.mark.e2e
FIXTURES = (browser_fixture,)

BLOK_M = (-6.2443, 106.8003)
TROTOAR_OPD = "sudin-perhubungan-jakarta-selatan"
VERIFIER_HEADERS = {"Authorization": f"Bearer {derive_key(OPD_KEY_SECRET, VERIFIER_CODE)}"}


@pytest.fixture(params=["desk", "phone"])
def screen(request: pytest.FixtureRequest, browser: Any) -> Iterator[Any]:
    context = new_phone(browser, **(DESK if request.param == "desk" else {}))
    context.screen_name = request.param
    yield context
    context.close()


def pending_report(system: RunningSystem, seed: int, metres: float) -> dict[str, Any]:
    """A trotoar report whose OPD reported it done with a photo taken `metres` away: waiting for the verifier."""
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": VERIFIED_CATEGORY, "description": "Trotoar retak", "lat": BLOK_M[0], "lon": BLOK_M[1]},
        files={"photo": ("IMG.jpg", photo(seed), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    receipt = response.json()
    report_id = receipt["report_id"]
    url = system.url("intake", f"/api/v1/opd/reports/{report_id}")
    headers = system.opd_headers(TROTOAR_OPD)
    wait_for(lambda: requests.get(url, headers=headers, timeout=10).status_code == 200, 30)
    taken = requests.post(f"{url}/transitions", json={"status": "dikerjakan", "note": "OTW"}, headers=headers)
    assert taken.status_code == 200, taken.text
    filed = datetime.fromisoformat(receipt["submitted_at"].replace("Z", "+00:00"))
    evidence = photo(seed + 1, north_of(*BLOK_M, metres), filed + timedelta(hours=1))
    done = requests.post(
        f"{url}/transitions",
        data={"status": "selesai", "note": "Trotoar sudah ditambal"},
        files={"photo": ("bukti.jpg", evidence, "image/jpeg")},
        headers=headers,
        timeout=30,
    )
    assert done.json()["pending_verification"], done.text
    return receipt


def open_page(context: Any, system: RunningSystem, path: str) -> Any:
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(system.url("intake", path))
    page.wait_for_selector("body[data-state=ready]")
    return page


def test_the_verifier_refuses_with_a_reason_and_approves(screen: Any, system: RunningSystem, tmp_path: Any) -> None:
    seed = 40 if screen.screen_name == "desk" else 50
    far = pending_report(system, seed, metres=3200)
    near = pending_report(system, seed + 4, metres=30)
    page = open_page(screen, system, "/opd/")
    page.fill("#opd-key", derive_key(OPD_KEY_SECRET, VERIFIER_CODE))
    page.press("#opd-key", "Enter")
    page.wait_for_selector("#view-verify:not([hidden])")
    assert page.locator("#nav").is_hidden()  # no work list of its own
    far_card = page.locator(f"#verify-list li[data-report-id='{far['report_id']}']")
    near_card = page.locator(f"#verify-list li[data-report-id='{near['report_id']}']")
    far_card.wait_for()
    assert "jauh dari lokasi (3,2 km)" in far_card.locator(".checks").inner_text()
    assert far_card.locator(".checks li").get_attribute("data-matched") == "false"
    assert near_card.locator(".checks li").get_attribute("data-matched") == "true"
    assert "Trotoar sudah ditambal" in far_card.inner_text() and "Trotoar retak" in far_card.inner_text()
    wait_until_image_shows(far_card.locator(".verify-photos img").first)  # the citizen's photo
    wait_until_image_shows(far_card.locator(".verify-photos img").last)  # the evidence
    assert serious_accessibility_violations(page) == []
    far_card.scroll_into_view_if_needed()
    save_screenshot(page, f"verifier-screen-{screen.screen_name}.png", tmp_path)

    # English: the verdict in English words
    page.click("#lang-toggle")
    assert "far from the report (3.2 km)" in far_card.locator(".checks").inner_text()
    page.click("#lang-toggle")

    # refusing needs a reason
    key = far["report_id"]
    far_card.locator(f"#refuse-{key}").click()
    assert far_card.locator(f"#reason-{key}").get_attribute("aria-invalid") == "true"
    assert far_card.locator(f"#reason-error-{key}").is_visible()
    far_card.locator(f"#reason-{key}").fill("Foto bukti diambil jauh dari lokasi")
    far_card.locator(f"#refuse-{key}").click()
    far_card.wait_for(state="detached")
    assert "dikembalikan" in page.inner_text("#verify-summary")

    near_card.locator(f"#approve-{near['report_id']}").click()
    near_card.wait_for(state="detached")
    assert "disetujui" in page.inner_text("#verify-summary")
    assert serious_accessibility_violations(page) == []
    assert page.errors == []

    closed = requests.get(system.url("intake", f"/api/v1/reports/{near['tracking_token']}"), timeout=10).json()
    refused = requests.get(system.url("intake", f"/api/v1/reports/{far['tracking_token']}"), timeout=10).json()
    assert closed["status"] == "selesai" and refused["verification"]["state"] == "refused"


def test_the_opd_sees_pending_and_refused_and_the_citizen_reads_the_label(screen: Any, system: RunningSystem) -> None:
    seed = 60 if screen.screen_name == "desk" else 70
    waiting = pending_report(system, seed, metres=20)
    refused = pending_report(system, seed + 4, metres=20)
    answer = requests.post(
        system.url("intake", f"/api/v1/verifier/reports/{refused['report_id']}/refuse"),
        json={"reason": "Masih ada lubang di ujung trotoar"},
        headers=VERIFIER_HEADERS,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text

    # the OPD: the pending one waits (no action), the refused one shows why and until when to finish it
    page = open_page(screen, system, "/opd/")
    page.fill("#opd-key", derive_key(OPD_KEY_SECRET, TROTOAR_OPD))
    page.press("#opd-key", "Enter")
    pending_card = page.locator(f"#report-list li[data-report-id='{waiting['report_id']}']")
    refused_card = page.locator(f"#report-list li[data-report-id='{refused['report_id']}']")
    pending_card.wait_for()
    assert "Menunggu verifikasi" in pending_card.inner_text()
    assert "Verifikasi ditolak: Masih ada lubang di ujung trotoar" in refused_card.inner_text()
    assert "Selesaikan ulang sebelum" in refused_card.inner_text()
    assert serious_accessibility_violations(page) == []
    refused_card.locator("a").click()
    page.wait_for_selector("#report-verification")
    assert "Masih ada lubang" in page.inner_text("#report-verification")
    page.wait_for_selector("#action-selesai")  # it may finish again

    # the citizen: "Menunggu verifikasi" while it waits; the refusal as a step of the history
    track = open_page(screen, system, f"/lacak#{waiting['tracking_token']}")
    track.wait_for_selector("#track-status")
    assert track.inner_text("#track-status") == "Menunggu verifikasi"
    assert serious_accessibility_violations(track) == []
    track.click("#lang-toggle")
    track.locator("#track-status", has_text="Awaiting verification").wait_for()
    track.click("#lang-toggle")
    track.goto(system.url("intake", f"/lacak#{refused['tracking_token']}"))
    track.wait_for_selector("body[data-state=ready]")
    track.locator("#track-history li", has_text="Verifikasi ditolak").wait_for()
    assert "Masih ada lubang di ujung trotoar" in track.inner_text("#track-history")
    assert track.locator("#track-work-deadline").count() == 1
    assert page.errors == [] and track.errors == []
