"""The intake rules without I/O: the official status machine, report numbers and what a citizen sees of a report.

OPDs come from the real directory (jaklapor/reference/opd_directory.yaml), so a rename there shows up here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from jaklapor.reference import Directory, load_directory
from jaklapor.vocabulary import (
    ALLOWED_TRANSITIONS,
    DIKERJAKAN,
    DISPOSISI,
    DITOLAK,
    KOORDINASI,
    MENUNGGU,
    SELESAI,
    STATUS_LABELS,
    TARGET_STATUSES,
)
from services.intake.domain import (
    NOTE_MAX_CHARS,
    PUBLIC_SUMMARY_FIELDS,
    REJECTION_REASONS,
    ReportState,
    TransitionDecision,
    TransitionRefused,
    TransitionRequest,
    decide_transition,
    format_report_number,
    history_entry,
    is_report_number,
    public_view,
    report_day,
    report_summary,
)
from services.intake.http_errors import TRANSITION_REFUSALS

STATUSES = (MENUNGGU, KOORDINASI, DISPOSISI, DIKERJAKAN, SELESAI, DITOLAK)
DINAS = "bina-marga"
KOTA = "jakarta-selatan"
SUDIN = "sudin-bina-marga-jakarta-selatan"
OTHER_OPD = "perhubungan"

# the official machine, written out independently of the module so that a change to it is a visible decision
EXPECTED_ALLOWED = {
    (MENUNGGU, KOORDINASI),
    (MENUNGGU, DISPOSISI),
    (MENUNGGU, DIKERJAKAN),
    (MENUNGGU, DITOLAK),
    (KOORDINASI, KOORDINASI),
    (KOORDINASI, DISPOSISI),
    (KOORDINASI, DIKERJAKAN),
    (KOORDINASI, DITOLAK),
    (DISPOSISI, KOORDINASI),
    (DISPOSISI, DIKERJAKAN),
    (DISPOSISI, DITOLAK),
    (DIKERJAKAN, KOORDINASI),
    (DIKERJAKAN, SELESAI),
}
ALL_PAIRS = [(a, b) for a in STATUSES for b in STATUSES if b != MENUNGGU]


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory()


def state(status: str = MENUNGGU, assigned: str | None = DINAS, kota: str | None = KOTA) -> ReportState:
    return ReportState(report_id="JK-20261127-000001", status=status, assigned_opd=assigned, kota_slug=kota)


def valid_request(status: str, **overrides: Any) -> TransitionRequest:
    """A request that satisfies every rule of its target status (for bina-marga at jakarta-selatan)."""
    fields: dict[str, Any] = {"status": status, "note": "Sedang ditangani petugas"}
    if status == KOORDINASI:
        fields["target_opd"] = OTHER_OPD
    elif status == DITOLAK:
        fields["reason"] = "spam"
    elif status == SELESAI:
        fields["has_evidence"] = True
    fields.update(overrides)
    return TransitionRequest(**fields)


def http_status(error: TransitionRefused) -> int | None:
    """The status the gateway answers a refusal with (services/intake/http_errors.py)."""
    return TRANSITION_REFUSALS.status_of(error.code)


def refused(directory: Directory, st: ReportState, actor_code: str, request: TransitionRequest) -> TransitionRefused:
    actor = directory.get(actor_code)
    assert actor is not None, actor_code
    with pytest.raises(TransitionRefused) as info:
        decide_transition(st, actor, request, directory)
    return info.value


def decide(directory: Directory, st: ReportState, actor_code: str, request: TransitionRequest) -> TransitionDecision:
    actor = directory.get(actor_code)
    assert actor is not None, actor_code
    return decide_transition(st, actor, request, directory)


# ---- the machine itself ---------------------------------------------------------------------------------------------


def test_allowed_transitions_are_the_official_machine() -> None:
    table = {(a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets}
    assert table == EXPECTED_ALLOWED
    assert set(ALLOWED_TRANSITIONS) == set(STATUSES)
    assert set(STATUSES) - {MENUNGGU} == TARGET_STATUSES
    assert ALLOWED_TRANSITIONS[SELESAI] == ALLOWED_TRANSITIONS[DITOLAK] == frozenset()


@pytest.mark.parametrize(("from_status", "to_status"), sorted(EXPECTED_ALLOWED))
def test_every_allowed_transition_is_accepted(directory: Directory, from_status: str, to_status: str) -> None:
    decision = decide(directory, state(from_status), DINAS, valid_request(to_status))
    assert (decision.from_status, decision.to_status, decision.actor_opd) == (from_status, to_status, DINAS)
    assert decision.note == "Sedang ditangani petugas"
    if to_status == KOORDINASI:
        assert decision.forwards and decision.target_opd.code == OTHER_OPD
    elif to_status == DISPOSISI:
        assert decision.forwards and decision.target_opd.code == SUDIN
    else:
        assert not decision.forwards
    assert decision.reason == ("spam" if to_status == DITOLAK else None)


@pytest.mark.parametrize(("from_status", "to_status"), [pair for pair in ALL_PAIRS if pair not in EXPECTED_ALLOWED])
def test_every_other_transition_is_refused_as_illegal(directory: Directory, from_status: str, to_status: str) -> None:
    error = refused(directory, state(from_status), DINAS, valid_request(to_status))
    assert (http_status(error), error.code, error.field) == (409, "illegal_transition", "status")
    assert from_status in error.message and to_status in error.message


@pytest.mark.parametrize("final", [SELESAI, DITOLAK])
def test_final_status_says_nothing_is_allowed(directory: Directory, final: str) -> None:
    error = refused(directory, state(final), DINAS, valid_request(DIKERJAKAN))
    assert "none (final status)" in error.message


@pytest.mark.parametrize("status", [MENUNGGU, "SELESAI", "done", ""])
def test_unknown_or_initial_target_status_is_422(directory: Directory, status: str) -> None:
    error = refused(directory, state(), DINAS, TransitionRequest(status=status, note="x"))
    assert (http_status(error), error.code, error.field) == (422, "invalid_status", "status")


# ---- who may act ----------------------------------------------------------------------------------------------------


def test_report_not_routed_yet_is_409(directory: Directory) -> None:
    error = refused(directory, state(assigned=None), DINAS, valid_request(DIKERJAKAN))
    assert (http_status(error), error.code) == (409, "not_routed_yet")


def test_another_opds_report_looks_like_a_missing_one(directory: Directory) -> None:
    error = refused(directory, state(assigned=OTHER_OPD), DINAS, valid_request(DIKERJAKAN))
    assert (http_status(error), error.code) == (404, "report_not_found")
    assert OTHER_OPD not in error.message  # the actor learns nothing about whose report it is


def test_ownership_is_checked_before_the_machine(directory: Directory) -> None:
    # a final report of someone else: still 404, not a 409 that reveals its status
    error = refused(directory, state(SELESAI, assigned=OTHER_OPD), DINAS, valid_request(DIKERJAKAN))
    assert http_status(error) == 404


# ---- notes ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(TARGET_STATUSES - {DIKERJAKAN}))
@pytest.mark.parametrize("note", ["", "   \n\t "])
def test_note_is_required_except_for_dikerjakan(directory: Directory, status: str, note: str) -> None:
    from_status = DIKERJAKAN if status == SELESAI else MENUNGGU
    error = refused(directory, state(from_status), DINAS, valid_request(status, note=note))
    assert (http_status(error), error.code, error.field) == (422, "missing_note", "note")


def test_dikerjakan_needs_no_note(directory: Directory) -> None:
    decision = decide(directory, state(), DINAS, valid_request(DIKERJAKAN, note="  "))
    assert (decision.to_status, decision.note) == (DIKERJAKAN, "")


def test_note_is_stripped_and_limited(directory: Directory) -> None:
    at_limit = decide(directory, state(), DINAS, valid_request(DIKERJAKAN, note=f"  {'a' * NOTE_MAX_CHARS}\n"))
    assert at_limit.note == "a" * NOTE_MAX_CHARS
    error = refused(directory, state(), DINAS, valid_request(DIKERJAKAN, note="a" * (NOTE_MAX_CHARS + 1)))
    assert (http_status(error), error.code, error.field) == (422, "invalid_note", "note")


# ---- koordinasi -----------------------------------------------------------------------------------------------------


def test_koordinasi_hands_over_to_an_existing_other_opd(directory: Directory) -> None:
    decision = decide(directory, state(), DINAS, valid_request(KOORDINASI, target_opd="kelurahan-melawai"))
    assert decision.forwards
    assert decision.target_opd.code == "kelurahan-melawai"


@pytest.mark.parametrize(
    ("target", "code"),
    [(None, "missing_target"), ("", "missing_target"), ("dinas-tidak-ada", "unknown_opd"), (DINAS, "same_opd")],
)
def test_koordinasi_target_problems_are_422_on_target_opd(directory: Directory, target: str | None, code: str) -> None:
    error = refused(directory, state(), DINAS, valid_request(KOORDINASI, target_opd=target))
    assert (http_status(error), error.code, error.field) == (422, code, "target_opd")


# ---- disposisi ------------------------------------------------------------------------------------------------------


def test_disposisi_goes_from_dinas_to_its_sudin_in_the_reports_kota(directory: Directory) -> None:
    decision = decide(directory, state(), DINAS, valid_request(DISPOSISI))
    assert decision.target_opd.code == SUDIN
    assert decision.target_opd.kota == KOTA and decision.target_opd.agency == DINAS

    other_kota = decide(directory, state(kota="jakarta-utara"), DINAS, valid_request(DISPOSISI))
    assert other_kota.target_opd.code == "sudin-bina-marga-jakarta-utara"


def test_disposisi_with_the_right_target_named_is_accepted(directory: Directory) -> None:
    decision = decide(directory, state(), DINAS, valid_request(DISPOSISI, target_opd=SUDIN))
    assert decision.target_opd.code == SUDIN


@pytest.mark.parametrize("target", ["sudin-bina-marga-jakarta-utara", "sudin-perhubungan-jakarta-selatan", OTHER_OPD])
def test_disposisi_to_anyone_else_is_422(directory: Directory, target: str) -> None:
    error = refused(directory, state(), DINAS, valid_request(DISPOSISI, target_opd=target))
    assert (http_status(error), error.code, error.field) == (422, "invalid_target", "target_opd")
    assert SUDIN in error.message


def test_satpol_pp_disposes_to_its_kota_unit(directory: Directory) -> None:
    decision = decide(directory, state(assigned="satpol-pp"), "satpol-pp", valid_request(DISPOSISI))
    assert decision.target_opd.code == "satpol-pp-jakarta-selatan"


@pytest.mark.parametrize(
    "actor",
    [
        SUDIN,  # a Suku Dinas has nobody below it
        "satpol-pp-jakarta-selatan",  # the kota Satpol PP of the report's own kota
        "kelurahan-melawai",
        "kecamatan-kebayoran-baru",
        "kota-jakarta-selatan",
        "bpbd",  # a Badan
        "pam-jaya",  # a BUMD
        "triage",
    ],
)
def test_disposisi_from_anyone_but_a_dinas_or_satpol_pp_is_403(directory: Directory, actor: str) -> None:
    error = refused(directory, state(assigned=actor), actor, valid_request(DISPOSISI))
    assert (http_status(error), error.code) == (403, "disposisi_not_allowed")


def test_kota_satpol_pp_cannot_dispose_to_another_kotas_unit(directory: Directory) -> None:
    # a report in Jakarta Timur handed (koordinasi) to Satpol PP Jakarta Selatan: it is not the Dinas-level
    # Satpol PP, so it has no Suku Dinas to instruct; it must use koordinasi to pass the report sideways
    st = state(KOORDINASI, assigned="satpol-pp-jakarta-selatan", kota="jakarta-timur")
    error = refused(directory, st, "satpol-pp-jakarta-selatan", valid_request(DISPOSISI))
    assert (http_status(error), error.code) == (403, "disposisi_not_allowed")


def test_disposisi_outside_any_kota_is_409(directory: Directory) -> None:
    error = refused(directory, state(kota=None), DINAS, valid_request(DISPOSISI))
    assert (http_status(error), error.code) == (409, "no_area")


# ---- ditolak, selesai, stray fields ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", sorted(REJECTION_REASONS))
def test_ditolak_accepts_each_official_reason(directory: Directory, reason: str) -> None:
    decision = decide(directory, state(), DINAS, valid_request(DITOLAK, reason=reason))
    assert decision.reason == reason


@pytest.mark.parametrize("reason", [None, "", "malas", "SPAM"])
def test_ditolak_without_an_official_reason_is_422(directory: Directory, reason: str | None) -> None:
    error = refused(directory, state(), DINAS, valid_request(DITOLAK, reason=reason))
    assert (http_status(error), error.code, error.field) == (422, "invalid_reason", "reason")


def test_selesai_needs_evidence(directory: Directory) -> None:
    error = refused(directory, state(DIKERJAKAN), DINAS, valid_request(SELESAI, has_evidence=False))
    assert (http_status(error), error.code, error.field) == (422, "missing_evidence", "photo")
    assert decide(directory, state(DIKERJAKAN), DINAS, valid_request(SELESAI)).to_status == SELESAI


@pytest.mark.parametrize(("from_status", "status"), [(MENUNGGU, DIKERJAKAN), (DIKERJAKAN, SELESAI)])
def test_target_opd_is_refused_where_it_does_not_apply(directory: Directory, from_status: str, status: str) -> None:
    error = refused(directory, state(from_status), DINAS, valid_request(status, target_opd=OTHER_OPD))
    assert (http_status(error), error.code, error.field) == (422, "unexpected_target", "target_opd")


def test_target_opd_on_ditolak_is_refused(directory: Directory) -> None:
    error = refused(directory, state(), DINAS, valid_request(DITOLAK, target_opd=OTHER_OPD))
    assert (http_status(error), error.code, error.field) == (422, "unexpected_target", "target_opd")


# ---- report numbers -------------------------------------------------------------------------------------------------


def test_report_day_is_the_jakarta_calendar_day() -> None:
    assert report_day(datetime(2026, 11, 27, 20, 0, tzinfo=UTC)) == "20261128"  # 03:00 WIB next day
    assert report_day(datetime(2026, 11, 27, 16, 59, 59, tzinfo=UTC)) == "20261127"  # 23:59:59 WIB
    assert report_day(datetime(2026, 11, 27, 17, 0, tzinfo=UTC)) == "20261128"  # midnight WIB
    assert report_day(datetime(2026, 12, 31, 17, 0, tzinfo=UTC)) == "20270101"
    assert report_day(datetime(2026, 11, 28, 1, 0, tzinfo=timezone(timedelta(hours=9)))) == "20261127"  # WIT


def test_report_number_format() -> None:
    assert format_report_number("20261127", 42) == "JK-20261127-000042"
    assert format_report_number("20261127", 1) == "JK-20261127-000001"
    assert format_report_number(report_day(datetime(2026, 11, 27, 20, 0, tzinfo=UTC)), 7) == "JK-20261128-000007"


# ---- the public view ------------------------------------------------------------------------------------------------

SUBMITTED = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
TOKEN_HASH = "f" * 64
OPD_REF = {"code": DINAS, "name": "Dinas Bina Marga", "level": "dinas"}


def stored_report() -> dict[str, Any]:
    """A report document as intake stores it, including what must never reach a citizen."""
    routed_at = SUBMITTED + timedelta(minutes=1)
    rejected_at = datetime(2026, 11, 27, 3, 0)  # naive, as pymongo returns without tz_aware
    return {
        "_id": "JK-20261127-000001",
        "tracking_token_hash": TOKEN_HASH,
        "idempotency_key_hash": "e" * 64,
        "contact_ciphertext": "gAAAA-secret",
        "category": "jalan-rusak",
        "description": "Jalan berlubang di depan sekolah",
        "location": {"lat": -6.2441, "lon": 106.8013},
        "photos": [{"photo_id": "p1", "width": 800, "height": 600, "content_type": "image/jpeg"}],
        "status": DITOLAK,
        "version": 2,
        "hop": 0,
        "assigned_opd": OPD_REF,
        "area": {
            "code": "31.74.06.1006",
            "kelurahan": "Melawai",
            "kecamatan": "Kebayoran Baru",
            "kota": "Jakarta Selatan",
        },
        "submitted_at": SUBMITTED,
        "updated_at": rejected_at,
        "history": [
            history_entry("submitted", SUBMITTED, MENUNGGU, note="Laporan diterima"),
            history_entry("routed", routed_at, MENUNGGU, actor="routing", note="Diteruskan", opd=OPD_REF),
            history_entry(
                "transition", rejected_at, DITOLAK, actor=DINAS, note="Duplikat", reason="duplikat", photos=["e1"]
            ),
        ],
        "evidence_photos": [{"photo_id": "e1"}],
        "applied_events": ["ev1"],
        "outbox": [{"message_id": "m1", "body": {"tracking_token_hash": TOKEN_HASH}}],
        "outbox_due": SUBMITTED,
    }


def all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in all_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in all_keys(v)}
    return set()


def test_public_view_never_carries_identity_or_internals() -> None:
    view = public_view(stored_report(), "https://lapor.example/", "https://notify.example", "tok" * 8)
    keys = all_keys(view)
    for forbidden in ("tracking_token_hash", "idempotency_key_hash", "contact", "contact_ciphertext", "outbox"):
        assert forbidden not in keys
    assert not {k for k in keys if "token_hash" in k or "contact" in k or k.startswith("_")}
    text = json.dumps(view, default=str)
    assert TOKEN_HASH not in text and "gAAAA-secret" not in text and "e" * 64 not in text


def test_public_view_shape() -> None:
    view = public_view(stored_report(), "https://lapor.example/", "https://notify.example/", "tok" * 8)
    assert view["report_id"] == "JK-20261127-000001"
    assert (view["status"], view["status_label"]) == (DITOLAK, "Ditolak")
    assert view["responsible_opd"] == OPD_REF
    assert view["submitted_at"] == "2026-11-27T01:00:00Z"
    assert view["updated_at"] == "2026-11-27T03:00:00Z"  # naive datetimes are UTC
    assert view["photos"] == ["https://lapor.example/api/v1/photos/p1"]
    assert view["evidence_photos"] == ["https://lapor.example/api/v1/photos/e1"]
    assert view["stream_url"] == f"https://notify.example/api/v1/reports/{'tok' * 8}/stream"
    assert view["version"] == 2
    assert "triage_reason" not in view


def test_public_view_history_entries() -> None:
    history = public_view(stored_report(), "https://lapor.example", "", None)["history"]
    assert [h["kind"] for h in history] == ["submitted", "routed", "transition"]
    assert [h["status_label"] for h in history] == ["Menunggu", "Menunggu", "Ditolak"]
    submitted, routed, rejected = history
    assert submitted == {
        "kind": "submitted",
        "status": MENUNGGU,
        "status_label": "Menunggu",
        "at": "2026-11-27T01:00:00Z",
        "actor_opd": None,
        "opd": None,
        "note": "Laporan diterima",
    }
    assert (routed["actor_opd"], routed["opd"]) == ("routing", OPD_REF)
    assert "reason" not in routed and "photos" not in routed
    assert rejected["reason"] == "duplikat"
    assert rejected["photos"] == ["https://lapor.example/api/v1/photos/e1"]
    assert rejected["at"] == "2026-11-27T03:00:00Z"


def test_report_summary_holds_the_public_fields_only_and_starts_every_view() -> None:
    summary = report_summary(stored_report(), "https://lapor.example")
    assert set(summary) == {
        "report_id", "category", "status", "status_label", "description", "location", "area", "submitted_at", "photos",
        "supporters", "merged_into",
    }  # fmt: skip
    assert summary["photos"] == ["https://lapor.example/api/v1/photos/p1"]
    assert summary["area"]["kelurahan"] == "Melawai"
    view = public_view(stored_report(), "https://lapor.example")
    assert {key: view[key] for key in summary} == summary
    # the store is asked for exactly what the summary reads (the verification record for the status label)
    assert set(PUBLIC_SUMMARY_FIELDS) == set(summary) - {"report_id", "status_label"} | {"_id", "verification"}


def test_report_numbers_are_recognised() -> None:
    assert is_report_number(format_report_number("20261127", 42))
    for text in ("JK-20261127-42", "JK-20261127-0000420", "jk-20261127-000042", " JK-20261127-000042", "x" * 40):
        assert not is_report_number(text)


def test_public_view_without_token_has_no_stream_url_and_shows_triage_reason() -> None:
    report = stored_report()
    report["triage_reason"] = "outside_jakarta"
    del report["evidence_photos"]
    view = public_view(report, "https://lapor.example", "https://notify.example", None)
    assert "stream_url" not in view
    assert view["triage_reason"] == "outside_jakarta"
    assert view["evidence_photos"] == []


def test_status_labels_cover_every_status() -> None:
    assert set(STATUS_LABELS) == set(STATUSES)
