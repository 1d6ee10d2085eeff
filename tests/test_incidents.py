"""Surges grouped into incidents, end to end on RabbitMQ with small thresholds: a burst of flood reports in one
kecamatan becomes one incident message (plus a bounded number of updates) on its OPD's queue, every report is assigned
with its incident, one transition on the incident moves every member (each citizen's tracking shows it), normal
reports elsewhere are delivered on their own, and the public dashboard API shows the active incident."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from openapi_schema_validator import OAS30Validator

from devtools.seaweedfs import LocalS3Server
from jaklapor.opd_keys import derive_key
from services.stats.tests.e2e_helpers import Filed, photo, stats, submit, view, wait_assigned
from tests.browser import DESK, browser_fixture, new_phone, serious_accessibility_violations
from tests.system import OPD_KEY_SECRET, OpdQueueReader, RunningSystem, Vhost, start_system, wait_for

pytestmark = pytest.mark.e2e
FIXTURES = (browser_fixture,)  # the browser (tests/browser.py)

MIN_REPORTS, UPDATE_MEMBERS, UPDATE_SECONDS = 4, 3, 5
FLOOD_OPD = "sudin-sumber-daya-air-jakarta-timur"
JATINEGARA = [(-6.2245, 106.8666), (-6.2275, 106.8700)]  # Bali Mester, Bidara Cina
TEBET = (-6.2200, 106.8620)  # banjir too, but another kecamatan (and OPD): below its own threshold
KEMBANGAN = (-6.1700, 106.7420)  # a road report elsewhere
FLOOD_SIZE = 12


@pytest.fixture(scope="module")
def surge_system(tmp_path_factory: pytest.TempPathFactory, s3: LocalS3Server) -> Iterator[RunningSystem]:
    vhost = Vhost.create("jaklapor-incidents")
    running = start_system(
        tmp_path_factory.mktemp("incidents"),
        vhost,
        s3,
        SURGE_MIN_REPORTS=str(MIN_REPORTS),
        SURGE_WINDOW_SECONDS="600",
        SURGE_QUIET_SECONDS="600",
        INCIDENT_UPDATE_SECONDS=str(UPDATE_SECONDS),
        INCIDENT_UPDATE_MEMBERS=str(UPDATE_MEMBERS),
        SURGE_FLUSH_SECONDS="0.5",
    )
    yield running
    running.stop()
    vhost.delete()


def section_violations(page: Any, selector: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations inside one section of the page."""
    serious_accessibility_violations(page)  # loads axe-core into the page
    found = page.evaluate(
        "async (selector) => (await axe.run(selector, {resultTypes: ['violations']})).violations", selector
    )
    return [
        {"id": v["id"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def conforms(openapi: dict[str, Any], schema_name: str, body: Any) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": openapi["components"]}
    OAS30Validator(schema).validate(body)


def drain(reader: OpdQueueReader, opd_code: str) -> list[dict[str, Any]]:
    return [json.loads(body) for _message, body in reader.drain(opd_code)]


def opd_get(system: RunningSystem, opd: str, path: str) -> requests.Response:
    return requests.get(system.url("intake", path), headers=system.opd_headers(opd), timeout=10)


def test_a_flood_becomes_one_incident_that_the_opd_moves_at_once(surge_system: RunningSystem) -> None:
    system = surge_system
    flood: list[Filed] = []
    started = time.monotonic()
    for n in range(FLOOD_SIZE):  # one after the other: which reports came before the threshold is then known
        lat, lon = JATINEGARA[n % 2]
        flood.append(submit(system, lat, lon, "penanganan-banjir", f"Banjir setinggi lutut, rumah {n}"))
        wait_assigned(system, flood[-1])
    elsewhere = [
        submit(system, *TEBET, "penanganan-banjir", "Genangan di Tebet"),
        submit(system, *KEMBANGAN, "jalan", "Jalan berlubang"),
    ]
    flood_seconds = time.monotonic() - started
    for filed in elsewhere:
        wait_assigned(system, filed)
    assert {f.opd for f in flood} == {FLOOD_OPD}
    flood_ids = {f.report_id for f in flood}

    # the OPD's queue: the reports before the threshold on their own, then one incident and coalesced updates
    reader = OpdQueueReader(system.amqp_uri)
    try:
        messages: list[dict[str, Any]] = []

        def every_member_announced() -> bool:
            messages.extend(drain(reader, FLOOD_OPD))
            members = {m["report_id"] for msg in messages if "incident_id" in msg for m in msg["members"]}
            return members == flood_ids

        wait_for(every_member_announced, 20, interval=0.2, message="every flood report in an incident message")
        others = {filed.opd: drain(reader, filed.opd) for filed in elsewhere}  # type: ignore[misc]
    finally:
        reader.close()
    assigned = [m for m in messages if m["message_type"] == "report_assigned"]
    incident_messages = [m for m in messages if m["message_type"] in ("incident_opened", "incident_updated")]
    assert [m["report_id"] for m in assigned] == [f.report_id for f in flood[: MIN_REPORTS - 1]]
    assert incident_messages[0]["message_type"] == "incident_opened"
    assert [m["message_type"] for m in incident_messages[1:]] == ["incident_updated"] * (len(incident_messages) - 1)
    # coalesced: an update per UPDATE_MEMBERS joining members or per UPDATE_SECONDS, never one per report
    by_number = math.ceil((FLOOD_SIZE - MIN_REPORTS) / UPDATE_MEMBERS)
    assert len(incident_messages) <= 1 + by_number + 1 + int(flood_seconds // UPDATE_SECONDS)
    assert len(messages) < FLOOD_SIZE
    incident_id = incident_messages[0]["incident_id"]
    assert {m["incident_id"] for m in incident_messages} == {incident_id}
    assert incident_messages[-1]["member_count"] == FLOOD_SIZE
    assert incident_messages[0]["kecamatan"] == "Jatinegara" and incident_messages[0]["category"] == "penanganan-banjir"
    assert "tracking" not in str(incident_messages) and "contact" not in str(incident_messages)
    # normal reports elsewhere: each on its own, on its own OPD's queue
    for filed in elsewhere:
        assert [m["report_id"] for m in others[filed.opd]] == [filed.report_id]  # type: ignore[index]

    # the OPD API knows the incident with every member (the first ones joined by report_joined_incident)
    def listed() -> dict[str, Any] | None:
        body = opd_get(system, FLOOD_OPD, "/api/v1/opd/incidents").json()
        found = [i for i in body["incidents"] if i["incident_id"] == incident_id]
        return found[0] if found and found[0]["member_count"] == FLOOD_SIZE else None

    summary = wait_for(listed, 15, message="the incident with all its members in the OPD API")
    assert summary["open_count"] == FLOOD_SIZE and summary["kecamatan"] == "Jatinegara"
    openapi = requests.get(system.url("intake", "/openapi.json"), timeout=10).json()
    conforms(openapi, "OpdIncidentList", opd_get(system, FLOOD_OPD, "/api/v1/opd/incidents").json())
    one = opd_get(system, FLOOD_OPD, f"/api/v1/opd/incidents/{incident_id}").json()
    conforms(openapi, "OpdIncident", one)
    assert {m["report_id"] for m in one["members"]} == flood_ids and "dikerjakan" in one["allowed_transitions"]
    assert (
        opd_get(system, "sudin-sumber-daya-air-jakarta-selatan", f"/api/v1/opd/incidents/{incident_id}").status_code
        == 404
    )

    # the public dashboard API shows the active incident
    def on_dashboard() -> dict[str, Any] | None:
        found = [i for i in stats(system, "/api/v1/stats/incidents")["incidents"] if i["incident_id"] == incident_id]
        return found[0] if found and found[0]["member_count"] == FLOOD_SIZE else None

    public = wait_for(on_dashboard, 15, message="the incident on the dashboard API")
    assert public["category"] == "penanganan-banjir" and public["kecamatan"] == "Jatinegara"
    assert public["open_count"] == FLOOD_SIZE and public["opened_at"]

    # a bad request is refused as a report's would be, and nothing moves
    url = system.url("intake", f"/api/v1/opd/incidents/{incident_id}/transitions")
    refused = requests.post(url, data={"status": "selesai", "note": "x"}, headers=system.opd_headers(FLOOD_OPD))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "illegal_transition"  # still menunggu

    # one transition moves every member, each through its own history; a retry changes nothing twice
    data = {"status": "dikerjakan", "note": "Pompa air dikerahkan ke Jatinegara"}
    moved = requests.post(url, data=data, headers=system.opd_headers(FLOOD_OPD), timeout=60)
    assert moved.status_code == 200, moved.text
    assert moved.json()["moved"] == FLOOD_SIZE and moved.json()["refused"] == 0
    conforms(openapi, "IncidentTransitionResult", moved.json())
    again = requests.post(url, data=data, headers=system.opd_headers(FLOOD_OPD), timeout=60).json()
    assert again["unchanged"] == FLOOD_SIZE and again["moved"] == 0
    for filed in flood:
        tracked = view(system, filed)
        assert tracked["status"] == "dikerjakan"
        transitions = [h for h in tracked["history"] if h["kind"] == "transition"]
        assert [h["note"] for h in transitions] == ["Pompa air dikerahkan ke Jatinegara"]
    for filed in elsewhere:
        assert view(system, filed)["status"] == "menunggu"

    # closing them all (one evidence photo) ends the incident on the dashboard
    no_photo = requests.post(url, data={"status": "selesai", "note": "x"}, headers=system.opd_headers(FLOOD_OPD))
    assert no_photo.status_code == 422 and no_photo.json()["error"]["code"] == "missing_evidence"
    files = {"photo": ("bukti.jpg", photo(-6.2245, 106.8666), "image/jpeg")}
    done = requests.post(
        url, data={"status": "selesai", "note": "Air surut"}, files=files, headers=system.opd_headers(FLOOD_OPD)
    )
    assert done.status_code == 200 and done.json()["moved"] == FLOOD_SIZE, done.text
    wait_for(
        lambda: all(i["incident_id"] != incident_id for i in stats(system, "/api/v1/stats/incidents")["incidents"]),
        15,
        message="the closed incident off the dashboard",
    )


# ---- the workbench's incident screen, in a real browser -------------------------------------------------------------

BLOK_M = (-6.2443, 106.8003)  # Melawai, Kebayoran Baru: banjir there goes to the Suku Dinas SDA Jakarta Selatan
SOUTH_WATER = "sudin-sumber-daya-air-jakarta-selatan"


def test_the_workbench_shows_the_incident_first_and_moves_its_members_at_once(
    surge_system: RunningSystem, browser: Any
) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    system = surge_system
    flood = [
        submit(system, *BLOK_M, "penanganan-banjir", f"Air masuk rumah <b>{n}</b>") for n in range(MIN_REPORTS + 1)
    ]
    for filed in flood:
        assert wait_assigned(system, filed) == SOUTH_WATER

    def incident_of_all() -> str | None:
        body = opd_get(system, SOUTH_WATER, "/api/v1/opd/incidents").json()
        found = [i for i in body["incidents"] if i["kecamatan"] == "Kebayoran Baru"]
        return found[0]["incident_id"] if found and found[0]["member_count"] == len(flood) else None

    incident_id = wait_for(incident_of_all, 15, message="the Kebayoran Baru incident with every member")
    context = new_phone(browser, **DESK)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(system.url("intake", "/opd/"))
        page.wait_for_selector("body[data-state=ready]")
        page.fill("#opd-key", derive_key(OPD_KEY_SECRET, SOUTH_WATER))
        page.press("#opd-key", "Enter")
        incident_card = page.locator(f"#incident-list li[data-incident-id='{incident_id}']")
        expect(incident_card).to_be_visible()
        expect(incident_card).to_contain_text(f"{len(flood)} laporan")
        # the incident comes before the work list's reports
        assert page.evaluate(
            "() => !!(document.querySelector('#incident-list').compareDocumentPosition("
            "document.querySelector('#report-list')) & Node.DOCUMENT_POSITION_FOLLOWING)"
        )
        assert serious_accessibility_violations(page) == []

        incident_card.locator("a").click()
        page.wait_for_selector("body[data-incident-state=shown]")
        assert page.url.endswith(f"/opd/insiden/{incident_id}")
        members = page.locator("#incident-members li")
        expect(members).to_have_count(len(flood))
        expect(page.locator("#incident-members")).to_contain_text("<b>0</b>")  # citizen text shown as text
        assert serious_accessibility_violations(page) == []
        page.click("#lang-toggle")
        expect(page.locator("#incident-act-title")).to_have_text("Action for every report")
        page.click("#lang-toggle")

        page.check("#incident-action-dikerjakan")
        page.fill("#incident-note", "Pompa dikerahkan ke Melawai")
        page.click("#incident-submit")
        expect(page.locator("#incident-result")).to_contain_text(f"{len(flood)} laporan diperbarui")
        expect(page.locator("#incident-members li[data-status=dikerjakan]")).to_have_count(len(flood))
        assert serious_accessibility_violations(page) == []
        assert errors == []

        # the public dashboard lists it among the active incidents (dikerjakan is still open)
        page.goto(system.url("stats", "/dashboard"))
        row = page.locator(f"#incidents tr[data-incident-id='{incident_id}']")
        expect(row).to_contain_text("Kebayoran Baru")
        expect(row).to_contain_text("Penanganan Banjir")
        expect(page.locator("body[data-state=ready]")).to_have_count(1)
        # the incidents section (the rest of the dashboard is tests/test_dashboard.py's: its logo and filter button
        # have contrast findings of their own, older than incidents)
        assert section_violations(page, "#incidents-card") == []
        assert errors == []
    finally:
        context.close()
    for filed in flood:
        tracked = view(system, filed)
        assert tracked["status"] == "dikerjakan"
        assert tracked["history"][-1]["note"] == "Pompa dikerahkan ke Melawai"
