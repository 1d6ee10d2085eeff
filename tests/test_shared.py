"""Shared code without I/O: OPD API keys, contact encryption, tracking tokens and the event contracts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from jaklapor.contacts import ContactKeyError, decrypt_contact, encrypt_contact, generate_key
from jaklapor.events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    AreaRef,
    Event,
    EvidenceCheck,
    Location,
    OpdRef,
    PhotoRef,
    ReportCompletionSubmitted,
    ReportConfirmed,
    ReportEscalated,
    ReportForwarded,
    ReportJoinedIncident,
    ReportMerged,
    ReportReopened,
    ReportRouted,
    ReportStatusChanged,
    ReportSubmitted,
    ReportUnmerged,
    ReportUnroutable,
    ReportVerificationApproved,
    ReportVerificationRefused,
    parse_event,
)
from jaklapor.opd_keys import derive_key, verify_key
from jaklapor.tokens import TOKEN_RE, hash_token, new_tracking_token, token_hash_or_none

SECRET = "test-opd-secret"

# ---- OPD keys -------------------------------------------------------------------------------------------------------


def test_derived_key_verifies_as_its_opd() -> None:
    key = derive_key(SECRET, "bina-marga")
    assert key.startswith("bina-marga.")
    assert verify_key(SECRET, key) == "bina-marga"
    assert derive_key(SECRET, "bina-marga") == key  # deterministic: nothing to store


def test_keys_differ_per_opd_and_per_secret() -> None:
    keys = {derive_key(s, c) for s in (SECRET, "other") for c in ("bina-marga", "perhubungan")}
    assert len(keys) == 4


def test_key_signed_with_another_secret_is_refused() -> None:
    assert verify_key(SECRET, derive_key("another-secret", "bina-marga")) is None


def test_one_opds_key_cannot_pass_as_another() -> None:
    signature = derive_key(SECRET, "perhubungan").rpartition(".")[2]
    assert verify_key(SECRET, f"bina-marga.{signature}") is None
    assert verify_key(SECRET, f"sudin-bina-marga-jakarta-selatan.{signature}") is None


def _flip_last(text: str) -> str:
    return text[:-1] + ("A" if text[-1] != "A" else "B")


@pytest.mark.parametrize(
    "tamper",
    [
        _flip_last,
        lambda k: k[:-1],
        lambda k: k + "A",
        lambda k: k + "=",
        lambda k: k.upper(),
        lambda k: " " + k,
        lambda k: k.replace("bina-marga", "bina-marga2", 1),
        lambda k: k.rpartition(".")[2],  # signature only
        lambda k: k.rpartition(".")[0] + ".",  # code only
    ],
)
def test_tampered_key_is_refused(tamper: Any) -> None:
    key = derive_key(SECRET, "bina-marga")
    assert verify_key(SECRET, tamper(key)) is None


@pytest.mark.parametrize("presented", ["", ".", "bina-marga", ".abc", "Bearer x"])
def test_malformed_key_is_refused(presented: str) -> None:
    assert verify_key(SECRET, presented) is None


@pytest.mark.parametrize("presented", ["bina-marga.\u00e9\u00e9\u00e9", "b\u00efna-marga.abc"])
def test_non_ascii_key_is_refused_not_an_error(presented: str) -> None:
    # werkzeug decodes header bytes as latin-1, so `Authorization: Bearer <any byte >= 0x80>` reaches verify_key
    assert verify_key(SECRET, presented) is None


# ---- contacts -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("contact", ["+6281234567890", "budi.santoso@example.co.id", "wárga@contoh.id"])
def test_contact_round_trip(contact: str) -> None:
    key = generate_key()
    ciphertext = encrypt_contact(key, contact)
    assert contact not in ciphertext
    assert ciphertext.isascii()
    assert decrypt_contact(key, ciphertext) == contact


def test_contact_ciphertexts_differ_each_time() -> None:
    key = generate_key()
    assert encrypt_contact(key, "+6281234567890") != encrypt_contact(key, "+6281234567890")


def test_wrong_key_returns_none() -> None:
    ciphertext = encrypt_contact(generate_key(), "+6281234567890")
    assert decrypt_contact(generate_key(), ciphertext) is None


@pytest.mark.parametrize("ciphertext", ["", "not-a-token", "gAAAAA"])
def test_garbage_ciphertext_returns_none(ciphertext: str) -> None:
    assert decrypt_contact(generate_key(), ciphertext) is None


def test_tampered_ciphertext_returns_none() -> None:
    key = generate_key()
    ciphertext = encrypt_contact(key, "+6281234567890")
    assert decrypt_contact(key, _flip_last(ciphertext[:-4]) + ciphertext[-4:]) is None


def test_non_ascii_ciphertext_returns_none() -> None:
    assert decrypt_contact(generate_key(), "gAAAAA\u00e9") is None


@pytest.mark.parametrize("bad_key", ["", "not-a-key", "c2hvcnQ=", Fernet.generate_key().decode()[:-2]])
def test_bad_key_raises_contact_key_error(bad_key: str) -> None:
    with pytest.raises(ContactKeyError, match="Fernet key"):
        encrypt_contact(bad_key, "+6281234567890")
    with pytest.raises(ContactKeyError):
        decrypt_contact(bad_key, "gAAAAA")
    assert issubclass(ContactKeyError, ValueError)


def test_generated_key_is_a_fernet_key() -> None:
    key = generate_key()
    assert isinstance(key, str)
    Fernet(key)  # accepted as is
    assert generate_key() != key


# ---- tracking tokens ------------------------------------------------------------------------------------------------


def test_new_tokens_are_well_formed_and_unique() -> None:
    tokens = {new_tracking_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert TOKEN_RE.match(token)
        assert len(token) == 32  # 192 bits, URL-safe base64
        assert token_hash_or_none(token) == hash_token(token)


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    token = new_tracking_token()
    assert hash_token(token) != token and len(hash_token(token)) == 64


@pytest.mark.parametrize(
    "token",
    ["", "short", "a" * 15, "a" * 65, "has space in it 1234", "slash/slash/slash/1", "dot.dot.dot.dot.dot", "é" * 20],
)
def test_malformed_tokens_have_no_hash(token: str) -> None:
    assert token_hash_or_none(token) is None


def test_token_bounds() -> None:
    assert token_hash_or_none("a" * 16) == hash_token("a" * 16)
    assert token_hash_or_none("A-_" * 21 + "z") is not None  # 64 chars


def test_token_with_trailing_newline_has_no_hash() -> None:
    # the token comes from the URL path, where %0A decodes to a newline
    assert token_hash_or_none("a" * 20 + "\n") is None


# ---- events ---------------------------------------------------------------------------------------------------------

AT = datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)
AREA = AreaRef(code="31.74.06.1006", kelurahan="Melawai", kecamatan="Kebayoran Baru", kota="Jakarta Selatan")
OPD = OpdRef(code="bina-marga", name="Dinas Bina Marga", level="dinas")
LOCATION = Location(lat=-6.2441, lon=106.8013)
PHOTOS = [PhotoRef(photo_id="p1", url="http://x/api/v1/photos/p1")]


def citizen_feedback_events() -> list[Event]:
    """The citizen's word on selesai: a reopen and a confirmation with its rating."""
    common: dict[str, Any] = {"report_id": "JK-20261127-000001", "version": 7, "occurred_at": AT}
    opd = OpdRef(code="bina-marga", name="Dinas Bina Marga", level="dinas")
    return [
        ReportReopened(
            **common,
            category="jalan",
            opd=opd,
            reason="Masih berlubang",
            selesai_at=AT,
            work_deadline=AT,
            area=AREA,
            submitted_at=AT,
        ),
        ReportConfirmed(**common, category="jalan", opd=opd, rating=4, selesai_at=AT, submitted_at=AT),
    ]


