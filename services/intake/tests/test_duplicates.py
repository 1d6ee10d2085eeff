"""Duplicates in intake: the rules (duplicates.py), the Report aggregate's merge / follow / unmerge, and the
entrypoints through worker_factory with the in-memory fakes (support, merge, unmerge, fan-out, the OPD's view)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from jaklapor.contacts import decrypt_contact
from jaklapor.events import ContactRegistered, parse_event
from jaklapor.vocabulary import DIKERJAKAN, DITOLAK, KOORDINASI, MENUNGGU, SELESAI
from services.intake.domain import TransitionRefused
from services.intake.duplicates import decide_merge, decide_unmerge, may_act_on_duplicates, supporter_hash
from services.intake.replay import replay_report
from services.intake.tests.test_service import (
    DINAS,
    OTHER_OPD,
    SETTINGS,
    answer,
    get,
    opd_auth,
    outbox_types,
    post,
    routed_event,
    routed_report,
    submit,
    transition,
)
from services.intake.tests.test_verification_api import make_service
from tests import photo_fixtures as fx


@pytest.fixture
def service() -> Any:
    """Intake with the OPD's selesai closing the report at once (merged reports follow the status the primary
    gets; the verifier's step before selesai is tested in test_verification_api.py)."""
    return make_service(verification_default=False)


KEY_A = "device-key-aaaaaaaaaaaaaaaaaaaa"
KEY_B = "device-key-bbbbbbbbbbbbbbbbbbbb"


def actor(code: str, role: str | None = None) -> Any:
    return SimpleNamespace(code=code, name=code, level="dinas", agency=code, kota=None, role=role)


def doc(report_id: str, holder: str = DINAS, **fields: Any) -> dict[str, Any]:
    return {
        "_id": report_id,
        "status": MENUNGGU,
        "category": "jalan",
        "assigned_opd": {"code": holder},
        "version": 2,
        **fields,
    }


# ---- the rules ------------------------------------------------------------------------------------------------------


def test_the_holder_merges_an_open_report_into_an_open_one_of_its_category() -> None:
    decision = decide_merge(doc("JK-1"), doc("JK-2", holder=OTHER_OPD, status=DIKERJAKAN), actor(DINAS), " ", False)
    assert (decision.primary_id, decision.from_status, decision.status, decision.note) == (
        "JK-2",
        MENUNGGU,
        DIKERJAKAN,
        "",
    )


@pytest.mark.parametrize(
    ("duplicate", "primary", "followers", "code"),
    [
        (doc("JK-1", holder=OTHER_OPD), doc("JK-2"), False, "report_not_found"),
        (doc("JK-1"), None, False, "primary_not_found"),
        (doc("JK-1"), doc("JK-1"), False, "merge_into_itself"),
        (doc("JK-1", merged_into="JK-3"), doc("JK-2"), False, "already_merged"),
        (doc("JK-1", status=SELESAI), doc("JK-2"), False, "report_closed"),
        (doc("JK-1"), doc("JK-2"), True, "has_merged_reports"),
        (doc("JK-1"), doc("JK-2", merged_into="JK-3"), False, "primary_is_merged"),
        (doc("JK-1"), doc("JK-2", status=DITOLAK), False, "primary_closed"),
        (doc("JK-1"), doc("JK-2", category="sampah"), False, "category_mismatch"),
    ],
)
def test_a_merge_the_rules_refuse_names_the_problem(duplicate: Any, primary: Any, followers: bool, code: str) -> None:
    with pytest.raises(TransitionRefused) as refused:
        decide_merge(duplicate, primary, actor(DINAS), "", followers)
    assert refused.value.code == code


def test_who_may_merge_is_decided_in_one_place_and_a_verifier_role_may_act_on_any_report() -> None:
    assert may_act_on_duplicates(actor(DINAS), (DINAS,))
    assert not may_act_on_duplicates(actor(OTHER_OPD), (DINAS, None))
    assert may_act_on_duplicates(actor("biro-pemerintahan", role="verifier"), (DINAS,))


