"""An OPD's work list and what its live stream tells, with no I/O: the order of the reports it holds, the filters,
the page cursor, the changes between two readings of the list, which OPDs an event concerns, and the search of the
OPD directory for a hand-over.

The list holds the reports assigned to the OPD now and not final (selesai, ditolak), unless asked for statuses:
overdue first (nobody higher to take them), then by response deadline (soonest first; a dikerjakan report sent back
to its OPD sorts by its `work_deadline`, so a missed one comes before every running deadline; reports without one,
i.e. already answered, last), then the oldest first.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jaklapor.events import (
    Event,
    ReportEscalated,
    ReportForwarded,
    ReportRouted,
    ReportStatusChanged,
    ReportUnroutable,
)
from jaklapor.reference import slugify
from jaklapor.vocabulary import DIKERJAKAN, FINAL_STATUSES, STATUS_LABELS, WAITING_STATUSES
from services.intake.domain import is_report_number

#: statuses of a report an OPD still has to work on: the default of the list and what its stream follows
HELD_STATUSES: tuple[str, ...] = tuple(status for status in STATUS_LABELS if status not in FINAL_STATUSES)
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: reports of one OPD the list orders at most per request (their sort fields only); more is a filter's job
MAX_HELD = 20_000
#: the stored fields the order reads
SORT_FIELDS = ("_id", "status", "response_deadline", "escalation_exhausted", "submitted_at", "work_deadline")
DIRECTORY_DEFAULT_LIMIT = 20
DIRECTORY_MAX_LIMIT = 100


class WorkListError(ValueError):
    """A query of the work list or the directory that cannot be answered: the parameter at fault and the problem."""

    code = "invalid_query"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# ---- the order and the pages -------------------------------------------------------------------------------------

SortKey = tuple[int, str, str, str]
_NO_DEADLINE = "~"  # sorts after every ISO time


def sort_key(report: Mapping[str, Any]) -> SortKey:
    """Overdue first, then the soonest response deadline (none last), then the oldest, then the number."""
    waiting = report["status"] in WAITING_STATUSES
    overdue = bool(report.get("escalation_exhausted")) and waiting
    deadline = report.get("response_deadline") if waiting else None
    if report["status"] == DIKERJAKAN and report.get("work_deadline") is not None:
        # a report sent back to its OPD (verifier refused, citizen reopened) has a deadline to finish it again
        deadline = report["work_deadline"]
    return (
        0 if overdue else 1,
        _moment(deadline) if deadline is not None else _NO_DEADLINE,
        _moment(report["submitted_at"]),
        str(report["_id"]),
    )


def _moment(value: datetime) -> str:
    # fixed width and UTC, so the text's order is the time's
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def encode_cursor(key: SortKey) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> SortKey:
    """The position a cursor stands for; WorkListError for anything this list did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != 4
        or values[0] not in (0, 1)
        or not all(isinstance(value, str) and len(value) <= 40 for value in values[1:])
        or not is_report_number(values[3])
    ):
        raise WorkListError("cursor", "cursor is not one this list handed out; start again without it")
    return (values[0], values[1], values[2], values[3])


@dataclass(frozen=True)
class Page:
    report_ids: list[str]
    next_cursor: str | None


def page_of(rows: Iterable[Mapping[str, Any]], after: SortKey | None, limit: int) -> Page:
    """The ids of the next `limit` reports in work order after the position `after` (from the start when None)."""
    ordered = sorted((sort_key(row), str(row["_id"])) for row in rows)
    if after is not None:
        ordered = [item for item in ordered if item[0] > after]
    chosen = ordered[:limit]
    more = len(ordered) > limit
    return Page([report_id for _key, report_id in chosen], encode_cursor(chosen[-1][0]) if more else None)


# ---- the filters -------------------------------------------------------------------------------------------------


def parse_statuses(text: str | None) -> tuple[str, ...]:
    """`status=menunggu,dikerjakan` (final ones allowed); none given: the statuses an OPD still works on."""
    if text is None or not text.strip():
        return HELD_STATUSES
    wanted = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [status for status in wanted if status not in STATUS_LABELS]
    if unknown:
        raise WorkListError(
            "status", f"unknown status {unknown[0][:40]!r}; one or more of {', '.join(STATUS_LABELS)}, comma-separated"
        )
    return tuple(dict.fromkeys(wanted))