def one_of_each() -> list[Event]:
    common: dict[str, Any] = {"report_id": "JK-20261127-000001", "version": 2, "occurred_at": AT}
    return [
        ReportSubmitted(
            **common,
            category="jalan-rusak",
            description="Jalan berlubang",
            location=LOCATION,
            photos=PHOTOS,
            submitted_at=AT,
            tracking_token_hash="a" * 64,
            has_contact=True,
        ),
        ReportForwarded(
            **common,
            category="jalan-rusak",
            description="Jalan berlubang",
            location=LOCATION,
            photos=PHOTOS,
            submitted_at=AT,
            area=AREA,
            from_opd="bina-marga",
            target_opd="sudin-bina-marga-jakarta-selatan",
            status="disposisi",
            note="Mohon ditindaklanjuti",
            hop=1,
            kind="disposisi",
        ),
        ReportStatusChanged(
            **common,
            from_status="dikerjakan",
            to_status="selesai",
            actor_opd="bina-marga",
            note="Sudah ditambal",
            category="jalan-rusak",
            assigned_opd="bina-marga",
            area=AREA,
            submitted_at=AT,
            evidence_photos=PHOTOS,
        ),
        ReportRouted(**common, opd=OPD, area=AREA, routing_key="bina-marga.jakarta-selatan", hop=1, category="x"),
        ReportUnroutable(
            **common, reason="outside_jakarta", detail="Di luar Jakarta", routing_key="triage.x", category="x"
        ),
        ReportEscalated(
            **common,
            category="jalan-rusak",
            status="menunggu",
            from_opd="kelurahan-melawai",
            to_opd="kecamatan-kebayoran-baru",
            deadline=AT,
            hop=2,
            area=AREA,
            submitted_at=AT,
        ),
        # duplicates
        ReportMerged(
            **common,
            primary_id="JK-20261127-000009",
            actor_opd="bina-marga",
            from_status="menunggu",
            status="dikerjakan",
            category="jalan-rusak",
            area=AREA,
            submitted_at=AT,
        ),
        ReportUnmerged(
            **common,
            primary_id="JK-20261127-000009",
            actor_opd="bina-marga",
            from_status="dikerjakan",
            status="menunggu",
            assigned_opd="bina-marga",
            category="jalan-rusak",
            area=AREA,
            submitted_at=AT,
        ),
        # verified completion
        ReportCompletionSubmitted(
            **common,
            category="jalan",
            opd="bina-marga",
            note="Sudah ditambal",
            evidence=[EvidenceCheck(verdicts=["near", "after_report"], distance_m=35.0, taken_after_seconds=7200)],
            evidence_matched=True,
            area=AREA,
            submitted_at=AT,
        ),
        ReportVerificationApproved(
            **common, category="jalan", opd="bina-marga", verifier="verifikator", area=AREA, submitted_at=AT
        ),
        ReportVerificationRefused(
            **common,
            category="jalan",
            opd="bina-marga",
            verifier="verifikator",
            reason="Foto bukan lokasi laporan",
            work_deadline=AT,
            area=AREA,
            submitted_at=AT,
        ),
        ReportJoinedIncident(**common, incident_id="5c0f" * 8, opd=OPD, category="penanganan-banjir", area=AREA),
    ]