def test_unmerge_goes_back_to_the_status_it_had_and_the_primary_holder_may_do_it() -> None:
    merged = doc("JK-1", status=SELESAI, merged_into="JK-2", status_before_merge=MENUNGGU)
    decision = decide_unmerge(merged, doc("JK-2", holder=OTHER_OPD), actor(OTHER_OPD), "")
    assert (decision.from_status, decision.status, decision.primary_id) == (SELESAI, MENUNGGU, "JK-2")
    with pytest.raises(TransitionRefused) as refused:
        decide_unmerge(doc("JK-1"), None, actor(DINAS), "")
    assert refused.value.code == "not_merged"
    with pytest.raises(TransitionRefused) as refused:
        decide_unmerge(merged, doc("JK-2", holder=OTHER_OPD), actor("sudin-x"), "")
    assert refused.value.code == "report_not_found"


def test_a_supporter_is_a_hash_bound_to_the_report() -> None:
    assert supporter_hash("JK-1", KEY_A) == supporter_hash("JK-1", KEY_A)
    assert supporter_hash("JK-1", KEY_A) != supporter_hash("JK-2", KEY_A)
    assert KEY_A not in supporter_hash("JK-1", KEY_A)


# ---- support --------------------------------------------------------------------------------------------------------


def support(service: Any, report_id: str, key: str | None = KEY_A, **fields: str) -> tuple[int, dict[str, Any], Any]:
    headers = {"Idempotency-Key": key} if key else {}
    path = f"/api/v1/reports/public/{report_id}/supporters"
    request = post(path, fields, headers=headers) if fields else get(path, headers=headers)
    request.environ["REQUEST_METHOD"] = "POST"
    return answer(service.support_report, request, report_id)


def test_a_supporter_counts_once_per_device_and_shows_in_every_view(service: Any) -> None:
    report_id = routed_report(service)
    first = support(service, report_id)
    again = support(service, report_id)
    other = support(service, report_id, KEY_B)
    assert (first[0], first[1]["counted"], first[1]["supporters"]) == (201, True, 1)
    assert (again[0], again[1]["counted"], again[1]["supporters"]) == (200, False, 1)
    assert (other[0], other[1]["supporters"]) == (201, 2)
    _, view, _ = answer(service.public_report, get(f"/api/v1/reports/public/{report_id}"), report_id)
    assert view["supporters"] == 2 and "supporter_hashes" not in view
    _, listed, _ = answer(service.work_list, get("/api/v1/opd/reports", headers=opd_auth(DINAS)))
    assert listed["reports"][0]["supporters"] == 2
    assert outbox_types(service, report_id) == ["report_submitted"]  # no contact: nothing to send
    assert service.store.reports[report_id]["version"] == 2  # support is no change of the report's course


def test_a_supporters_contact_goes_to_notify_encrypted_with_its_own_hash(service: Any) -> None:
    report_id = routed_report(service)
    status, _body, _ = support(service, report_id, contact="tetangga@example.org")
    assert status == 201
    message = service.store.messages(report_id)[-1]
    registered = ContactRegistered.model_validate(message["body"])
    assert registered.supporter_hash == supporter_hash(report_id, KEY_A)
    assert "tetangga" not in json.dumps(service.store.reports[report_id], default=str).replace(
        registered.contact_ciphertext, ""
    )
    bundle = json.loads(decrypt_contact(SETTINGS.contact_key, registered.contact_ciphertext) or "")
    assert bundle["contact"] == "tetangga@example.org"
    assert bundle["tracking_url"] == f"https://lapor.example/api/v1/reports/public/{report_id}"
    assert service.relay.handed_over[-1] == report_id


@pytest.mark.parametrize(
    ("key", "report", "fields", "status", "code"),
    [
        (None, "ok", {}, 400, "invalid_idempotency_key"),
        ("short", "ok", {}, 400, "invalid_idempotency_key"),
        (KEY_A, "JK-1", {}, 400, "invalid_report_number"),
        (KEY_A, "JK-20200101-000009", {}, 404, "report_not_found"),
        (KEY_A, "ok", {"contact": "bukan kontak"}, 422, "invalid_field"),
    ],
)
def test_a_support_refused_names_the_problem(
    service: Any, key: str | None, report: str, fields: dict[str, str], status: int, code: str
) -> None:
    report_id = routed_report(service) if report == "ok" else report
    answered, body, _ = support(service, report_id, key, **fields)
    assert (answered, body["error"]["code"]) == (status, code)