def kelurahan_codes(areas: Any, kecamatan: str | None, kelurahan: str | None) -> list[str] | None:
    """The kelurahan codes a `kecamatan` and / or `kelurahan` filter means (a name in any case and accents, a slug, or
    a Kemendagri code); None without either filter."""
    if kecamatan is None and kelurahan is None:
        return None
    chosen = set(areas.kelurahan)
    for param, text, code_of, slug_of in (
        ("kecamatan", kecamatan, lambda k: k.kecamatan_code, lambda k: k.kecamatan_slug),
        ("kelurahan", kelurahan, lambda k: k.code, lambda k: k.slug),
    ):
        if text is None:
            continue
        wanted, slug = text.strip(), slugify(text)
        matching = {k.code for k in areas.kelurahan.values() if code_of(k) == wanted or slug_of(k) == slug}
        if not matching:
            raise WorkListError(
                param, f"no {param} is called {wanted[:60]!r} in Jakarta (GET /api/v1/areas lists them)"
            )
        chosen &= matching
    return sorted(chosen)


# ---- the live stream ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListChange:
    report_id: str
    change: str  # added, updated, removed


def list_changes(before: Mapping[str, int], after: Mapping[str, int]) -> list[ListChange]:
    """What changed between two readings of an OPD's list ({report id: version}): reports that arrived, changed or
    left (handed over, escalated away, final)."""
    changes = [ListChange(report_id, "removed") for report_id in before if report_id not in after]
    for report_id, version in after.items():
        if report_id not in before:
            changes.append(ListChange(report_id, "added"))
        elif before[report_id] != version:
            changes.append(ListChange(report_id, "updated"))
    return changes


#: what each event that changes work lists says about whose: the one that acted, the one holding the report, the one
#: it left. Any other event (a submission belongs to nobody until routed) changes no list by itself.
_CONCERNED: dict[type[Event], Callable[[Any, str], set[str]]] = {
    ReportRouted: lambda event, triage: {event.opd.code},
    ReportUnroutable: lambda event, triage: {triage},
    ReportStatusChanged: lambda event, triage: {
        code for code in (event.actor_opd, event.assigned_opd, event.target_opd) if code
    },
    ReportEscalated: lambda event, triage: {event.from_opd, event.to_opd},
    ReportForwarded: lambda event, triage: {event.from_opd, event.target_opd},
}

#: (source, event type) of the events that change work lists: the broadcast queue that wakes the OPDs' live lists
#: binds to these alone, so the events that change none (a submission, above all) cost it no delivery
LIST_CHANGING_EVENTS: tuple[tuple[str, str], ...] = tuple((kind.source, kind.type_name) for kind in _CONCERNED)


def opds_concerned(event: Event, triage_code: str) -> set[str]:
    """The OPDs whose lists an event may change."""
    concerned = _CONCERNED.get(type(event))
    return concerned(event, triage_code) if concerned is not None else set()


def status_counts(grouped: Mapping[str, int]) -> dict[str, int]:
    """Reports per status (every status, zeros included) from the store's counts per status."""
    return {status: int(grouped.get(status, 0)) for status in STATUS_LABELS}


# ---- the directory, for a hand-over ------------------------------------------------------------------------------


def search_directory(opds: Sequence[Any], query: str, level: str | None, limit: int) -> list[Any]:
    """OPDs whose name or code holds every word of `query` (in any case, with or without accents) and of `level` if
    given: an exact code first, then names starting with the query, then the others, each by name."""
    words = slugify(query).split("-") if query.strip() else []
    whole = slugify(query)
    found = []
    for opd in opds:
        if level is not None and opd.level != level:
            continue
        name = slugify(opd.name)
        haystack = f"{name} {opd.code}"
        if all(word in haystack for word in words):
            rank = 0 if opd.code == query.strip() else 1 if whole and name.startswith(whole) else 2
            found.append((rank, opd.name, opd.code, opd))
    found.sort(key=lambda item: item[:3])
    return [item[3] for item in found[:limit]]


def parse_level(text: str | None, levels: Sequence[str]) -> str | None:
    if text is None:
        return None
    level = text.lower()
    if level not in levels:
        raise WorkListError("level", f"unknown level {text[:40]!r}; one of {', '.join(levels)}")
    return level


def directory_entry(opd: Any) -> dict[str, Any]:
    return {"code": opd.code, "name": opd.name, "level": opd.level, "kota": opd.kota}
