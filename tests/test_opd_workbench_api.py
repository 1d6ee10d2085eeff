"""The OPD API as the agencies' workbench uses it, against the running system: a session for a key (sign in, read,
sign out, dead afterwards), wrong keys slowed down, CSRF refused, another OPD's report out of reach, the work list's
order, filters and counts, the live list across a hand-over between two OPDs, the directory, and the OPD's figures
from stats. Each answer is checked against the gateway's own OpenAPI document."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
import requests
from openapi_schema_validator import OAS30Validator

from jaklapor.opd_keys import derive_key
from tests.photo_fixtures import jpeg_with_gps
from tests.system import OPD_KEY_SECRET, RunningSystem, SseListener, client_headers, wait_for

pytestmark = pytest.mark.e2e

# Blok M, Melawai: parkir liar goes to the Suku Dinas Perhubungan of Jakarta Selatan; moved a little each run
RNG = random.Random()
POINT = (-6.2443 + RNG.uniform(-0.0004, 0.0004), 106.8003 + RNG.uniform(-0.0004, 0.0004))
CATEGORY = "parkir-liar"
OTHER_OPD = "sudin-bina-marga-jakarta-selatan"


@pytest.fixture(scope="module")
def openapi(system: RunningSystem) -> dict[str, Any]:
    return requests.get(system.url("intake", "/openapi.json"), timeout=10).json()


def conforms(openapi: dict[str, Any], schema_name: str, body: Any) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": openapi["components"]}
    OAS30Validator(schema).validate(body)


def key_of(opd_code: str) -> str:
    return derive_key(OPD_KEY_SECRET, opd_code)


def file_report(system: RunningSystem, description: str = "Mobil parkir di trotoar") -> dict[str, Any]:
    lat, lon = POINT
    response = requests.post(
        system.url("intake", "/api/v1/reports"),
        data={"category": CATEGORY, "description": description, "lat": lat, "lon": lon},
        files={"photo": ("p.jpg", jpeg_with_gps(lat, lon), "image/jpeg")},
        headers=client_headers(),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def routed(system: RunningSystem, receipt: dict[str, Any]) -> str:
    def holder() -> str | None:
        view = requests.get(system.url("intake", f"/api/v1/reports/{receipt['tracking_token']}"), timeout=5).json()
        return (view["responsible_opd"] or {}).get("code")

    return wait_for(holder, 20, message=f"{receipt['report_id']} routed")


@pytest.fixture(scope="module")
def holder(system: RunningSystem) -> str:
    """The OPD the reports of this module go to."""
    return routed(system, file_report(system, "Laporan pertama modul ini"))


class Workbench:
    """A browser signed in as one OPD: the session cookie (kept by requests) and the CSRF token."""

    def __init__(self, system: RunningSystem, opd_code: str) -> None:
        self.system = system
        self.http = requests.Session()
        self.http.headers.update(client_headers())
        response = self.http.post(system.url("intake", "/api/v1/opd/session"), json={"key": key_of(opd_code)})
        assert response.status_code == 201, response.text
        self.answer = response.json()
        self.cookie = response.headers["Set-Cookie"]
        self.csrf = self.answer["csrf_token"]

    def url(self, path: str) -> str:
        return self.system.url("intake", path)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.url(path), timeout=10, **kwargs)

    def transition(self, report_id: str, fields: dict[str, str], csrf: str | None = "own") -> requests.Response:
        headers = {} if csrf is None else {"X-CSRF-Token": self.csrf if csrf == "own" else csrf}
        return self.http.post(
            self.url(f"/api/v1/opd/reports/{report_id}/transitions"), json=fields, headers=headers, timeout=10
        )


def test_a_key_is_exchanged_for_a_session_that_dies_at_sign_out(
    system: RunningSystem, openapi: dict, holder: str
) -> None:
    bench = Workbench(system, holder)
    conforms(openapi, "OpdSession", bench.answer)
    assert bench.answer["opd"]["code"] == holder and key_of(holder) not in str(bench.answer)
    cookie = bench.cookie.lower()
    assert "jaklapor_opd_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "path=/" in cookie and "secure" not in cookie  # PUBLIC_URL is http here
    session_value = bench.http.cookies["jaklapor_opd_session"]

    current = bench.get("/api/v1/opd/session")
    assert current.status_code == 200 and current.json()["csrf_token"] == bench.csrf
    assert bench.get("/api/v1/opd/me").json()["opd"]["code"] == holder

    refused = bench.http.delete(bench.url("/api/v1/opd/session"), timeout=10)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "csrf_failed")
    signed_out = bench.http.delete(bench.url("/api/v1/opd/session"), headers={"X-CSRF-Token": bench.csrf}, timeout=10)
    assert signed_out.status_code == 204 and "jaklapor_opd_session" not in bench.http.cookies
    # the old cookie, kept by someone, opens nothing any more
    dead = requests.get(bench.url("/api/v1/opd/me"), cookies={"jaklapor_opd_session": session_value}, timeout=10)
    assert (dead.status_code, dead.json()["error"]["code"]) == (401, "session_expired")
    assert bench.get("/api/v1/opd/session").status_code == 401


def test_wrong_keys_are_slowed_down_per_client(system: RunningSystem, holder: str) -> None:
    guesser = client_headers()

    def sign_in(key: str, headers: dict[str, str]) -> requests.Response:
        return requests.post(
            system.url("intake", "/api/v1/opd/session"), json={"key": key}, headers=headers, timeout=10
        )

    statuses = [sign_in(f"{holder}.tebakan-{n}", guesser).status_code for n in range(6)]
    assert statuses == [401] * 5 + [429]
    blocked = sign_in(key_of(holder), guesser)  # even the right key waits
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json()["error"]["code"] == "too_many_failures"
    bearer = requests.get(
        system.url("intake", "/api/v1/opd/me"), headers={**guesser, **system.opd_headers(holder)}, timeout=10
    )
    assert bearer.status_code == 429
    # another client is not held up
    assert sign_in(key_of(holder), client_headers()).status_code == 201


def test_a_session_changes_a_report_only_with_its_csrf_token(system: RunningSystem, holder: str) -> None:
    receipt = file_report(system, "Parkir liar, CSRF")
    assert routed(system, receipt) == holder
    bench = Workbench(system, holder)
    report_id = receipt["report_id"]
    fields = {"status": "dikerjakan", "note": "Petugas menuju lokasi"}
    for csrf in (None, "token-lain-" + uuid.uuid4().hex):
        refused = bench.transition(report_id, fields, csrf)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "csrf_failed")
    from_elsewhere = bench.http.post(
        bench.url(f"/api/v1/opd/reports/{report_id}/transitions"),
        json=fields,
        headers={"X-CSRF-Token": bench.csrf, "Origin": "https://evil.example"},
        timeout=10,
    )
    assert from_elsewhere.status_code == 403
    done = bench.transition(report_id, fields)
    assert done.status_code == 200 and done.json()["status"] == "dikerjakan"


def test_another_opds_report_is_not_reachable_by_url(system: RunningSystem, holder: str) -> None:
    receipt = file_report(system, "Parkir liar, bukan milik mereka")
    routed(system, receipt)
    other = Workbench(system, OTHER_OPD)
    response = other.get(f"/api/v1/opd/reports/{receipt['report_id']}")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "report_not_found")
    acted = other.transition(receipt["report_id"], {"status": "dikerjakan"})
    assert acted.status_code == 404


def test_the_work_list_its_order_filters_and_counts(system: RunningSystem, openapi: dict, holder: str) -> None:
    bench = Workbench(system, holder)
    receipts = [file_report(system, f"Parkir liar urutan {n}") for n in range(3)]
    for receipt in receipts:
        routed(system, receipt)
    first, second, third = (receipt["report_id"] for receipt in receipts)
    assert bench.transition(first, {"status": "dikerjakan"}).status_code == 200

    response = bench.get("/api/v1/opd/reports", params={"limit": 200})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.json()
    conforms(openapi, "WorkList", body)
    ids = [report["report_id"] for report in body["reports"]]
    # the same category: the later submitted, the later its deadline; answered ones (no deadline) after them
    assert ids.index(second) < ids.index(third) < ids.index(first)
    deadlines = [r["response_deadline"] for r in body["reports"] if r["response_deadline"]]
    assert deadlines == sorted(deadlines)
    assert all(report["area"]["kota"] == "Jakarta Selatan" for report in body["reports"])

    worked = bench.get("/api/v1/opd/reports", params={"status": "dikerjakan", "kelurahan": "melawai"}).json()
    assert first in [r["report_id"] for r in worked["reports"]] and {r["status"] for r in worked["reports"]} == {
        "dikerjakan"
    }
    page = bench.get("/api/v1/opd/reports", params={"limit": 1}).json()
    assert len(page["reports"]) == 1 and page["next_cursor"]
    following = bench.get("/api/v1/opd/reports", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert following["reports"][0]["report_id"] != page["reports"][0]["report_id"]

    counts = bench.get("/api/v1/opd/reports/counts")
    conforms(openapi, "WorkCounts", counts.json())
    assert counts.json()["by_status"]["dikerjakan"] >= 1
    assert counts.json()["by_status"] == body["counts"]["by_status"]

    for params, field in (
        ({"status": "hilang"}, "status"),
        ({"kecamatan": "Atlantis"}, "kecamatan"),
        ({"cursor": "x"}, "cursor"),
    ):
        refused = bench.get("/api/v1/opd/reports", params=params)
        assert (refused.status_code, refused.json()["error"]["field"]) == (400, field), refused.text


def test_the_opd_view_says_what_may_be_done_and_shows_possible_duplicates(
    system: RunningSystem, openapi: dict, holder: str
) -> None:
    first, twin = file_report(system, "Parkir liar kembar 1"), file_report(system, "Parkir liar kembar 2")
    routed(system, first)
    routed(system, twin)
    response = requests.get(
        system.url("intake", f"/api/v1/opd/reports/{first['report_id']}"),
        headers=system.opd_headers(holder),
        timeout=10,
    )
    assert response.status_code == 200
    view = response.json()
    conforms(openapi, "OpdReportView", view)
    assert view["allowed_transitions"] == ["koordinasi", "dikerjakan", "ditolak"]  # a Suku Dinas: no disposisi
    assert view["disposisi_target"] is None
    nearby = [report["report_id"] for report in view["nearby"]]
    assert twin["report_id"] in nearby and first["report_id"] not in nearby
    assert twin["tracking_token"] not in response.text


def test_the_live_list_follows_a_hand_over_between_two_opds(system: RunningSystem, holder: str) -> None:
    source = SseListener(system.url("intake", "/api/v1/opd/stream"), headers=system.opd_headers(holder))
    target_bench = Workbench(system, OTHER_OPD)
    target = SseListener(
        system.url("intake", "/api/v1/opd/stream"),
        headers={"Cookie": f"jaklapor_opd_session={target_bench.http.cookies['jaklapor_opd_session']}"},
    )
    try:
        assert source.status_code == target.status_code == 200 and "text/event-stream" in source.content_type
        assert source.next_matching(lambda f: f.get("event") == "ready")["json"]["opd"]["code"] == holder
        target.next_matching(lambda f: f.get("event") == "ready")
        receipt = file_report(system, "Parkir liar, diserahkan")
        report_id = receipt["report_id"]

        def about(change: str) -> Any:
            return lambda f: (
                f.get("event") == "report"
                and (f["json"]["report_id"], f["json"]["change"])
                == (
                    report_id,
                    change,
                )
            )

        added = source.next_matching(about("added"), timeout=20)["json"]
        assert added["report"]["category"] == CATEGORY and added["status"] == "menunggu"

        handover = {"status": "koordinasi", "note": "Trotoar rusak, kewenangan Bina Marga", "target_opd": OTHER_OPD}
        answer = requests.post(
            system.url("intake", f"/api/v1/opd/reports/{report_id}/transitions"),
            json=handover,
            headers=system.opd_headers(holder),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        removed = source.next_matching(about("removed"), timeout=10)["json"]
        assert removed["status"] == "koordinasi" and "report" not in removed
        arrived = target.next_matching(about("added"), timeout=10)["json"]
        assert arrived["report"]["hop"] == 1 and arrived["status"] == "koordinasi"
        target.next_matching(lambda f: f.get("event") == "counts", timeout=10)
        # routing's decision for the new hop (its deadline) shows as a change in the new holder's list
        target.next_matching(about("updated"), timeout=20)

        signed_out = target_bench.http.delete(
            target_bench.url("/api/v1/opd/session"), headers={"X-CSRF-Token": target_bench.csrf}, timeout=10
        )
        assert signed_out.status_code == 204
        target.next_matching(lambda f: f.get("event") == "signed_out", timeout=10)
        assert target.ended.wait(10)
    finally:
        source.close()
        target.close()


def test_the_directory_finds_a_hand_over_target(system: RunningSystem, openapi: dict, holder: str) -> None:
    response = requests.get(
        system.url("intake", "/api/v1/opd/directory"),
        params={"q": "BÍNA marga selatan", "limit": 5},
        headers=system.opd_headers(holder),
        timeout=10,
    )
    assert response.status_code == 200
    conforms(openapi, "OpdDirectory", response.json())
    found = response.json()["opds"]
    assert found[0]["code"] == OTHER_OPD and found[0]["kota"] == "jakarta-selatan"
    refused = requests.get(
        system.url("intake", "/api/v1/opd/directory"),
        params={"level": "planet"},
        headers=system.opd_headers(holder),
        timeout=10,
    )
    assert (refused.status_code, refused.json()["error"]["field"]) == (400, "level")
    assert requests.get(system.url("intake", "/api/v1/opd/directory"), timeout=10).status_code == 401


def test_the_opds_own_figures_come_from_stats(system: RunningSystem, holder: str) -> None:
    def figures() -> dict[str, Any] | None:
        response = requests.get(system.url("stats", "/api/v1/stats/agencies"), params={"opd": holder}, timeout=10)
        assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
        return response.json()["agency"]

    agency = wait_for(figures, 20, message=f"stats' figures of {holder}")
    assert agency["opd"] == holder and agency["received"] >= 1
    refused = requests.get(system.url("stats", "/api/v1/stats/agencies"), params={"opd": "dinas-atlantis"}, timeout=10)
    assert (refused.status_code, refused.json()["error"]["field"]) == (400, "opd")