def test_a_closed_report_takes_no_supporter_and_a_merged_ones_support_goes_to_its_primary(service: Any) -> None:
    closed = routed_report(service)
    transition(service, closed, DINAS, {"status": DITOLAK, "note": "Spam", "reason": "spam"})
    status, body, _ = support(service, closed)
    assert (status, body["error"]["code"]) == (409, "report_closed")
    primary, duplicate = routed_report(service), routed_report(service)
    merge(service, duplicate, primary)
    status, body, _ = support(service, duplicate)
    assert (status, body["report_id"], body["supporters"]) == (201, primary, 1)


# ---- merge, follow, unmerge ----------------------------------------------------------------------------------------


def merge(service: Any, report_id: str, primary_id: str, opd: str = DINAS, note: str = "") -> tuple:
    request = post(
        f"/api/v1/opd/reports/{report_id}/merge", {"primary_id": primary_id, "note": note}, headers=opd_auth(opd)
    )
    return answer(service.merge_report, request, report_id)


def unmerge(service: Any, report_id: str, opd: str = DINAS) -> tuple:
    request = post(f"/api/v1/opd/reports/{report_id}/unmerge", {"note": ""}, headers=opd_auth(opd))
    return answer(service.unmerge_report, request, report_id)


def follow_all(service: Any, report_id: str) -> None:
    """What the intake.merge-followers queue does with each status change of `report_id` queued so far."""
    for message in service.store.messages(report_id):
        if message["routing_key"] == "report_status_changed":
            service.follow_primary(message["body"])


def test_a_merged_report_leaves_the_work_list_and_tells_its_citizen(service: Any) -> None:
    primary, duplicate = routed_report(service), routed_report(service)
    transition(service, primary, DINAS, {"status": DIKERJAKAN})
    status, view, _ = merge(service, duplicate, primary)
    assert status == 200, view
    assert (view["status"], view["merged_into"], view["may_unmerge"], view["allowed_transitions"]) == (
        DIKERJAKAN, primary, True, []
    )  # fmt: skip
    stored = service.store.reports[duplicate]
    assert (stored["status_before_merge"], stored["response_deadline"]) == (MENUNGGU, None)
    merged = service.store.messages(duplicate)[-1]["body"]
    assert (merged["event_type"], merged["primary_id"], merged["from_status"], merged["status"]) == (
        "intake.report_merged", primary, MENUNGGU, DIKERJAKAN
    )  # fmt: skip
    _, listed, _ = answer(service.work_list, get("/api/v1/opd/reports", headers=opd_auth(DINAS)))
    assert [r["report_id"] for r in listed["reports"]] == [primary]
    _, public, _ = answer(service.public_report, get(f"/api/v1/reports/public/{duplicate}"), duplicate)
    assert public["merged_into"] == primary
    assert public["history"][-1]["kind"] == "merged" and primary in public["history"][-1]["note"]
    _, primary_view, _ = answer(service.opd_get_report, get(f"/api/v1/opd/reports/{primary}", opd_auth(DINAS)), primary)
    assert [r["report_id"] for r in primary_view["merged_reports"]] == [duplicate]
    # its own transitions are refused: it moves with its primary only
    assert transition(service, duplicate, DINAS, {"status": SELESAI, "note": "x"}, [fx.jpeg_bytes()])[0] == 409


def test_each_change_of_the_primary_reaches_the_merged_report_through_its_own_aggregate(service: Any) -> None:
    primary, duplicate = routed_report(service), routed_report(service)
    merge(service, duplicate, primary)
    transition(service, primary, DINAS, {"status": DIKERJAKAN})
    transition(service, primary, DINAS, {"status": SELESAI, "note": "Sudah ditambal"}, [fx.jpeg_bytes()])
    follow_all(service, primary)
    follow_all(service, primary)  # a redelivery changes nothing
    stored = service.store.reports[duplicate]
    assert stored["status"] == SELESAI and stored["followed_version"] == service.store.reports[primary]["version"]
    kinds = [(e["kind"], e["status"]) for e in stored["history"]]
    assert kinds[-3:] == [("merged", MENUNGGU), ("transition", DIKERJAKAN), ("transition", SELESAI)]
    changes = [m["body"] for m in service.store.messages(duplicate) if m["routing_key"] == "report_status_changed"]
    assert [(c["to_status"], c["merged_into"], c["actor_opd"]) for c in changes] == [
        (DIKERJAKAN, primary, DINAS), (SELESAI, primary, DINAS)
    ]  # fmt: skip
    assert changes[-1]["note"] == "Sudah ditambal" and changes[-1]["evidence_photos"]
    assert stored["evidence_photos"] == service.store.reports[primary]["evidence_photos"]
    # the stored history replays to the events that announced it
    replayed = [e for e in replay_report(stored, SETTINGS.public_url) if e.event_type.endswith("status_changed")]
    assert [(e.to_status, e.merged_into) for e in replayed] == [(DIKERJAKAN, primary), (SELESAI, primary)]


