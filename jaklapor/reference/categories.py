"""Report categories (`categories.yaml`): validated once per process, looked up by code, name or alias."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

from jaklapor.reference.parsing import CODE_RE, REFERENCE_DIR, ReferenceDataError, read_yaml, slugify
from jaklapor.vocabulary import DEFAULT_RESPONSE_DAYS

CATEGORIES_PATH: Final = REFERENCE_DIR / "categories.yaml"

Evidence = Literal["official", "data", "guess"]
EVIDENCE: Final[tuple[str, ...]] = get_args(Evidence)
#: who may read a category's reports: anyone (public views, open data, Open311), or only their citizen (the tracking
#: token's holder) and the OPDs handling them; a private category's reports count in statistics and nowhere else
Visibility = Literal["public", "private"]
VISIBILITIES: Final[tuple[str, ...]] = get_args(Visibility)
#: the decimal places of the coordinates a public output shows: "exact" (as stored) or 3 (about 110 m)
LOCATION_PRECISIONS: Final[tuple[str | int, ...]] = ("exact", 3)


class CategoryError(ReferenceDataError):
    pass


@dataclass(frozen=True, slots=True)
class CategoryGroup:
    """A group of categories a citizen picks from, e.g. "Jalan & Transportasi"; `rank` is its place in the file."""

    name: str
    name_en: str
    rank: int


@dataclass(frozen=True, slots=True)
class Category:
    code: str
    name: str
    name_en: str
    description: str
    evidence: Evidence
    group: CategoryGroup
    response_days: int = DEFAULT_RESPONSE_DAYS
    aliases: tuple[str, ...] = ()
    visibility: Visibility = "public"
    #: decimal places of the coordinates published of its reports; None: exact (as stored)
    public_decimals: int | None = None

    @property
    def is_public(self) -> bool:
        return self.visibility == "public"

    def public_fields(self) -> dict[str, Any]:
        """What the APIs tell anyone about the category (intake's and stats' category lists)."""
        return {
            "code": self.code,
            "name": self.name,
            "name_en": self.name_en,
            "description": self.description,
            "group": self.group.name,
            "response_days": self.response_days,
            # a client can tell its citizen that reports of this category are not published, or only roughly placed
            "visibility": self.visibility,
            "location_precision": "exact" if self.public_decimals is None else self.public_decimals,
        }


def parse_categories(data: Mapping[str, Any] | str | Path, source: str = "categories") -> dict[str, Category]:
    """Validate category data (mapping, YAML text or path): the categories by code, file order."""
    doc = read_yaml(data, source, CategoryError)
    problems: list[str] = []
    default_days = doc.get("default_response_days", DEFAULT_RESPONSE_DAYS)
    if not _is_positive_int(default_days):
        problems.append(f"default_response_days must be a positive integer, got {default_days!r}")
        default_days = DEFAULT_RESPONSE_DAYS
    groups = _parse_groups(doc.get("groups"), problems)
    entries = doc.get("categories")
    if not isinstance(entries, list) or not entries:
        raise CategoryError(source, [*problems, "`categories` must be a non-empty list"])

    categories: dict[str, Category] = {}
    lookup: dict[str, str] = {}  # slug of code / name / alias -> code
    for i, entry in enumerate(entries):
        where = f"categories[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: must be a mapping")
            continue
        code = entry.get("code")
        where = f"category {code!r}" if isinstance(code, str) else where
        missing = [
            k
            for k in ("code", "name", "name_en", "description", "evidence", "group")
            if not isinstance(entry.get(k), str) or not entry[k].strip()
        ]
        if missing:
            problems.append(f"{where}: missing or empty {', '.join(missing)}")
            continue
        code = entry["code"]  # a non-empty string, checked just above
        unknown = set(entry) - {
            "code",
            "name",
            "name_en",
            "description",
            "evidence",
            "group",
            "response_days",
            "aliases",
            "visibility",
            "location_precision",
        }
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if not CODE_RE.fullmatch(code):
            problems.append(f"{where}: code must be a lowercase ASCII slug like 'parkir-liar'")
        if code in categories:
            problems.append(f"{where}: duplicate code")
            continue
        group = groups.get(entry["group"].strip())
        if group is None:
            problems.append(f"{where}: group {entry['group']!r} is not one of `groups`: {', '.join(groups)}")
            # kept under a stand-in group, so its other problems are reported too
        if entry["evidence"] not in EVIDENCE:
            problems.append(f"{where}: evidence must be one of {', '.join(EVIDENCE)}, got {entry['evidence']!r}")
        days = entry.get("response_days", default_days)
        if not _is_positive_int(days):
            problems.append(f"{where}: response_days must be a positive integer, got {days!r}")
            days = default_days
        aliases = entry.get("aliases") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) and slugify(a) for a in aliases):
            problems.append(f"{where}: aliases must be a list of names")
            aliases = []
        visibility = entry.get("visibility", "public")
        if visibility not in VISIBILITIES:
            problems.append(f"{where}: visibility must be one of {', '.join(VISIBILITIES)}, got {visibility!r}")
            visibility = "private"  # kept out of public views while the file is wrong
        precision = entry.get("location_precision", "exact")
        if precision not in LOCATION_PRECISIONS or isinstance(precision, bool):
            problems.append(f"{where}: location_precision must be 'exact' or 3, got {precision!r}")
            precision = 3
        for text in (code, entry["name"], *aliases):
            key = slugify(text)
            other = lookup.setdefault(key, code)
            if other != code:
                problems.append(f"{where}: name or alias {text!r} already means category {other!r}")
        categories[code] = Category(
            code=code,
            name=entry["name"].strip(),
            name_en=entry["name_en"].strip(),
            description=entry["description"].strip(),
            evidence=entry["evidence"],
            group=group or CategoryGroup(entry["group"].strip(), "", len(groups)),
            response_days=days,
            aliases=tuple(a.strip() for a in aliases),
            visibility=visibility,
            public_decimals=None if precision == "exact" else int(precision),
        )
    used = {category.group.name for category in categories.values()}
    problems.extend(f"group {name!r} has no category" for name in groups if name not in used)
    if problems:
        raise CategoryError(source, problems)
    return categories


def _parse_groups(entries: Any, problems: list[str]) -> dict[str, CategoryGroup]:
    """The `groups` list: each a distinct name (Indonesian) and its English name, in the order shown."""
    if not isinstance(entries, list) or not entries:
        problems.append("`groups` must be a non-empty list of {name, name_en}")
        return {}
    groups: dict[str, CategoryGroup] = {}
    for rank, entry in enumerate(entries):
        entry = entry if isinstance(entry, Mapping) else {}
        name, name_en = entry.get("name"), entry.get("name_en")
        if not (isinstance(name, str) and name.strip() and isinstance(name_en, str) and name_en.strip()):
            problems.append(f"groups[{rank}]: name and name_en are required")
            continue
        unknown = set(entry) - {"name", "name_en"}
        if unknown:
            problems.append(f"groups[{rank}]: unknown field(s) {', '.join(sorted(unknown))}")
        if name.strip() in groups:
            problems.append(f"groups[{rank}]: duplicate group {name.strip()!r}")
            continue
        groups[name.strip()] = CategoryGroup(name=name.strip(), name_en=name_en.strip(), rank=rank)
    return groups


def category_groups(categories: Mapping[str, Category]) -> list[CategoryGroup]:
    """The groups of these categories, in the order the file lists them."""
    return sorted({category.group for category in categories.values()}, key=lambda group: group.rank)


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@functools.cache
def _categories() -> dict[str, Category]:
    return parse_categories(CATEGORIES_PATH, source=str(CATEGORIES_PATH))


@functools.cache
def _category_lookup() -> dict[str, Category]:
    return category_lookup_table(_categories())


def category_lookup_table(categories: Mapping[str, Category]) -> dict[str, Category]:
    """The slug of each category's code, name and aliases -> the category (what `resolve_category` searches)."""
    table: dict[str, Category] = {}
    for cat in categories.values():
        for text in (cat.code, cat.name, *cat.aliases):
            table[slugify(text)] = cat
    return table


def load_categories() -> dict[str, Category]:
    """All categories by code, in file order (a fresh dict over the cached, immutable entries)."""
    return dict(_categories())


def resolve_category(text: str) -> Category | None:
    """The category for a code, a name or an alias; insensitive to case, spaces and punctuation."""
    if not isinstance(text, str):
        return None
    cat = _categories().get(text)
    return cat if cat is not None else _category_lookup().get(slugify(text))
