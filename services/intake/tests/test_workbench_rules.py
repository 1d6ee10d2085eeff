"""The workbench's rules without I/O: sessions and CSRF (sessions.py), wrong keys slowed down (ratelimit.py), the
work list's order, filters, cursor and changes, the OPDs an event concerns, the directory search (worklist.py), and
what an OPD may do with a report (domain.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jaklapor.events import Location, OpdRef, ReportEscalated, ReportRouted, ReportStatusChanged, ReportSubmitted
from jaklapor.reference import load_directory
from jaklapor.tokens import hash_token
from jaklapor.vocabulary import DIKERJAKAN, DISPOSISI, DITOLAK, KOORDINASI, MENUNGGU, SELESAI
from services.intake.domain import ReportState, allowed_transitions
from services.intake.ratelimit import FailureThrottle
from services.intake.sessions import (
    SessionPolicy,
    csrf_problem,
    is_alive,
    new_session,
    origin_problem,
    session_id_or_none,
    touched,
)
from services.intake.worklist import (
    HELD_STATUSES,
    LIST_CHANGING_EVENTS,
    ListChange,
    WorkListError,
    decode_cursor,
    kelurahan_codes,
    list_changes,
    opds_concerned,
    page_of,
    parse_statuses,
    search_directory,
    sort_key,
)

NOW = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
POLICY = SessionPolicy(idle=timedelta(hours=8), absolute=timedelta(hours=12))
DIRECTORY = load_directory()
OWN = "https://lapor.example"


# ---- sessions ------------------------------------------------------------------------------------------------------


def test_a_session_is_256_random_bits_stored_as_a_hash_with_its_expiries() -> None:
    new = new_session("bina-marga", NOW, POLICY)
    assert len(new.token) == 43 and session_id_or_none(new.token) == new.document["_id"] == hash_token(new.token)
    assert new.document["expires_at"] == NOW + timedelta(hours=8)
    assert new.document["absolute_expires_at"] == NOW + timedelta(hours=12)
    assert new.document["csrf_token"] != new.token and new.token not in str(new.document)
    assert new_session("bina-marga", NOW, POLICY).token != new.token


@pytest.mark.parametrize("token", [None, "", "short", "x" * 44, "a" * 42 + "!"])
def test_anything_that_cannot_be_a_session_token_is_no_session(token: str | None) -> None:
    assert session_id_or_none(token) is None


def test_a_session_lives_until_idle_then_absolute() -> None:
    session = new_session("bina-marga", NOW, POLICY).document
    assert is_alive(session, NOW + timedelta(hours=7, minutes=59))
    assert not is_alive(session, NOW + timedelta(hours=8)) and not is_alive(None, NOW)
    assert touched(session, NOW + timedelta(seconds=30), POLICY) is None  # moved at most once a minute
    moved = touched(session, NOW + timedelta(hours=7), POLICY)
    assert moved == {"last_seen_at": NOW + timedelta(hours=7), "expires_at": NOW + timedelta(hours=12)}


@pytest.mark.parametrize(
    ("method", "presented", "origin", "refused"),
    [
        ("GET", None, None, False),
        ("GET", None, "https://evil.example", False),  # reading changes nothing; SameSite keeps the cookie home
        ("POST", "csrf", None, False),
        ("POST", "csrf", OWN, False),
        ("DELETE", "csrf", OWN, False),
        ("POST", None, OWN, True),
        ("PATCH", "", None, True),
        ("PUT", "other", None, True),
        ("POST", "csrf", "https://evil.example", True),
        ("POST", "csrf", "null", True),
        ("POST", "çsrf", None, True),
    ],
)
def test_a_change_made_with_a_session_needs_its_csrf_token_from_its_own_origin(
    method: str, presented: str | None, origin: str | None, refused: bool
) -> None:
    assert (csrf_problem(method, "csrf", presented, origin, OWN) is not None) is refused


def test_sign_in_is_refused_from_another_origin_only() -> None:
    assert origin_problem(None, OWN) is None and origin_problem(OWN, OWN) is None
    assert "another origin" in (origin_problem("https://evil.example", OWN) or "")


# ---- wrong keys ----------------------------------------------------------------------------------------------------


def test_wrong_keys_are_free_a_few_times_then_each_doubles_the_wait() -> None:
    now = [0.0]
    throttle = FailureThrottle(free=5, max_wait=8, forget_after=100, clock=lambda: now[0])
    assert [throttle.failed("a") for _ in range(5)] == [0, 0, 0, 0, 1]
    assert throttle.retry_after("a") == 1 and throttle.retry_after("b") == 0
    now[0] += 1
    assert throttle.retry_after("a") == 0
    assert [throttle.failed("a") for _ in range(4)] == [2, 4, 8, 8]  # capped
    now[0] += 200  # forgotten after a quiet while
    assert throttle.retry_after("a") == 0 and throttle.failed("a") == 0
    throttle.succeeded("a")
    assert throttle.retry_after("a") == 0


def test_the_throttle_table_is_bounded() -> None:
    throttle = FailureThrottle(free=0, max_clients=3)
    for client in "abcd":
        throttle.failed(client)
    assert throttle.retry_after("a") == 0 and throttle.retry_after("d") > 0


# ---- the work list -------------------------------------------------------------------------------------------------


def row(report_id: str, status: str = MENUNGGU, deadline: datetime | None = None, **extra: Any) -> dict[str, Any]:
    return {"_id": report_id, "status": status, "response_deadline": deadline, "submitted_at": NOW, **extra}


def test_overdue_first_then_the_soonest_deadline_then_none_then_the_oldest() -> None:
    rows = [
        row("JK-20261203-000001", DIKERJAKAN),  # answered: no deadline
        row("JK-20261203-000002", deadline=NOW + timedelta(days=2)),
        row("JK-20261203-000003", deadline=NOW + timedelta(days=1)),
        row("JK-20261203-000004", deadline=NOW + timedelta(days=5), escalation_exhausted=True),
        row("JK-20261203-000005", DIKERJAKAN, submitted_at=NOW - timedelta(days=1)),
        row("JK-20261203-000006", DIKERJAKAN, deadline=NOW, escalation_exhausted=True),  # stale fields, answered
    ]
    order = [r["_id"][-1] for r in sorted(rows, key=sort_key)]
    assert order == ["4", "3", "2", "5", "1", "6"]


def test_pages_follow_each_other_without_gaps_or_repeats() -> None:
    rows = [row(f"JK-20261203-{n:06d}", deadline=NOW + timedelta(hours=n % 4)) for n in range(1, 12)]
    seen: list[str] = []
    after = None
    while True:
        page = page_of(rows, after, 3)
        seen += page.report_ids
        if page.next_cursor is None:
            break
        after = decode_cursor(page.next_cursor)
    assert seen == [r["_id"] for r in sorted(rows, key=sort_key)]


@pytest.mark.parametrize("cursor", ["", "abc", "W10", "WzEsIngiLCJ5IiwiWiJd", "!!!!"])
def test_a_cursor_not_handed_out_is_refused(cursor: str) -> None:
    with pytest.raises(WorkListError) as refused:
        decode_cursor(cursor)
    assert refused.value.field == "cursor"


def test_statuses_default_to_those_still_worked_on() -> None:
    assert parse_statuses(None) == HELD_STATUSES and SELESAI not in HELD_STATUSES and DITOLAK not in HELD_STATUSES
    assert parse_statuses(" Selesai, dikerjakan,selesai ") == (SELESAI, DIKERJAKAN)
    with pytest.raises(WorkListError, match="unknown status"):
        parse_statuses("menunggu,hilang")


def test_area_filters_resolve_names_slugs_and_codes() -> None:
    areas = DIRECTORY.areas
    assert kelurahan_codes(areas, None, None) is None
    assert kelurahan_codes(areas, None, "MELAWAI") == ["31.74.07.1001"]
    in_kecamatan = kelurahan_codes(areas, "kebayoran-baru", None) or []
    assert "31.74.07.1001" in in_kecamatan and len(in_kecamatan) > 5
    assert kelurahan_codes(areas, "31.74.07", "melawai") == ["31.74.07.1001"]
    assert kelurahan_codes(areas, "Tebet", "Melawai") == []  # both exist, not together
    with pytest.raises(WorkListError) as refused:
        kelurahan_codes(areas, "Atlantis", None)
    assert refused.value.field == "kecamatan"


def test_changes_between_two_readings_of_a_list() -> None:
    before = {"a": 1, "b": 2, "c": 3}
    after = {"b": 2, "c": 4, "d": 1}
    assert list_changes(before, after) == [
        ListChange("a", "removed"),
        ListChange("c", "updated"),
        ListChange("d", "added"),
    ]
    assert list_changes(after, after) == []


def opd_ref(code: str) -> OpdRef:
    opd = DIRECTORY.opd(code)
    return OpdRef(code=opd.code, name=opd.name, level=opd.level)


def test_the_opds_an_event_concerns() -> None:
    report = {"report_id": "JK-20261203-000001", "category": "jalan"}
    routed = ReportRouted(**report, version=2, opd=opd_ref("bina-marga"), routing_key="bina-marga", hop=0)
    assert opds_concerned(routed, "triage") == {"bina-marga"}
    handed = ReportStatusChanged(
        **report,
        version=3,
        from_status=MENUNGGU,
        to_status=KOORDINASI,
        actor_opd="bina-marga",
        assigned_opd="perhubungan",
        target_opd="perhubungan",
        note="x",
        submitted_at=NOW,
    )
    assert opds_concerned(handed, "triage") == {"bina-marga", "perhubungan"}
    escalated = ReportEscalated(
        **report,
        version=4,
        status=MENUNGGU,
        from_opd="kelurahan-melawai",
        to_opd="kecamatan-kebayoran-baru",
        hop=1,
        deadline=NOW,
        submitted_at=NOW,
    )
    assert opds_concerned(escalated, "triage") == {"kelurahan-melawai", "kecamatan-kebayoran-baru"}
    submitted = ReportSubmitted(
        **report,
        version=1,
        description="x",
        location=Location(lat=-6.2, lon=106.8),
        submitted_at=NOW,
        tracking_token_hash="0" * 64,
        photos=[],
    )
    assert opds_concerned(submitted, "triage") == set()


def test_the_live_lists_broadcast_queue_binds_exactly_the_events_that_change_lists() -> None:
    # a submission changes no list: the queue does not receive it (one delivery less per report)
    assert ("intake", "report_submitted") not in LIST_CHANGING_EVENTS
    assert set(LIST_CHANGING_EVENTS) == {
        ("routing", "report_routed"),
        ("routing", "report_unroutable"),
        ("intake", "report_status_changed"),
        ("intake", "report_escalated"),
        ("intake", "report_forwarded"),
    }


def test_the_directory_search() -> None:
    opds = DIRECTORY.all()
    found = search_directory(opds, "Dinas Bína Marga", None, 50)
    assert found[0].code == "bina-marga"  # the name starting with the words first
    assert {o.code for o in found} >= {"bina-marga", "sudin-bina-marga-jakarta-selatan"}
    exact = search_directory(opds, "sudin-bina-marga-jakarta-selatan", None, 5)
    assert exact[0].code == "sudin-bina-marga-jakarta-selatan"
    assert all(o.level == "kelurahan" for o in search_directory(opds, "", "kelurahan", 500))
    assert len(search_directory(opds, "", None, 7)) == 7
    assert search_directory(opds, "tidak ada sama sekali", None, 5) == []


# ---- what an OPD may do --------------------------------------------------------------------------------------------


def state(status: str, holder: str | None, kota: str | None = "jakarta-selatan") -> ReportState:
    return ReportState("JK-20261203-000001", status, holder, kota)


def test_allowed_transitions_follow_the_rules_and_the_holder() -> None:
    dinas, sudin = DIRECTORY.opd("bina-marga"), DIRECTORY.opd("sudin-bina-marga-jakarta-selatan")
    assert allowed_transitions(state(MENUNGGU, "bina-marga"), dinas, DIRECTORY) == [
        KOORDINASI,
        DISPOSISI,
        DIKERJAKAN,
        DITOLAK,
    ]
    assert DISPOSISI not in allowed_transitions(state(MENUNGGU, sudin.code), sudin, DIRECTORY)
    assert DISPOSISI not in allowed_transitions(state(MENUNGGU, "bina-marga", kota=None), dinas, DIRECTORY)
    assert allowed_transitions(state(MENUNGGU, sudin.code), dinas, DIRECTORY) == []  # not its report
    assert allowed_transitions(state(MENUNGGU, None), dinas, DIRECTORY) == []  # not routed yet
    assert allowed_transitions(state(SELESAI, "bina-marga"), dinas, DIRECTORY) == []
