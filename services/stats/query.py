"""Query parameters of the statistics API (no I/O): parsed and checked, or a QueryError naming the parameter.

- `from`, `to`: a Jakarta calendar day `YYYY-MM-DD` (both inclusive) or an ISO 8601 instant
  (`2026-11-28T08:00:00+07:00`; without an offset it is Jakarta time); reports are selected by submission time.
- `kota`: a kota name or slug (`Jakarta Selatan`, `jakarta-selatan`), case-insensitive.
- `category`: a category code (`GET /api/v1/stats/categories` lists them, as does `GET /api/v1/categories` on intake).
- endpoint-specific: `min_reports` and `opd` (agencies: one OPD's row of the table), `level` (areas).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from jaklapor.vocabulary import JAKARTA_TZ, utc

FILTER_PARAMS = ("from", "to", "kota", "category")


class QueryError(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = f"{param}: {message}"


@dataclass(frozen=True)
class Filters:
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    kota: str | None = None
    category: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def mongo(self) -> dict[str, Any]:
        """The MongoDB filter on projections."""
        query: dict[str, Any] = {}
        if self.start is not None or self.end is not None:
            window: dict[str, Any] = {}
            if self.start is not None:
                window["$gte"] = self.start
            if self.end is not None:
                window["$lt"] = self.end
            query["submitted_at"] = window
        if self.kota is not None:
            query["kota"] = self.kota
        if self.category is not None:
            query["category"] = self.category
        return query

    def echo(self) -> dict[str, Any]:
        """The filters as applied, for the response."""
        return {
            "from": _iso(self.start),
            "to": _iso(self.end),
            "to_exclusive": True,
            "kota": self.kota,
            "category": self.category,
            **self.extra,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else utc(moment).isoformat().replace("+00:00", "Z")


def parse_moment(param: str, text: str, *, end: bool) -> datetime:
    """A day (start of it; with `end`, start of the next day) or an instant (with `end`, one millisecond later)."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time(0), JAKARTA_TZ)
            return utc(moment + timedelta(days=1) if end else moment)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(param, f"{text!r} is not a day (YYYY-MM-DD) or an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=JAKARTA_TZ)
    return utc(moment) + (timedelta(milliseconds=1) if end else timedelta(0))


def positive_int(maximum: int) -> Callable[[str, str], int]:
    def parse(param: str, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise QueryError(param, f"{text!r} is not a whole number") from None
        if not 1 <= value <= maximum:
            raise QueryError(param, f"must be between 1 and {maximum}")
        return value

    return parse


def known_code(codes: Iterable[str], what: str, listed_at: str) -> Callable[[str, str], str]:
    """A parameter that must be one of `codes` (e.g. an OPD code)."""
    known = frozenset(codes)

    def parse(param: str, text: str) -> str:
        code = text.strip()
        if code not in known:
            raise QueryError(param, f"unknown {what} {code[:100]!r}; {listed_at} lists them")
        return code

    return parse


def parse_filters(
    args: Iterable[tuple[str, list[str]]],
    *,
    kotas: Mapping[str, str],
    categories: Iterable[str],
    extra: Mapping[str, Callable[[str, str], Any]] | None = None,
    filters: Iterable[str] = FILTER_PARAMS,
) -> Filters:
    """Filters from query arguments (`MultiDict.lists()`); `kotas` maps lowercase names and slugs to the kota name."""
    extra = dict(extra or {})
    allowed = [*filters, *extra]
    values: dict[str, str] = {}
    for name, given in args:
        if name not in allowed:
            raise QueryError(name, f"unknown query parameter; allowed: {', '.join(allowed) or 'none'}")
        if len(given) != 1:
            raise QueryError(name, "given more than once")
        if not given[0].strip():
            raise QueryError(name, "is empty")
        values[name] = given[0]
    start = parse_moment("from", values["from"], end=False) if "from" in values else None
    end = parse_moment("to", values["to"], end=True) if "to" in values else None
    if start is not None and end is not None and end <= start:
        raise QueryError("to", "must not be before from")
    kota = None
    if "kota" in values:
        kota = kotas.get(values["kota"].strip().lower())
        if kota is None:
            raise QueryError(
                "kota", f"unknown kota {values['kota']!r}; one of {', '.join(sorted(set(kotas.values())))}"
            )
    category = values.get("category")
    if category is not None and category not in set(categories):
        raise QueryError("category", f"unknown category {category!r}; GET /api/v1/stats/categories lists the codes")
    parsed = {name: parse(name, values[name]) for name, parse in extra.items() if name in values}
    return Filters(start=start, end=end, kota=kota, category=category, extra=parsed)
