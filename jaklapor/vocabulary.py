"""The words every service shares, each defined once: the official statuses and which may follow which, the Jakarta
time zone, how moments are written, the response-deadline rule, and the notes a citizen reads.

Adding a status means editing this file (and the message contract's `Status` literal, which is built from it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Literal, get_args

# ---- statuses (JAKI's own words) -------------------------------------------------------------------------------------

MENUNGGU, KOORDINASI, DISPOSISI, DIKERJAKAN, SELESAI, DITOLAK = (
    "menunggu",
    "koordinasi",
    "disposisi",
    "dikerjakan",
    "selesai",
    "ditolak",
)
#: the statuses in their order along a report's life; message contracts validate against this literal
Status = Literal["menunggu", "koordinasi", "disposisi", "dikerjakan", "selesai", "ditolak"]
STATUSES: tuple[str, ...] = get_args(Status)

# which status may follow which; an OPD that finds mid-work the report is not its own may still hand it over
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    MENUNGGU: frozenset({KOORDINASI, DISPOSISI, DIKERJAKAN, DITOLAK}),
    KOORDINASI: frozenset({KOORDINASI, DISPOSISI, DIKERJAKAN, DITOLAK}),
    DISPOSISI: frozenset({KOORDINASI, DIKERJAKAN, DITOLAK}),
    DIKERJAKAN: frozenset({KOORDINASI, SELESAI}),
    SELESAI: frozenset(),
    DITOLAK: frozenset(),
}
#: the statuses an OPD may set (a report starts in menunggu; nobody sets it)
TARGET_STATUSES = frozenset(ALLOWED_TRANSITIONS) - {MENUNGGU}
#: the assigned OPD has not answered yet: these reports escalate when their response deadline passes
WAITING_STATUSES = frozenset({MENUNGGU, KOORDINASI, DISPOSISI})
#: a report in one of these is closed: nothing follows
FINAL_STATUSES = frozenset(status for status, following in ALLOWED_TRANSITIONS.items() if not following)
#: the statuses that hand a report to another OPD
FORWARDING_STATUSES = frozenset({KOORDINASI, DISPOSISI})

# how the citizen, the agencies and the public read them: JAKI's words, and an English gloss for English readers
STATUS_LABELS: dict[str, str] = {status: status.capitalize() for status in STATUSES}
STATUS_LABELS_EN: dict[str, str] = {
    MENUNGGU: "Waiting",
    KOORDINASI: "Coordination (handed to another agency)",
    DISPOSISI: "Disposition (assigned to the agency's city office)",
    DIKERJAKAN: "In progress",
    SELESAI: "Done",
    DITOLAK: "Rejected",
}

# ---- time -----------------------------------------------------------------------------------------------------------

#: Jakarta's time zone (WIB, UTC+7, no daylight saving): calendar days, report numbers and citizen messages use it
JAKARTA_TZ = timezone(timedelta(hours=7), "WIB")


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc(moment: datetime) -> datetime:
    """Aware UTC; MongoDB clients without tz_aware (and mongomock) hand back naive UTC datetimes."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    """A moment as every API and message writes it: ISO 8601 in UTC with `Z` (`2026-11-28T01:02:03Z`)."""
    if moment is None:
        return None
    return utc(moment).isoformat().replace("+00:00", "Z")


def jakarta_day(moment: datetime) -> str:
    """The calendar day in Jakarta of a moment, `YYYY-MM-DD`."""
    return utc(moment).astimezone(JAKARTA_TZ).strftime("%Y-%m-%d")


def jakarta_time(moment: datetime) -> str:
    """A moment as a Jakarta reader writes it: `28-11-2026 08:02 WIB`."""
    return utc(moment).astimezone(JAKARTA_TZ).strftime("%d-%m-%Y %H:%M WIB")


# ---- deadlines ------------------------------------------------------------------------------------------------------

#: the city's response target when a category names none: an OPD answers within 3 days
DEFAULT_RESPONSE_DAYS = 3


def response_deadline(
    assigned_at: datetime, response_days: int | None, override_seconds: float | None = None
) -> datetime:
    """When the assigned OPD must have answered: the category's target in days (DEFAULT_RESPONSE_DAYS without one),
    or a configured number of seconds for every category (operations may tighten it; tests shorten it)."""
    if override_seconds:
        return assigned_at + timedelta(seconds=override_seconds)
    return assigned_at + timedelta(days=response_days if response_days is not None else DEFAULT_RESPONSE_DAYS)


#: the days an OPD has to finish a report sent back to it (a verifier refused its evidence, or the citizen reopened
#: the report): the same 3-day target as a first response
DEFAULT_REWORK_DAYS = DEFAULT_RESPONSE_DAYS


def rework_deadline(sent_back_at: datetime, override_seconds: float | None = None) -> datetime:
    """When an OPD must have finished (again) a report sent back to it as dikerjakan, stored as the report's
    `work_deadline`: DEFAULT_REWORK_DAYS after it was sent back, or a configured number of seconds."""
    if override_seconds:
        return sent_back_at + timedelta(seconds=override_seconds)
    return sent_back_at + timedelta(days=DEFAULT_REWORK_DAYS)


# ---- what a citizen reads (Indonesian) ------------------------------------------------------------------------------

NOTE_SUBMITTED = "Laporan diterima"
#: the start of the note a citizen reads when their report waits at the triage desk
TRIAGE_NOTE = "Perlu diperiksa petugas"
#: the note of an escalation as the public timeline shows it (the OPDs' names are in the report's own history)
NOTE_ESCALATED_PUBLIC = "Batas waktu respons terlewati; laporan dinaikkan ke tingkat berikutnya"


def note_routed(opd_name: str) -> str:
    return f"Diteruskan ke {opd_name}"


def note_triage(detail: str) -> str:
    return f"{TRIAGE_NOTE}: {detail}"


def note_escalated(missed_opd_name: str, target_opd_name: str) -> str:
    return f"Batas waktu respons {missed_opd_name} terlewati; laporan dinaikkan ke {target_opd_name}"


def note_overdue_at_top(missed_opd_name: str) -> str:
    return f"Batas waktu respons {missed_opd_name} terlewati; tidak ada tingkat yang lebih tinggi"


# ---- the citizen's word on selesai (services/intake/citizen_feedback.py) ---------------------------------------------

#: who acts when the holder of the tracking token confirms or reopens a report (an `actor_opd` that is no OPD's code)
CITIZEN_ACTOR = "warga"
#: the days after a report became selesai during which its citizen may confirm the fix or reopen the report
DEFAULT_FEEDBACK_WINDOW_DAYS = 14


def note_reopened(reason: str) -> str:
    return f"Dibuka kembali oleh pelapor: {reason}"


def note_confirmed(rating: int | None, comment: str | None) -> str:
    note = "Pelapor mengonfirmasi: sudah beres"
    if rating is not None:
        note += f" (nilai {rating}/5)"
    return f"{note}: {comment}" if comment else note


# a duplicate merged into another report (services/intake/duplicates.py), and the merge undone
def note_merged(primary_id: str) -> str:
    return f"Laporan ini digabung ke {primary_id} karena melaporkan masalah yang sama; statusnya mengikuti laporan itu"


def note_unmerged(primary_id: str) -> str:
    return f"Penggabungan dengan {primary_id} dibatalkan; laporan ini ditangani sendiri lagi"


# ---- verified completion (the city's verifier checks an OPD's follow-up before a report closes) ---------------------

#: the states of a report's `verification` record: a sub-state of dikerjakan, the six statuses stay six
VERIFICATION_PENDING, VERIFICATION_APPROVED, VERIFICATION_REFUSED = "pending", "approved", "refused"
#: what the citizen and the public read for a dikerjakan report whose OPD reported it done, until the verifier decides
PENDING_VERIFICATION_LABEL = "Menunggu verifikasi"
PENDING_VERIFICATION_LABEL_EN = "Awaiting verification"
#: the label of the history step of a refusal (the report stays dikerjakan with its OPD)
VERIFICATION_REFUSED_LABEL = "Verifikasi ditolak"
NOTE_VERIFICATION_APPROVED = "Penyelesaian diverifikasi oleh Biro Pemerintahan"


def note_completion_submitted(opd_name: str | None = None) -> str:
    return f"{opd_name or 'Petugas'} melaporkan pekerjaan selesai; menunggu verifikasi"


def note_verification_refused(reason: str, opd_name: str | None = None) -> str:
    return f"Verifikasi ditolak: {reason} — laporan dikembalikan ke {opd_name or 'instansi yang mengerjakan'}"
