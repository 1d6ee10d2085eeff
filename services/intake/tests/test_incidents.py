"""Incidents at the gateway: the rules that sum an OPD's incidents and judge a fanned-out transition, and the
entrypoints through worker_factory with the in-memory fakes: members tagged from routing's events, an incident read
and moved at once through each report's aggregate (its own history and outbox), refusals per member, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jaklapor.events import OpdRef, ReportJoinedIncident
from services.intake.domain import TransitionRefused
from services.intake.incidents import incident_summaries, refusal_for_all
from services.intake.replay import replay_page
from services.intake.tests.test_service import (
    AREA,
    DINAS,
    SETTINGS,
    answer,
    get,
    opd_auth,
    outbox_types,
    post,
    routed_event,
    submit,
)
from services.intake.tests.test_verification_api import make_service
from tests import photo_fixtures as fx


@pytest.fixture
def service() -> Any:
    """IntakeService with the fakes and the default settings (the OPD's selesai waits for the verifier)."""
    return make_service()


T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
INCIDENT = "a" * 32


# ---- rules ----------------------------------------------------------------------------------------------------------


def row(incident: str, status: str, minutes: int, kecamatan: str = "Jatinegara") -> dict[str, Any]:
    area = {"kecamatan": kecamatan, "kota": "Jakarta Timur"}
    at = T0 + timedelta(minutes=minutes)
    return {"incident_id": incident, "status": status, "category": "penanganan-banjir", "area": area, "assigned_at": at}


def test_an_opds_incidents_are_summed_from_its_reports_open_ones_first_newest_first() -> None:
    rows = [
        row("closed", "selesai", 0),
        row("old", "menunggu", 1),
        row("old", "dikerjakan", 2),
        row("new", "menunggu", 30),
        row("new", "ditolak", 31),
    ]
    summaries = incident_summaries(rows)
    assert [s["incident_id"] for s in summaries] == ["new", "old", "closed"]
    new = summaries[0]
    assert (new["member_count"], new["open_count"]) == (2, 1)
    assert new["by_status"]["ditolak"] == 1 and new["by_status"]["selesai"] == 0
    assert new["opened_at"] < new["last_member_at"] and new["kecamatan"] == "Jatinegara"


def test_a_request_refused_for_every_member_for_one_reason_is_the_requests_fault() -> None:
    missing = TransitionRefused("missing_note", "note needed", "note")
    refused = {"outcome": "refused"}
    assert refusal_for_all([refused, refused], [missing, missing]) is missing
    illegal = TransitionRefused("illegal_transition", "no")
    assert refusal_for_all([refused, refused], [missing, illegal]) is None  # members differ: per member
    assert refusal_for_all([refused, {"outcome": "moved"}], [missing]) is None
    assert refusal_for_all([{"outcome": "unchanged"}], []) is None


# ---- entrypoints ----------------------------------------------------------------------------------------------------


def incident_reports(service: Any, n: int, opd_code: str = DINAS) -> list[str]:
    """`n` reports routed to `opd_code`: the first one delivered on its own (it joins later), the others into it."""
    ids = [submit(service)["report_id"] for _ in range(n)]
    service.apply_routing_results([routed_event(ids[0], opd_code)])
    for report_id in ids[1:]:
        service.apply_routing_results([routed_event(report_id, opd_code, incident_id=INCIDENT)])
    opd = service.reference.directory.get(opd_code)
    joined = ReportJoinedIncident(
        report_id=ids[0],
        version=1,
        incident_id=INCIDENT,
        opd=OpdRef(code=opd.code, name=opd.name, level=opd.level),
        category="jalan",
        area=AREA,
    )
    service.join_incident(joined.to_message())
    service.join_incident(joined.to_message())  # redelivered: the same
    return ids


def test_members_joined_by_either_event_make_one_incident_for_its_opd(service: Any) -> None:
    ids = incident_reports(service, 3)
    status, body, _ = answer(service.opd_incidents, get("/api/v1/opd/incidents", opd_auth(DINAS)))
    assert status == 200 and [(i["incident_id"], i["member_count"]) for i in body["incidents"]] == [(INCIDENT, 3)]
    status, body, _ = answer(service.opd_incident, get("/", opd_auth(DINAS)), INCIDENT)
    assert status == 200 and sorted(m["report_id"] for m in body["members"]) == sorted(ids)
    assert "dikerjakan" in body["allowed_transitions"] and body["kecamatan"] == "Kebayoran Baru"
    # another OPD learns nothing about it
    status, body, _ = answer(service.opd_incident, get("/", opd_auth("perhubungan")), INCIDENT)
    assert status == 404 and body["error"]["code"] == "incident_not_found"


def test_one_transition_moves_every_member_through_its_own_history_and_events(service: Any) -> None:
    ids = incident_reports(service, 3)
    request = post("/", {"status": "dikerjakan", "note": "Tim dikerahkan"}, headers=opd_auth(DINAS))
    status, body, _ = answer(service.incident_transition, request, INCIDENT)
    assert status == 200 and (body["moved"], body["unchanged"], body["refused"]) == (3, 0, 0)
    for report_id in ids:
        stored = service.store.by_id(report_id)
        assert stored["status"] == "dikerjakan" and stored["history"][-1]["note"] == "Tim dikerahkan"
        assert outbox_types(service, report_id)[-1] == "report_status_changed"
    # a retry changes nothing twice
    request = post("/", {"status": "dikerjakan", "note": "Tim dikerahkan"}, headers=opd_auth(DINAS))
    status, body, _ = answer(service.incident_transition, request, INCIDENT)
    assert status == 200 and body["unchanged"] == 3 and body["moved"] == 0
    assert [len(service.store.by_id(r)["history"]) for r in ids] == [3, 3, 3]


def test_an_incidents_selesai_waits_for_the_verifier_member_by_member_and_a_retry_changes_nothing(
    service: Any,
) -> None:
    # the default configuration: each member's completion is checked, as a report's own selesai is
    ids = incident_reports(service, 2)
    moved = post("/", {"status": "dikerjakan", "note": "Pompa dikerahkan"}, headers=opd_auth(DINAS))
    assert answer(service.incident_transition, moved, INCIDENT)[0] == 200
    done = post("/", {"status": "selesai", "note": "Air surut"}, [fx.jpeg_bytes()], headers=opd_auth(DINAS))
    status, body, _ = answer(service.incident_transition, done, INCIDENT)
    assert status == 200 and body["moved"] == 2
    for report_id in ids:
        stored = service.store.by_id(report_id)
        assert stored["status"] == "dikerjakan" and stored["verification"]["state"] == "pending"
        assert outbox_types(service, report_id)[-1] == "report_completion_submitted"
    again = post("/", {"status": "selesai", "note": "Air surut"}, [fx.jpeg_bytes()], headers=opd_auth(DINAS))
    status, body, _ = answer(service.incident_transition, again, INCIDENT)
    assert status == 200 and (body["moved"], body["unchanged"]) == (0, 2)
    # while the verifier holds them, another action on the incident is refused for every member
    rejected = post("/", {"status": "koordinasi", "note": "x", "target_opd": DINAS}, headers=opd_auth(DINAS))
    status, body, _ = answer(service.incident_transition, rejected, INCIDENT)
    assert status >= 400


def test_members_the_rules_refuse_are_reported_and_the_others_move(service: Any) -> None:
    ids = incident_reports(service, 3)
    service.store.reports[ids[1]]["status"] = "ditolak"  # closed meanwhile (by its own transition)
    request = post("/", {"status": "dikerjakan", "note": ""}, headers=opd_auth(DINAS))
    status, body, _ = answer(service.incident_transition, request, INCIDENT)
    assert status == 200 and (body["moved"], body["refused"]) == (2, 1)
    refused = next(m for m in body["members"] if m["outcome"] == "refused")
    assert refused["report_id"] == ids[1] and refused["error"]["code"] == "illegal_transition"
    assert service.store.by_id(ids[1])["status"] == "ditolak"


def test_a_request_every_member_refuses_alike_gets_the_reports_4xx_and_nothing_moves(service: Any) -> None:
    ids = incident_reports(service, 2)
    request = post("/", {"status": "ditolak", "note": "spam"}, headers=opd_auth(DINAS))  # no reason given
    status, body, _ = answer(service.incident_transition, request, INCIDENT)
    assert status == 422 and body["error"]["code"] in ("invalid_reason", "missing_reason")
    assert {service.store.by_id(r)["status"] for r in ids} == {"menunggu"}
    status, body, _ = answer(
        service.incident_transition, post("/", {"status": "dikerjakan"}, headers=opd_auth(DINAS)), "nope"
    )
    assert status == 404 and body["error"]["code"] == "incident_not_found"


def test_the_replay_gives_back_each_members_incident(service: Any) -> None:
    ids = incident_reports(service, 2)
    page = replay_page([service.store.reports[r] for r in sorted(ids)], 10, SETTINGS.public_url)
    events = {r.report_id: r.parsed() for r in page.reports}
    first, second = events[ids[0]], events[ids[1]]
    assert [e.event_type for e in first][-1] == "routing.report_joined_incident"
    assert first[-1].incident_id == INCIDENT  # type: ignore[attr-defined]
    routed = [e for e in second if e.event_type == "routing.report_routed"]
    assert routed[0].incident_id == INCIDENT  # type: ignore[attr-defined]
    assert all(e.event_type != "routing.report_joined_incident" for e in second)
    assert first[-1].event_id == f"replay:{ids[0]}:0:report_joined_incident"  # stable across rebuilds


def test_the_incident_endpoints_are_in_the_openapi_document() -> None:
    from openapi_spec_validator import validate

    from services.intake.openapi import openapi_document, with_incidents

    document = with_incidents(openapi_document("https://lapor.example", ["penanganan-banjir"]))
    validate(document)  # type: ignore[arg-type]
    assert {"/api/v1/opd/incidents", "/api/v1/opd/incidents/{incident_id}"} <= set(document["paths"])
    post = document["paths"]["/api/v1/opd/incidents/{incident_id}/transitions"]["post"]
    assert (
        post["requestBody"] == document["paths"]["/api/v1/opd/reports/{report_id}/transitions"]["post"]["requestBody"]
    )
    assert {"OpdIncidentList", "OpdIncident", "IncidentTransitionResult"} <= set(document["components"]["schemas"])
