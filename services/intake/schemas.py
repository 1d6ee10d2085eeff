"""Input schemas of the intake API: every field checked, every error names its field."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jaklapor.web import ApiError
from services.intake.nearby import DEFAULT_RADIUS_M, MAX_RADIUS_M
from services.intake.worklist import DEFAULT_LIMIT, DIRECTORY_DEFAULT_LIMIT, DIRECTORY_MAX_LIMIT, MAX_LIMIT

DESCRIPTION_MAX_CHARS = 2000
CONTACT_MAX_CHARS = 254  # the longest e-mail address
PHONE_RE = re.compile(r"^\+?[0-9]{8,15}$")

Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


def _check_text(value: str, field: str) -> str:
    if "\ufffd" in value:
        # werkzeug decodes form fields with replacement characters; a citizen never types U+FFFD
        raise ValueError(f"{field} is not valid UTF-8 text")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t\r" for ch in value):
        raise ValueError(f"{field} contains control characters")
    return value


def optional_contact(value: str | None) -> str | None:
    """A contact a citizen may leave (a submission, a supporter): blank is none, else checked and normalised."""
    if value is None or not value.strip():
        return None
    return normalize_contact(_check_text(value, "contact"))


def normalize_contact(value: str) -> str:
    """An e-mail address (lower-cased domain) or a phone number (Indonesian 08... becomes +628...)."""
    value = value.strip()
    if "@" in value:
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"contact is not a valid e-mail address: {exc}") from None
    digits = re.sub(r"[\s\-().]", "", value)
    if not PHONE_RE.match(digits):
        raise ValueError("contact must be an e-mail address or a phone number such as +62812345678")
    if digits.startswith("0"):
        digits = "+62" + digits[1:]
    elif not digits.startswith("+"):
        digits = "+" + digits
    return digits


class SubmissionForm(BaseModel):
    """The text fields of `POST /api/v1/reports` (the photo is checked separately)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    category: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=DESCRIPTION_MAX_CHARS)
    lat: Latitude
    lon: Longitude
    contact: str | None = Field(default=None, max_length=CONTACT_MAX_CHARS)

    @field_validator("description", "category")
    @classmethod
    def _text(cls, value: str, info: Any) -> str:
        return _check_text(value, info.field_name)

    @field_validator("contact")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        return optional_contact(value)


class TransitionForm(BaseModel):
    """The fields of `POST /api/v1/opd/reports/{report_id}/transitions` (the evidence photo is separate)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    status: str = Field(min_length=1, max_length=20)
    note: str = Field(default="", max_length=2000)
    target_opd: str | None = Field(default=None, max_length=100)
    reason: str | None = Field(default=None, max_length=50)

    @field_validator("note", "status")
    @classmethod
    def _text(cls, value: str, info: Any) -> str:
        return _check_text(value, info.field_name)


class NearbyQuery(BaseModel):
    """The query of `GET /api/v1/reports/nearby`: a point, a radius in metres, optionally a category code."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    lat: Latitude
    lon: Longitude
    radius_m: int = Field(default=DEFAULT_RADIUS_M, ge=1, le=MAX_RADIUS_M)
    category: str | None = Field(default=None, max_length=100)

    @field_validator("category")
    @classmethod
    def _category(cls, value: str | None) -> str | None:
        if not value:  # `category=` is no filter, as leaving it out
            return None
        return _check_text(value, "category")


class SignInForm(BaseModel):
    """The body of `POST /api/v1/opd/session`: the agency's key."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    key: str = Field(min_length=1, max_length=300)


def _optional_text(value: str | None, field: str) -> str | None:
    if value is None or not value.strip():  # `name=` is no filter, as leaving it out
        return None
    return _check_text(value, field)


class WorkListQuery(BaseModel):
    """The query of `GET /api/v1/opd/reports`: filters, the page's size and where it starts."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    status: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=100)
    kecamatan: str | None = Field(default=None, max_length=100)
    kelurahan: str | None = Field(default=None, max_length=100)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=300)

    @field_validator("status", "category", "kecamatan", "kelurahan", "cursor")
    @classmethod
    def _text(cls, value: str | None, info: Any) -> str | None:
        return _optional_text(value, info.field_name)


