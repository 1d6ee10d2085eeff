"""The intake API's form schemas: good input passes, each bad field is a 422 naming that field."""

from __future__ import annotations

from typing import Any

import pytest

from jaklapor.web import ApiError
from services.intake.schemas import (
    DESCRIPTION_MAX_CHARS,
    SubmissionForm,
    TransitionForm,
    normalize_contact,
    parse_form,
)

GOOD = {
    "category": "jalan-rusak",
    "description": "Jalan berlubang di depan SDN Melawai 01, sudah dua minggu.",
    "lat": "-6.2441",
    "lon": "106.8013",
}


def rejected(model: type, data: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_form(model, data)
    return info.value


def submission_error(**changes: Any) -> ApiError:
    return rejected(SubmissionForm, {**GOOD, **changes})


def test_good_submission_is_parsed() -> None:
    form = parse_form(SubmissionForm, {**GOOD, "unknown_field": "ignored"})
    assert form.category == "jalan-rusak"
    assert form.description == GOOD["description"]
    assert (form.lat, form.lon) == (-6.2441, 106.8013)
    assert form.contact is None


def test_text_is_stripped_and_line_breaks_are_kept() -> None:
    form = parse_form(SubmissionForm, {**GOOD, "description": "  Baris satu\r\nBaris\tdua  \n", "lat": " -6.2 "})
    assert form.description == "Baris satu\r\nBaris\tdua"
    assert form.lat == -6.2


@pytest.mark.parametrize(("lat", "lon"), [("-90", "-180"), ("90", "180"), ("0", "0"), ("-6.1754", "106.8272")])
def test_coordinate_bounds_are_inclusive(lat: str, lon: str) -> None:
    form = parse_form(SubmissionForm, {**GOOD, "lat": lat, "lon": lon})
    assert (form.lat, form.lon) == (float(lat), float(lon))


@pytest.mark.parametrize("field", ["lat", "lon"])
@pytest.mark.parametrize(
    "value", ["NaN", "nan", "inf", "-inf", "Infinity", "1e309", "abc", "", "0x10", "-6,2", "200", "-200"]
)
def test_bad_coordinates_are_422_naming_the_field(field: str, value: str) -> None:
    error = submission_error(**{field: value})
    assert (error.status, error.code, error.field) == (422, "invalid_field", field)
    assert error.body()["error"]["field"] == field


@pytest.mark.parametrize(("field", "value"), [("lat", "90.0001"), ("lat", "-90.0001"), ("lon", "180.5")])
def test_coordinates_just_outside_range_are_422(field: str, value: str) -> None:
    assert submission_error(**{field: value}).field == field


@pytest.mark.parametrize("field", ["category", "description", "lat", "lon"])
def test_each_missing_field_is_named(field: str) -> None:
    data = {k: v for k, v in GOOD.items() if k != field}
    error = rejected(SubmissionForm, data)
    assert (error.status, error.field, error.message) == (422, field, f"{field} is required")


@pytest.mark.parametrize("value", ["", "   ", "\n\t"])
def test_empty_description_is_422(value: str) -> None:
    assert submission_error(description=value).field == "description"


def test_description_length_limit() -> None:
    at_limit = parse_form(SubmissionForm, {**GOOD, "description": "x" * DESCRIPTION_MAX_CHARS})
    assert len(at_limit.description) == DESCRIPTION_MAX_CHARS
    error = submission_error(description="x" * (DESCRIPTION_MAX_CHARS + 1))
    assert (error.status, error.field) == (422, "description")


def test_description_counts_characters_not_bytes() -> None:
    text = "é" * DESCRIPTION_MAX_CHARS  # 2 bytes each in UTF-8
    assert parse_form(SubmissionForm, {**GOOD, "description": text}).description == text


def test_invalid_utf8_replaced_by_the_form_decoder_is_422() -> None:
    description = b"Jalan rusak \xff\xfe parah".decode("utf-8", "replace")
    assert "\ufffd" in description
    error = submission_error(description=description)
    assert (error.status, error.field) == (422, "description")
    assert "UTF-8" in error.message


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85"])
def test_control_characters_in_description_are_422(char: str) -> None:
    error = submission_error(description=f"Jalan{char}rusak")
    assert (error.status, error.field) == (422, "description")
    assert "control characters" in error.message


def test_control_characters_in_category_are_422() -> None:
    assert submission_error(category="jalan\x00rusak").field == "category"


def test_category_length_limits() -> None:
    assert submission_error(category="").field == "category"
    assert submission_error(category="k" * 101).field == "category"


# ---- contact --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("0812-3456-7890", "+6281234567890"),
        ("0812 3456 7890", "+6281234567890"),
        ("+62 812-3456-7890", "+6281234567890"),
        ("6281234567890", "+6281234567890"),
        ("(021) 555-1234", "+62215551234"),
        ("Budi.Santoso@Example.CO.ID", "Budi.Santoso@example.co.id"),
        ("  warga@Jakarta.go.id  ", "warga@jakarta.go.id"),
    ],
)
def test_contact_is_normalized(given: str, normalized: str) -> None:
    assert parse_form(SubmissionForm, {**GOOD, "contact": given}).contact == normalized
    assert normalize_contact(given) == normalized


@pytest.mark.parametrize("value", ["", "   "])
def test_blank_contact_means_none(value: str) -> None:
    assert parse_form(SubmissionForm, {**GOOD, "contact": value}).contact is None


@pytest.mark.parametrize(
    "value",
    [
        "budi@",
        "@example.com",
        "budi@example",
        "budi@@example.com",
        "123",
        "0812-abc-7890",
        "+62 812 3456 7890 1234 5678",
        "telepon saya",
        "budi\x00@example.com",
        "0812\ufffd34567890",
        "a" * 250 + "@example.com",
    ],
)
def test_bad_contact_is_422(value: str) -> None:
    error = submission_error(contact=value)
    assert (error.status, error.code, error.field) == (422, "invalid_field", "contact")


def test_error_message_does_not_carry_pydantic_prefix() -> None:
    error = submission_error(contact="telepon saya")
    assert not error.message.startswith("Value error")
    assert error.body() == {"error": {"code": "invalid_field", "message": error.message, "field": "contact"}}


# ---- transitions ----------------------------------------------------------------------------------------------------


def test_transition_form_accepts_good_input() -> None:
    form = parse_form(
        TransitionForm,
        {"status": " koordinasi ", "note": " Diteruskan ke Dinas Perhubungan ", "target_opd": "perhubungan"},
    )
    assert (form.status, form.note, form.target_opd, form.reason) == (
        "koordinasi",
        "Diteruskan ke Dinas Perhubungan",
        "perhubungan",
        None,
    )


def test_transition_form_note_defaults_to_empty() -> None:
    form = parse_form(TransitionForm, {"status": "dikerjakan"})
    assert (form.note, form.target_opd, form.reason) == ("", None, None)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "status"),
        ({"status": ""}, "status"),
        ({"status": "x" * 21}, "status"),
        ({"status": "selesai", "note": "n" * 2001}, "note"),
        ({"status": "selesai", "note": "selesai\x00"}, "note"),
        ({"status": "selesai", "note": "bad \ufffd text"}, "note"),
        ({"status": "koordinasi", "target_opd": "o" * 101}, "target_opd"),
        ({"status": "ditolak", "reason": "r" * 51}, "reason"),
    ],
)
def test_transition_form_bad_field_is_422(data: dict[str, str], field: str) -> None:
    error = rejected(TransitionForm, data)
    assert (error.status, error.field) == (422, field)
