"""The citizen's word on selesai, end to end on RabbitMQ: the OPD closes a report, its citizen reopens it (back to the
same OPD as dikerjakan with a rework deadline, in the history, the citizen's live timeline, the OPD's work list and
the agency's figures) or confirms it with a rating (the agency's average); after the window neither is possible;
the statistics rebuilt from intake's replay give the same figures. And the tracking page in a phone's browser."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from devtools.seaweedfs import LocalS3Server
from services.stats.tests.e2e_helpers import Filed, act, photo, stats, submit, view, wait_assigned
from tests.browser import browser_fixture, phone_fixture, serious_accessibility_violations
from tests.system import ROOT, RunningSystem, SseListener, Vhost, start_system, wait_for

pytestmark = pytest.mark.e2e
FIXTURES = (browser_fixture, phone_fixture)

#: a short window, so that the test sees it close (the default is 14 days)
WINDOW_SECONDS = 40
REWORK_SECONDS = 7200
RAWAMANGUN = (-6.19429, 106.88296)
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, s3: LocalS3Server) -> Iterator[RunningSystem]:
    """A system of its own: the short window, and a store holding only this module's reports (exact figures)."""
    vhost = Vhost.create()
    running = start_system(
        tmp_path_factory.mktemp("citizen-feedback"),
        vhost,
        s3,
        CITIZEN_FEEDBACK_WINDOW_DAYS=repr(WINDOW_SECONDS / 86400),
        REWORK_DEADLINE_SECONDS=str(REWORK_SECONDS),
    )
    yield running
    running.stop()
    vhost.delete()


def finished(system: RunningSystem, description: str) -> Filed:
    """A report its OPD took and closed as selesai (with an evidence photo)."""
    filed = submit(system, *RAWAMANGUN, "jalan", f"{description} {time.time_ns()}")
    wait_assigned(system, filed)
    act(system, filed, "dikerjakan")
    act(system, filed, "selesai", note="Sudah ditambal")
    return filed


def post(system: RunningSystem, filed: Filed, action: str, **kwargs: Any) -> requests.Response:
    return requests.post(system.url("intake", f"/api/v1/reports/{filed.token}/{action}"), timeout=30, **kwargs)


def agency(system: RunningSystem, opd: str) -> dict[str, Any]:
    return stats(system, "/api/v1/stats/agencies", opd=opd, min_reports=1)["agency"] or {}


def timeline_has(system: RunningSystem, filed: Filed, predicate: Any) -> bool:
    """Whether the citizen's live stream (notify) shows an entry matching `predicate`."""
    listener = SseListener(view(system, filed)["stream_url"])
    try:
        listener.next_matching(lambda frame: predicate(frame["json"]), timeout=2)
        return True
    except AssertionError:
        return False
    finally:
        listener.close()


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


def test_a_reopened_report_goes_back_to_the_same_opd_as_dikerjakan_with_its_deadline(system: RunningSystem) -> None:
    filed = finished(system, "Lubang di Jalan Pemuda")
    opd = filed.opd
    assert opd is not None
    before = view(system, filed)["citizen_feedback"]
    assert before["can_reopen"] and before["can_confirm"]

    key = {"Idempotency-Key": f"reopen-{filed.report_id}-0001"}
    reason = "Lubangnya masih ada, hanya ditutup pasir"
    files = {"photo": ("masih.jpg", photo(*RAWAMANGUN), "image/jpeg")}
    sent_at = datetime.now(UTC)
    reopened = post(system, filed, "reopen", data={"reason": reason}, files=files, headers=key)
    assert reopened.status_code == 200, reopened.text
    body = reopened.json()
    assert (body["status"], body["responsible_opd"]["code"]) == ("dikerjakan", opd)
    deadline = datetime.fromisoformat(body["citizen_feedback"]["work_deadline"].replace("Z", "+00:00"))
    assert abs((deadline - sent_at).total_seconds() - REWORK_SECONDS) < 60
    entry = body["history"][-1]
    assert (entry["kind"], entry["actor_opd"], entry["status"]) == ("reopened", "warga", "dikerjakan")
    assert reason in entry["note"] and len(entry["photos"]) == 1
    # a retry (the answer was lost) changes nothing
    again = post(system, filed, "reopen", data={"reason": reason}, files=files, headers=key)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["version"] == body["version"]

    # the OPD has it back in its work list, with the reason in the history, and may finish it again
    work = requests.get(system.url("intake", "/api/v1/opd/reports"), headers=system.opd_headers(opd), timeout=10)
    assert filed.report_id in {r["report_id"]: r["status"] for r in work.json()["reports"]}
    held = requests.get(
        system.url("intake", f"/api/v1/opd/reports/{filed.report_id}"), headers=system.opd_headers(opd), timeout=10
    ).json()
    assert held["status"] == "dikerjakan" and "selesai" in held["allowed_transitions"]
    assert held["history"][-1]["kind"] == "reopened"

    # the citizen's live timeline (notify) shows the reopen
    wait_for(
        lambda: timeline_has(
            system, filed, lambda e: e.get("from_status") == "selesai" and e.get("status") == "dikerjakan"
        ),
        20,
        message="the reopen in the citizen's timeline",
    )
    # the agency's figures: one closure, reopened, not complete
    row = wait_for(lambda: (r := agency(system, opd)).get("reopened") == 1 and r, 20, message="reopen counted")
    assert row["closures"] >= 1 and row["reopened_rate"] is not None

    # finished again: a new window of its own
    act(system, filed, "selesai", note="Ditambal dengan aspal")
    assert view(system, filed)["citizen_feedback"]["can_reopen"]
    wait_for(lambda: agency(system, opd).get("closures") == 2, 20, message="second closure counted")
    checked = wait_for(lambda: (r := rebuild_check(system)).returncode == 0 and r, 30, message="rebuild == live")
    assert "0 differ" in checked.stdout