class DirectoryQuery(BaseModel):
    """The query of `GET /api/v1/opd/directory`: words of a name or code, a level, how many."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    q: str = Field(default="", max_length=100)
    level: str | None = Field(default=None, max_length=40)
    limit: int = Field(default=DIRECTORY_DEFAULT_LIMIT, ge=1, le=DIRECTORY_MAX_LIMIT)

    @field_validator("q")
    @classmethod
    def _query(cls, value: str) -> str:
        return _check_text(value, "q")

    @field_validator("level")
    @classmethod
    def _level(cls, value: str | None) -> str | None:
        return _optional_text(value, "level")


def parse_form(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """Validate form data, turning the first problem into a 422 naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        field, message = _first_problem(exc)
        raise ApiError(422, "invalid_field", message, field=field) from None


def parse_query(model: type[BaseModel], args: Iterable[tuple[str, list[str]]]) -> Any:
    """Validate query parameters (`MultiDict.lists()`); a parameter given twice or a bad value is a 400 naming it."""
    values: dict[str, str] = {}
    for name, given in args:
        if len(given) != 1:
            raise ApiError(400, "invalid_query", f"{name} was given more than once; give it once", field=name)
        values[name] = given[0]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        field, message = _first_problem(exc)
        raise ApiError(400, "invalid_query", message, field=field) from None


def _first_problem(exc: ValidationError) -> tuple[str | None, str]:
    """The field of the first problem pydantic found, and a sentence naming it."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"]
    if first["type"] == "missing":
        message = f"{field} is required"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    else:
        message = f"{field}: {message}"
    return field, message


class ConfirmForm(BaseModel):
    """The body of `POST /api/v1/reports/{token}/confirm`: an optional rating (1-5) and comment (the range and
    lengths are services/intake/citizen_feedback.py's rules, which name the problem)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    rating: int | None = None
    comment: str | None = Field(default=None, max_length=4000)

    @field_validator("rating", mode="before")
    @classmethod
    def _rating(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None  # `rating=` is no rating, as leaving it out
        if isinstance(value, bool | float):
            raise ValueError("rating must be a whole number from 1 to 5")
        return value

    @field_validator("comment")
    @classmethod
    def _comment(cls, value: str | None) -> str | None:
        return _optional_text(value, "comment")


class ReopenForm(BaseModel):
    """The text fields of `POST /api/v1/reports/{token}/reopen` (the optional photo is separate)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    reason: str = Field(default="", max_length=8000)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return _check_text(value, "reason")


# ---- duplicates (services/intake/duplicates.py) ----------------------------------------------------------------------


class SupportForm(BaseModel):
    """The optional body of `POST /api/v1/reports/public/{report_id}/supporters`: a contact for the report's
    notifications."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    contact: str | None = Field(default=None, max_length=CONTACT_MAX_CHARS)

    @field_validator("contact")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        return optional_contact(value)


class MergeForm(BaseModel):
    """The fields of `POST /api/v1/opd/reports/{report_id}/merge`."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    primary_id: str = Field(min_length=1, max_length=40)
    note: str = Field(default="", max_length=2000)

    @field_validator("note", "primary_id")
    @classmethod
    def _text(cls, value: str, info: Any) -> str:
        return _check_text(value, info.field_name)


class UnmergeForm(BaseModel):
    """The fields of `POST /api/v1/opd/reports/{report_id}/unmerge`."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    note: str = Field(default="", max_length=2000)

    @field_validator("note")
    @classmethod
    def _text(cls, value: str, info: Any) -> str:
        return _check_text(value, info.field_name)
