"""The OPD directory (`opd_directory.yaml`): the agencies, their generated kota units and area offices, and the rules
that say which of them handles a category where."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args

from jaklapor.reference.areas import Area, Areas, KecamatanInfo, KelurahanInfo, KotaInfo, load_areas
from jaklapor.reference.categories import Category, category_lookup_table, load_categories
from jaklapor.reference.parsing import CODE_RE, REFERENCE_DIR, ReferenceDataError, read_yaml, slugify

DIRECTORY_PATH: Final = REFERENCE_DIR / "opd_directory.yaml"

Level = Literal["dinas", "suku-dinas", "badan", "satpol-pp", "bumd", "kota", "kecamatan", "kelurahan", "triage"]
LEVELS: Final[tuple[str, ...]] = get_args(Level)

# handler names in rules that mean "that office of the report's area"
AREA_HANDLERS: Final = ("kelurahan", "kecamatan", "kota")
_RESERVED_AGENCY_CODES: Final = frozenset((*AREA_HANDLERS, "sudin"))


class DirectoryError(ReferenceDataError):
    pass


@dataclass(frozen=True, slots=True)
class Opd:
    """An agency (organisasi perangkat daerah) or one of its units: anything that owns a queue."""

    code: str
    name: str
    level: Level
    # family code: "bina-marga" for Dinas Bina Marga and its Sudin; "kelurahan" for those offices
    agency: str
    kota: str | None = None  # kota slug; None for a city-wide agency
    kecamatan: str | None = None  # kecamatan slug (kecamatan and kelurahan offices)
    kelurahan: str | None = None  # kelurahan slug (kelurahan offices)
    parent: str | None = None  # Dinas of a Sudin; kecamatan office of a kelurahan office; kota of a kecamatan

    def as_ref(self) -> dict[str, str]:
        """The `OpdRef` shape of jaklapor.events."""
        return {"code": self.code, "name": self.name, "level": self.level}


@dataclass(frozen=True, slots=True)
class Rule:
    category: str
    handler: str  # agency code or one of AREA_HANDLERS
    kota_overrides: Mapping[str, str | None] = field(default_factory=dict, hash=False)
    secondary: tuple[str, ...] = ()
    note: str = ""

    def handler_in(self, kota_slug: str | None) -> str | None:
        if kota_slug is not None and kota_slug in self.kota_overrides:
            return self.kota_overrides[kota_slug]
        return self.handler


class Directory:
    """Who handles what, where. Build it with `load_directory()` / `build_directory()`."""

    def __init__(
        self,
        opds: Iterable[Opd],
        rules: Mapping[str, Rule],
        categories: Mapping[str, Category],
        areas: Areas,
    ) -> None:
        self._opds: dict[str, Opd] = {}
        for opd in opds:
            if opd.code in self._opds:
                raise DirectoryError("directory", [f"duplicate OPD code {opd.code!r}"])
            self._opds[opd.code] = opd
        triage = [o for o in self._opds.values() if o.level == "triage"]
        if len(triage) != 1:
            raise DirectoryError("directory", [f"exactly one triage desk needed, found {len(triage)}"])
        self._triage = triage[0]
        self.rules: Mapping[str, Rule] = dict(rules)
        self.categories: Mapping[str, Category] = dict(categories)
        self.areas = areas
        self._category_lookup = category_lookup_table(self.categories)
        self._units: dict[tuple[str, str], Opd] = {
            (o.agency, o.kota): o for o in self._opds.values() if o.parent and o.kota and o.level not in AREA_HANDLERS
        }
        self._acts_through = {agency for agency, _ in self._units}
        # precomputed answers: (category, kota slug) -> Opd, None (nobody) or an area handler name
        self._resolved: dict[tuple[str, str | None], Opd | str | None] = {}
        for cat, rule in self.rules.items():
            for kota_slug in (None, *(k.slug for k in areas.kota.values())):
                self._resolved[(cat, kota_slug)] = self._resolve(rule.handler_in(kota_slug), kota_slug)

    def _resolve(self, handler: str | None, kota_slug: str | None) -> Opd | str | None:
        if handler is None or handler in AREA_HANDLERS:
            return handler
        if handler in self._acts_through:
            return self._units.get((handler, kota_slug)) if kota_slug else None
        return self._opds[handler]

    # -- look-ups --------------------------------------------------------------------------------

    def opd(self, code: str) -> Opd:
        try:
            return self._opds[code]
        except KeyError:
            raise KeyError(f"unknown OPD code {code!r}") from None

    def get(self, code: str) -> Opd | None:
        return self._opds.get(code)

    def all(self) -> list[Opd]:
        return list(self._opds.values())

    def __len__(self) -> int:
        return len(self._opds)

    def __contains__(self, code: object) -> bool:
        return code in self._opds

    @property
    def triage(self) -> Opd:
        return self._triage

    def category(self, text: str) -> Category | None:
        """A category of this directory by code, name or alias (see `resolve_category`)."""
        cat = self.categories.get(text)
        if cat is None and isinstance(text, str):
            cat = self._category_lookup.get(slugify(text))
        return cat

    def sudin_of(self, dinas_code: str, kota_slug: str) -> Opd | None:
        """The kota unit (Suku Dinas, Satpol PP kota) of an agency; None if it has none there."""
        return self._units.get((dinas_code, kota_slug))

    def units_of(self, agency_code: str) -> list[Opd]:
        return [o for o in self._opds.values() if o.agency == agency_code and o.code != agency_code]

    def area_office(self, area: Area, level: str = "kelurahan") -> Opd | None:
        """The kelurahan / kecamatan / kota office of an area (None if the area is coarser)."""
        if level == "kota":
            slug = area.slug if isinstance(area, KotaInfo) else area.kota_slug
        elif level == "kecamatan":
            if isinstance(area, KotaInfo):
                return None
            slug = area.slug if isinstance(area, KecamatanInfo) else area.kecamatan_slug
        elif level == "kelurahan":
            if not isinstance(area, KelurahanInfo):
                return None
            slug = area.slug
        else:
            raise ValueError(f"level must be one of {', '.join(AREA_HANDLERS)}, got {level!r}")
        return self._opds.get(f"{level}-{slug}")

    def responsible_for(self, category_code: str, area: Area | None) -> Opd | None:
        """The OPD that handles `category_code` in `area`.

        `area` is the kelurahan found (or a coarser area when that is all that is known).
        None for an unknown category, or when nobody handles it there."""
        kota_slug = None if area is None else (area.slug if isinstance(area, KotaInfo) else area.kota_slug)
        resolved = self._resolved.get((category_code, kota_slug))
        if resolved is None and (category_code, kota_slug) not in self._resolved:
            # an unknown category, or an area from another data set: resolve the slow way
            rule = self.rules.get(category_code)
            if rule is None:
                return None
            resolved = self._resolve(rule.handler_in(kota_slug), kota_slug)
        if isinstance(resolved, str):
            return None if area is None else self.area_office(area, resolved)
        return resolved

    def escalation_parent(self, opd_code: str) -> Opd | None:
        """The next OPD up: kelurahan -> kecamatan -> kota office; a kota unit -> its agency."""
        opd = self._opds.get(opd_code)
        return None if opd is None or opd.parent is None else self._opds.get(opd.parent)


def build_directory(
    data: Mapping[str, Any] | str | Path,
    *,
    categories: Mapping[str, Category] | None = None,
    areas: Areas | None = None,
    source: str = "opd directory",
) -> Directory:
    """Validate directory data (mapping, YAML text or path) and build the directory.

    Generates the kota units and the area offices. Raises `DirectoryError` listing every
    problem: unknown level, agency or category in a rule, a category without a rule, duplicate
    codes or names.
    """
    doc = read_yaml(data, source, DirectoryError)
    categories = load_categories() if categories is None else categories
    areas = load_areas() if areas is None else areas
    problems: list[str] = []
    opds: list[Opd] = []
    agency_codes: set[str] = set()

    agencies = doc.get("agencies")
    if not isinstance(agencies, list) or not agencies:
        raise DirectoryError(source, ["`agencies` must be a non-empty list"])
    for i, entry in enumerate(agencies):
        if not isinstance(entry, Mapping):
            problems.append(f"agencies[{i}]: must be a mapping")
            continue
        code, name, level = entry.get("code"), entry.get("name"), entry.get("level")
        where = f"agency {code!r}" if isinstance(code, str) else f"agencies[{i}]"
        if not isinstance(code, str) or not CODE_RE.fullmatch(code):
            problems.append(f"{where}: code must be a lowercase ASCII slug like 'bina-marga'")
            continue
        if code in _RESERVED_AGENCY_CODES or code.startswith(("kelurahan-", "kecamatan-", "kota-", "sudin-")):
            problems.append(f"{where}: code is reserved for generated offices and units")
            continue
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where}: name is required")
            continue
        unknown = set(entry) - {
            "code",
            "name",
            "level",
            "acts_through",
            "unit_code",
            "unit_name",
            "unit_level",
        }
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if level not in LEVELS or level in AREA_HANDLERS or level == "suku-dinas":
            allowed = [lv for lv in LEVELS if lv not in AREA_HANDLERS and lv != "suku-dinas"]
            problems.append(f"{where}: level must be one of {', '.join(allowed)}, got {level!r}")
            continue
        agency_codes.add(code)
        opds.append(Opd(code=code, name=name.strip(), level=level, agency=code))
        acts_through = entry.get("acts_through")
        if acts_through is None:
            if any(k in entry for k in ("unit_code", "unit_name", "unit_level")):
                problems.append(f"{where}: unit_* fields need acts_through: suku-dinas")
            continue
        if acts_through != "suku-dinas":
            problems.append(f"{where}: acts_through must be 'suku-dinas', got {acts_through!r}")
            continue
        unit_code = entry.get("unit_code", "sudin-{agency}-{kota}")
        unit_level = entry.get("unit_level", "suku-dinas")
        unit_name = entry.get("unit_name")
        if unit_name is None:
            if not name.startswith("Dinas "):
                problems.append(f"{where}: unit_name is required when the name does not start with 'Dinas '")
                continue
            unit_name = "Suku {name} {kota_official}"
        if unit_level not in LEVELS or unit_level in AREA_HANDLERS:
            problems.append(f"{where}: unit_level {unit_level!r} is not an agency level")
            continue
        for kota in areas.kota.values():
            fmt = {
                "agency": code,
                "kota": kota.slug,
                "kota_name": kota.name,
                "kota_official": kota.official_name,
                "name": name.strip(),
            }
            try:
                opds.append(
                    Opd(
                        code=unit_code.format(**fmt),
                        name=unit_name.format(**fmt),
                        level=unit_level,
                        agency=code,
                        kota=kota.slug,
                        parent=code,
                    )
                )
            except (KeyError, IndexError, ValueError, AttributeError) as exc:
                problems.append(f"{where}: bad unit_code / unit_name template ({exc!r})")
                break

    for kota in areas.kota.values():
        head = "Bupati" if kota.official_name.startswith("Kabupaten") else "Walikota"
        opds.append(
            Opd(
                code=f"kota-{kota.slug}",
                name=f"Kantor {head} {kota.name}",
                level="kota",
                agency="kota",
                kota=kota.slug,
            )
        )
    for kec in areas.kecamatan.values():
        opds.append(
            Opd(
                code=f"kecamatan-{kec.slug}",
                name=f"Kecamatan {kec.name}",
                level="kecamatan",
                agency="kecamatan",
                kota=kec.kota_slug,
                kecamatan=kec.slug,
                parent=f"kota-{kec.kota_slug}",
            )
        )
    for kel in areas.kelurahan.values():
        opds.append(
            Opd(
                code=f"kelurahan-{kel.slug}",
                name=f"Kelurahan {kel.name}",
                level="kelurahan",
                agency="kelurahan",
                kota=kel.kota_slug,
                kecamatan=kel.kecamatan_slug,
                kelurahan=kel.slug,
                parent=f"kecamatan-{kel.kecamatan_slug}",
            )
        )

    codes: dict[str, Opd] = {}
    names: dict[str, Opd] = {}
    for opd in opds:
        if not CODE_RE.fullmatch(opd.code):
            problems.append(f"generated code {opd.code!r} ({opd.name}) is not a lowercase ASCII slug")
        if opd.code in codes:
            problems.append(f"duplicate OPD code {opd.code!r} ({codes[opd.code].name} / {opd.name})")
        if opd.name in names:
            problems.append(f"duplicate OPD name {opd.name!r} ({names[opd.name].code} / {opd.code})")
        codes.setdefault(opd.code, opd)
        names.setdefault(opd.name, opd)
    triage = [o.code for o in opds if o.level == "triage"]
    if len(triage) != 1:
        problems.append(f"exactly one agency with level triage is needed, found {triage or 'none'}")

    # -- rules -----------------------------------------------------------------------------------
    kota_slugs = {k.slug for k in areas.kota.values()}
    handlers = (agency_codes - set(triage)) | set(AREA_HANDLERS)

    def check_handler(where: str, handler: Any, *, nullable: bool = False) -> None:
        if handler is None and nullable:
            return
        if not isinstance(handler, str) or handler not in handlers:
            problems.append(
                f"{where}: unknown agency {handler!r} (expected an agency code or {', '.join(AREA_HANDLERS)})"
            )

    rules: dict[str, Rule] = {}
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list):
        problems.append("`rules` must be a list")
        raw_rules = []
    for i, entry in enumerate(raw_rules):
        if not isinstance(entry, Mapping):
            problems.append(f"rules[{i}]: must be a mapping")
            continue
        cat = entry.get("category")
        where = f"rule for {cat!r}" if isinstance(cat, str) else f"rules[{i}]"
        unknown = set(entry) - {"category", "handler", "kota_overrides", "secondary", "note"}
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if not isinstance(cat, str) or cat not in categories:
            problems.append(f"{where}: unknown category {cat!r}")
            continue
        if cat in rules:
            problems.append(f"{where}: duplicate rule")
            continue
        handler = entry.get("handler")
        check_handler(where, handler)
        overrides = entry.get("kota_overrides") or {}
        if not isinstance(overrides, Mapping):
            problems.append(f"{where}: kota_overrides must be a mapping of kota slug to handler")
            overrides = {}
        for kota_slug, other in overrides.items():
            if kota_slug not in kota_slugs:
                problems.append(f"{where}: kota_overrides names unknown kota {kota_slug!r}")
            check_handler(f"{where}, kota {kota_slug}", other, nullable=True)
        secondary = entry.get("secondary") or []
        if not isinstance(secondary, list):
            problems.append(f"{where}: secondary must be a list")
            secondary = []
        for other in secondary:
            check_handler(f"{where}, secondary", other)
        note = entry.get("note") or ""
        rules[cat] = Rule(
            category=cat,
            handler=handler if isinstance(handler, str) else "",  # a bad handler is reported by check_handler
            kota_overrides=dict(overrides),
            secondary=tuple(secondary),
            note=str(note),
        )
    missing = [c for c in categories if c not in rules]
    if missing:
        problems.append(f"no rule for categor{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}")

    if problems:
        raise DirectoryError(source, problems)
    return Directory(opds, rules, categories, areas)


@functools.cache
def load_directory() -> Directory:
    """The project's OPD directory (opd_directory.yaml, categories.yaml, kelurahan boundaries)."""
    return build_directory(DIRECTORY_PATH, source=str(DIRECTORY_PATH))
