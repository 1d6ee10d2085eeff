"""Duplicates in a real browser (Playwright, Debian's Chromium) against the running system: a citizen about to file
supports a nearby report instead ("Saya juga mengalami ini"), counted once; an officer merges a report into routing's
suggestion from the workbench and undoes it; the citizen's tracking page shows the merge; axe-core finds nothing
serious on these screens."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from services.stats.tests.e2e_helpers import submit, wait_assigned
from tests.browser import DESK, browser_fixture, new_phone, phone_fixture, serious_accessibility_violations
from tests.system import RunningSystem, wait_for
from tests.test_citizen_app import app_url, open_app, phone_photo, photo_file
from tests.test_opd_workbench import card, signed_in

pytestmark = pytest.mark.e2e
FIXTURES = (browser_fixture, phone_fixture)  # the browser and a phone (tests/browser.py)

# Jatinegara Kaum, Jakarta Timur: a spot of these tests' own (other tests file reports elsewhere)
SPOT = (-6.20150, 106.88820)
HOSTILE = "<img src=x onerror=alert(1)>"


def public(system: RunningSystem, report_id: str) -> dict[str, Any]:
    return requests.get(app_url(system, f"/api/v1/reports/public/{report_id}"), timeout=10).json()


def test_a_citizen_supports_a_nearby_report_instead_of_filing_it_again(
    system: RunningSystem, phone: Any, tmp_path: Any
) -> None:
    known = submit(system, *SPOT, "jalan", f"{HOSTILE} jalan retak di depan sekolah {time.time_ns()}")
    wait_assigned(system, known)
    before = public(system, known.report_id)["supporters"]

    page = open_app(phone, app_url(system))
    near = (SPOT[0] + 0.0004, SPOT[1])  # about 45 m north
    page.set_input_files("#photos", photo_file(tmp_path, "near.jpg", phone_photo(*near)))
    page.wait_for_selector("#map[data-pin-source=photo]")
    page.select_option("#category", "jalan")
    found = page.locator(f"#nearby-list li[data-report-id='{known.report_id}']")
    found.wait_for()
    assert found.locator("img[src=x]").count() == 0
    assert serious_accessibility_violations(page) == []

    button = found.get_by_role("button", name="Saya juga mengalami ini")
    button.click()
    expect(found.get_by_role("status")).to_contain_text("Terima kasih")
    expect(button).to_be_disabled()
    assert public(system, known.report_id)["supporters"] == before + 1
    expect(found.locator(".supporters")).to_have_text(f"{before + 1} orang juga mengalami ini")

    # the same phone again (a reload): counted once, and told so
    page.reload()
    page.wait_for_selector("body[data-state=ready]")
    page.set_input_files("#photos", photo_file(tmp_path, "again.jpg", phone_photo(*near)))
    page.wait_for_selector("#map[data-pin-source=photo]")
    page.select_option("#category", "jalan")
    again = page.locator(f"#nearby-list li[data-report-id='{known.report_id}']")
    again.get_by_role("button", name="Saya juga mengalami ini").click()
    expect(again.get_by_role("status")).to_contain_text("sudah mendukung")
    assert public(system, known.report_id)["supporters"] == before + 1

    # followed from "my reports"; its tracking page shows the support
    page.goto(app_url(system, "/laporan-saya"))
    page.locator(f"#mine-list li[data-report-id='{known.report_id}'] a").click()
    expect(page.locator("#track-supporters")).to_have_text(f"{before + 1} orang juga mengalami ini")
    assert serious_accessibility_violations(page) == []
    page.click("#lang-toggle")
    expect(page.locator("#track-supporters")).to_have_text(f"{before + 1} people have this problem too")
    assert page.errors == []


@pytest.mark.parametrize("screen_name", ["desk", "phone"])
def test_an_officer_merges_a_report_into_routings_suggestion_and_undoes_it(
    system: RunningSystem, browser: Any, screen_name: str
) -> None:
    spot = (SPOT[0] - 0.003, SPOT[1] + (0.0 if screen_name == "desk" else 0.002))
    first = submit(system, *spot, "jalan", f"Jalan amblas {time.time_ns()}")
    opd = wait_assigned(system, first)
    second = submit(system, spot[0] + 0.0003, spot[1], "jalan", f"{HOSTILE} amblas juga {time.time_ns()}")
    assert wait_assigned(system, second) == opd

    context = new_phone(browser, **(DESK if screen_name == "desk" else {}))
    try:
        page = signed_in(context, system, opd)
        card(page, second.report_id).locator("a").click()
        page.wait_for_selector("body[data-report-state=shown]")
        suggested = page.locator(f"#suggested-list li[data-report-id='{first.report_id}']")
        suggested.wait_for()
        assert serious_accessibility_violations(page) == []

        page.select_option("#merge-choice", first.report_id)
        expect(page.locator("#merge-primary")).to_have_value(first.report_id)
        page.fill("#merge-note", "Lubang yang sama")
        page.click("#merge-submit")
        expect(page.locator("#report-merged")).to_contain_text(first.report_id)
        expect(page.locator("#merge-result")).to_contain_text(f"digabung ke {first.report_id}")
        assert serious_accessibility_violations(page) == []
        assert public(system, second.report_id)["merged_into"] == first.report_id

        # the citizen's tracking page shows the merge
        citizen = context.new_page()
        citizen.goto(app_url(system, f"/lacak#{second.token}"))
        expect(citizen.locator("#track-merged")).to_contain_text(f"Digabung ke {first.report_id}")
        expect(citizen.locator("#track-merged-help")).to_contain_text(first.report_id)
        assert serious_accessibility_violations(citizen) == []
        citizen.close()

        page.click("#unmerge-submit")
        expect(page.locator("#merge-result")).to_contain_text("Penggabungan dibatalkan")
        expect(page.locator("#merge-form")).to_be_visible()
        wait_for(lambda: public(system, second.report_id)["merged_into"] is None, 10, message="unmerged")
        assert page.locator("img[src=x]").count() == 0
        assert page.errors == []
    finally:
        context.close()