EXPECTED_TYPES = {
    ReportSubmitted: "intake.report_submitted",
    ReportForwarded: "intake.report_forwarded",
    ReportEscalated: "intake.report_escalated",
    ReportStatusChanged: "intake.report_status_changed",
    ReportRouted: "routing.report_routed",
    ReportUnroutable: "routing.report_unroutable",
    ReportReopened: "intake.report_reopened",
    ReportConfirmed: "intake.report_confirmed",
    ReportMerged: "intake.report_merged",
    ReportUnmerged: "intake.report_unmerged",
    ReportCompletionSubmitted: "intake.report_completion_submitted",
    ReportVerificationApproved: "intake.report_verification_approved",
    ReportVerificationRefused: "intake.report_verification_refused",
    ReportJoinedIncident: "routing.report_joined_incident",
}


def test_event_types_are_filled_in_and_registered() -> None:
    events = one_of_each() + citizen_feedback_events()
    assert {type(e): e.event_type for e in events} == EXPECTED_TYPES
    assert {v: k for k, v in EXPECTED_TYPES.items()} == EVENT_TYPES


@pytest.mark.parametrize("event", one_of_each() + citizen_feedback_events(), ids=lambda e: e.event_type)
def test_parse_event_round_trips_each_type(event: Event) -> None:
    message = event.to_message()
    wire = json.loads(json.dumps(message))  # what actually crosses the broker
    parsed = parse_event(wire)
    assert type(parsed) is type(event)
    assert parsed == event
    assert parsed.to_message() == message
    assert parsed.occurred_at == AT and parsed.occurred_at.tzinfo is not None


def test_envelope_fields_are_auto_filled() -> None:
    before = datetime.now(UTC)
    a, b = (
        ReportUnroutable(report_id="r", version=1, reason="x", detail="y", routing_key="k", category="c")
        for _ in range(2)
    )
    assert a.event_id != b.event_id and len(a.event_id) == 32
    assert a.event_type == "routing.report_unroutable"
    assert a.schema_version == SCHEMA_VERSION
    assert a.occurred_at.tzinfo is not None and a.occurred_at >= before
    message = a.to_message()
    assert {"event_id", "event_type", "schema_version", "occurred_at", "report_id", "version"} <= set(message)
    assert message["occurred_at"].endswith("Z") or message["occurred_at"].endswith("+00:00")


def test_received_event_id_is_kept() -> None:
    message = one_of_each()[0].to_message() | {"event_id": "fixed-id", "unknown_future_field": 1}
    parsed = parse_event(message)
    assert parsed.event_id == "fixed-id"
    assert not hasattr(parsed, "unknown_future_field")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"event_type": "intake.report_deleted", "report_id": "r", "version": 1},
        {"event_type": "report_submitted"},
        {"event_type": None},
        [],
        "intake.report_submitted",
        None,
    ],
)
def test_unknown_event_type_is_value_error(body: Any) -> None:
    with pytest.raises(ValueError, match="unknown event_type"):
        parse_event(body)


def test_malformed_known_event_is_value_error() -> None:
    message = one_of_each()[2].to_message()
    message["to_status"] = "hilang"
    with pytest.raises(ValueError) as info:
        parse_event(message)
    assert isinstance(info.value, ValidationError)
    missing_field = {k: v for k, v in one_of_each()[2].to_message().items() if k != "report_id"}
    with pytest.raises(ValueError):
        parse_event(missing_field)


def test_events_carry_no_contact_or_plain_token() -> None:
    for event in one_of_each():
        keys = set(event.to_message())
        assert not {k for k in keys if "contact" in k and k != "has_contact"}
        assert "tracking_token" not in keys