def test_changes_of_the_primary_handled_out_of_order_still_reach_the_merged_report_step_by_step(
    service: Any,
) -> None:
    """The queue's workers handle a primary's changes concurrently: its selesai may be handled before its dikerjakan.
    The merged report takes the step it missed first, and the late dikerjakan is then a no-op."""
    primary, duplicate = routed_report(service), routed_report(service)
    merge(service, duplicate, primary)
    transition(service, primary, DINAS, {"status": DIKERJAKAN, "note": "Petugas menuju lokasi"})
    transition(service, primary, DINAS, {"status": SELESAI, "note": "Sudah ditambal"}, [fx.jpeg_bytes()])
    changes = [m["body"] for m in service.store.messages(primary) if m["routing_key"] == "report_status_changed"]
    for change in reversed(changes):
        service.follow_primary(change)
    stored = service.store.reports[duplicate]
    steps = [(e["status"], e["note"]) for e in stored["history"] if e["kind"] == "transition"]
    assert steps == [(DIKERJAKAN, "Petugas menuju lokasi"), (SELESAI, "Sudah ditambal")]
    assert stored["status"] == SELESAI and stored["followed_version"] == service.store.reports[primary]["version"]
    announced = [m["body"] for m in service.store.messages(duplicate) if m["routing_key"] == "report_status_changed"]
    assert [(c["from_status"], c["to_status"]) for c in announced] == [(MENUNGGU, DIKERJAKAN), (DIKERJAKAN, SELESAI)]
    assert not announced[0]["evidence_photos"] and announced[1]["evidence_photos"]


def test_a_change_of_a_follower_is_not_fanned_out_again(service: Any) -> None:
    primary, duplicate = routed_report(service), routed_report(service)
    merge(service, duplicate, primary)
    transition(service, primary, DINAS, {"status": DIKERJAKAN})
    follow_all(service, primary)
    before = service.store.reports[duplicate]["version"]
    follow_all(service, duplicate)
    assert service.store.reports[duplicate]["version"] == before


def test_merge_refusals_through_the_api(service: Any) -> None:
    primary, duplicate = routed_report(service), routed_report(service)
    assert merge(service, duplicate, primary, opd=OTHER_OPD)[1]["error"]["code"] == "report_not_found"
    assert merge(service, duplicate, "JK-20200101-000009")[1]["error"]["code"] == "primary_not_found"
    status, body, _ = merge(service, duplicate, duplicate)
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "merge_into_itself", "primary_id")
    assert merge(service, duplicate, primary)[0] == 200
    assert merge(service, duplicate, primary)[1]["error"]["code"] == "already_merged"
    third = routed_report(service)
    assert merge(service, primary, third)[1]["error"]["code"] == "has_merged_reports"
    assert merge(service, third, duplicate)[1]["error"]["code"] == "primary_is_merged"


def test_unmerge_restores_the_report_to_its_own_course(service: Any) -> None:
    primary, duplicate = routed_report(service), routed_report(service)
    merge(service, duplicate, primary)
    transition(service, primary, DINAS, {"status": DIKERJAKAN})
    follow_all(service, primary)
    status, view, _ = unmerge(service, duplicate)
    assert status == 200, view
    assert (view["status"], view["merged_into"], view["may_merge"]) == (MENUNGGU, None, True)
    assert view["response_deadline"] is not None  # waiting again: its response clock runs
    event = parse_event(service.store.messages(duplicate)[-1]["body"])
    assert (event.event_type, event.from_status, event.status) == ("intake.report_unmerged", DIKERJAKAN, MENUNGGU)
    _, listed, _ = answer(service.work_list, get("/api/v1/opd/reports", headers=opd_auth(DINAS)))
    assert duplicate in [r["report_id"] for r in listed["reports"]]
    # the primary's later changes no longer reach it
    transition(service, primary, DINAS, {"status": KOORDINASI, "note": "Ke Perhubungan", "target_opd": OTHER_OPD})
    follow_all(service, primary)
    assert service.store.reports[duplicate]["status"] == MENUNGGU
    assert unmerge(service, duplicate)[1]["error"]["code"] == "not_merged"