def test_a_confirmation_with_a_rating_feeds_the_agency_average(system: RunningSystem) -> None:
    first, second = finished(system, "Jalan retak"), finished(system, "Jalan amblas")
    opd = first.opd
    assert opd is not None and second.opd == opd
    answer = post(system, first, "confirm", json={"rating": 5, "comment": "Cepat, terima kasih"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["citizen_feedback"]["confirmed"]["rating"] == 5
    assert post(system, second, "confirm", data={"rating": "3"}).status_code == 200
    # once only: no second rating, no reopen
    refused = post(system, first, "confirm", json={"rating": 1})
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "already_confirmed")
    refused = post(system, first, "reopen", data={"reason": "Ternyata rusak lagi"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "already_confirmed")
    bad = post(system, second, "confirm", json={"rating": 9})
    assert bad.status_code in (409, 422)

    row = wait_for(lambda: (r := agency(system, opd)).get("ratings") == 2 and r, 20, message="ratings counted")
    assert row["rating_average"] == 4.0 and row["confirmed"] == 2
    table = stats(system, "/api/v1/stats/agencies", min_reports=1)
    assert "satisfaction" in table["formula"]
    wait_for(
        lambda: timeline_has(system, first, lambda e: e.get("kind") == "confirmed" and e.get("rating") == 5),
        20,
        message="the confirmation in the citizen's timeline",
    )
    checked = wait_for(lambda: (r := rebuild_check(system)).returncode == 0 and r, 30, message="rebuild == live")
    assert "0 differ" in checked.stdout


def test_after_the_window_neither_is_possible(system: RunningSystem) -> None:
    filed = finished(system, "Trotoar rusak")
    wait_for(
        lambda: not view(system, filed)["citizen_feedback"]["can_confirm"],
        WINDOW_SECONDS + 20,
        interval=1,
        message="the window closed",
    )
    for action, kwargs in (("confirm", {"json": {"rating": 4}}), ("reopen", {"data": {"reason": "Belum beres"}})):
        refused = post(system, filed, action, **kwargs)
        assert (refused.status_code, refused.json()["error"]["code"]) == (409, "window_closed"), refused.text
        assert "window" in refused.json()["error"]["message"]
    assert view(system, filed)["status"] == "selesai"
    # a report that is not selesai is refused by name
    open_one = submit(system, *RAWAMANGUN, "jalan", f"Belum selesai {time.time_ns()}")
    refused = post(system, open_one, "confirm")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "not_selesai")


# ---- the tracking page ----------------------------------------------------------------------------------------------


def open_tracking(phone: Any, system: RunningSystem, filed: Filed) -> Any:
    page = phone.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(system.url("intake", f"/lacak#{filed.token}"))
    page.wait_for_selector("#track-number")
    return page


def test_the_tracking_page_reopens_and_confirms(system: RunningSystem, phone: Any, tmp_path: Any) -> None:
    dialogs: list[str] = []
    phone.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    # reopen, with a reason that is markup and a photo
    filed = finished(system, "Lampu jalan mati")
    page = open_tracking(phone, system, filed)
    expect(page.locator("#feedback-window")).to_be_visible()
    assert serious_accessibility_violations(page) == []
    page.click("#feedback-reopen-open")
    assert page.get_attribute("#feedback-reopen-open", "aria-expanded") == "true"
    page.click("#feedback-reopen-send")  # no reason yet: named and focused
    expect(page.locator("#feedback-status")).to_have_class("error")
    assert page.evaluate("document.activeElement.id") == "feedback-reason-input"
    reason = f"{HOSTILE} masih mati"
    page.fill("#feedback-reason-input", reason)
    photo_path = tmp_path / "masih.jpg"
    photo_path.write_bytes(photo(*RAWAMANGUN))
    page.set_input_files("#feedback-photo-input", str(photo_path))
    assert serious_accessibility_violations(page) == []
    page.click("#feedback-reopen-send")
    page.wait_for_selector("body[data-report-status=dikerjakan]", timeout=20_000)
    expect(page.locator("#feedback-reason")).to_have_text(reason)
    expect(page.locator("#feedback-work-deadline")).to_be_visible()
    assert page.locator("#track-body img[src=x]").count() == 0
    assert reason in page.inner_text("#track-history")
    assert serious_accessibility_violations(page) == []
    assert view(system, filed)["status"] == "dikerjakan"

    # confirm with four stars, keyboard on the radio group, in English
    other = finished(system, "Saluran tersumbat")
    page = open_tracking(phone, system, other)
    page.click("#lang-toggle")
    expect(page.locator("#feedback-confirm-open")).to_have_text("Yes, it is fixed")
    page.click("#feedback-confirm-open")
    page.focus("#feedback-star-1")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    assert page.is_checked("#feedback-star-4")
    page.fill("#feedback-comment-input", "Terima kasih")
    assert serious_accessibility_violations(page) == []
    page.click("#feedback-confirm-send")
    expect(page.locator("#feedback-confirmed")).to_be_visible()
    expect(page.locator("#feedback-rating")).to_contain_text("4")
    assert page.locator("#feedback-reopen-open").count() == 0
    assert serious_accessibility_violations(page) == []
    confirmed = view(system, other)["citizen_feedback"]["confirmed"]
    assert (confirmed["rating"], confirmed["comment"]) == (4, "Terima kasih")
    assert dialogs == [] and page.errors == []