def test_the_opd_view_shows_routings_suggestions_still_open(service: Any) -> None:
    first, closed = routed_report(service), routed_report(service)
    transition(service, closed, DINAS, {"status": DITOLAK, "note": "Spam", "reason": "spam"})
    report_id = submit(service)["report_id"]
    service.apply_routing_results([routed_event(report_id, possible_duplicates=[first, closed, "JK-20200101-000009"])])
    request = get(f"/api/v1/opd/reports/{report_id}", opd_auth(DINAS))
    _, view, _ = answer(service.opd_get_report, request, report_id)
    assert [r["report_id"] for r in view["possible_duplicates"]] == [first]
    assert first in [r["report_id"] for r in view["nearby"]]
    assert view["may_merge"] is True and view["merged_reports"] == []


def merge_reading(service: Any, report_id: str, primary_id: str, stale: dict[str, Any]) -> None:
    """Merge `report_id` into `primary_id` while the merge's first read of the primary returns `stale`: the primary
    changed between that read and the merge's write."""
    reads = {"primary": 0}
    by_id = service.store.by_id

    def racing(wanted: str) -> Any:
        if wanted == primary_id and reads["primary"] == 0:
            reads["primary"] += 1
            return stale
        return by_id(wanted)

    service.store.by_id = racing
    status, view, _ = merge(service, report_id, primary_id)
    assert status == 200, view


def test_a_change_of_the_primary_racing_the_merge_is_caught_up(service: Any) -> None:
    primary, duplicate = routed_report(service), routed_report(service)
    stale = service.store.by_id(primary)  # the primary as the merge reads it, before its change lands
    transition(service, primary, DINAS, {"status": DIKERJAKAN})
    merge_reading(service, duplicate, primary, stale)
    stored = service.store.reports[duplicate]
    assert stored["status"] == DIKERJAKAN
    assert stored["followed_version"] == service.store.reports[primary]["version"]
    assert [e["kind"] for e in stored["history"]][-2:] == ["merged", "transition"]


def test_several_changes_of_the_primary_racing_the_merge_are_caught_up_in_order(service: Any) -> None:
    primary, duplicate = routed_report(service), routed_report(service)
    stale = service.store.by_id(primary)  # the primary as the merge reads it, before its two changes land
    transition(service, primary, DINAS, {"status": DIKERJAKAN, "note": "Petugas menuju lokasi"})
    transition(service, primary, DINAS, {"status": SELESAI, "note": "Sudah ditambal"}, [fx.jpeg_bytes()])
    merge_reading(service, duplicate, primary, stale)
    stored = service.store.reports[duplicate]
    steps = [(e["kind"], e["status"], e["note"]) for e in stored["history"]][-3:]
    assert steps == [
        ("merged", MENUNGGU, steps[0][2]),
        ("transition", DIKERJAKAN, "Petugas menuju lokasi"),
        ("transition", SELESAI, "Sudah ditambal"),
    ]
    assert stored["followed_version"] == service.store.reports[primary]["version"]


def test_a_report_is_supported_by_its_tracking_link_too(service: Any) -> None:
    receipt = submit(service)
    path = f"/api/v1/reports/{receipt['tracking_token']}/supporters"
    request = post(path, {"contact": ""}, headers={"Idempotency-Key": KEY_A})
    status, body, _ = answer(service.support_report_by_token, request, receipt["tracking_token"])
    assert (status, body["report_id"], body["supporters"]) == (201, receipt["report_id"], 1)
    request = post("/api/v1/reports/x/supporters", {"contact": ""}, headers={"Idempotency-Key": KEY_A})
    status, body, _ = answer(service.support_report_by_token, request, "not-a-token")
    assert (status, body["error"]["code"]) == (404, "report_not_found")


def test_the_city_verifier_may_merge_and_unmerge_reports_of_any_opd() -> None:
    from services.intake.duplicates import may_act_on_duplicates
    from services.intake.verification import VERIFIER

    assert may_act_on_duplicates(VERIFIER, (DINAS, OTHER_OPD))
    assert not may_act_on_duplicates(actor(OTHER_OPD), (DINAS,))
