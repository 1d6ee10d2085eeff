"""Jakarta's administrative areas from the kelurahan boundary file (`jakarta_kelurahan.geojson`): kelurahan,
kecamatan and kota, with their Kemendagri codes, names and slugs."""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from jaklapor.reference.parsing import REFERENCE_DIR, ReferenceDataError, slugify

KELURAHAN_GEOJSON_PATH: Final = REFERENCE_DIR / "jakarta_kelurahan.geojson"

_AREA_CODE_RE: Final = re.compile(r"\d{2}\.\d{2}\.\d{2}\.\d{4}")


class AreaDataError(ReferenceDataError):
    pass


@dataclass(frozen=True, slots=True)
class KotaInfo:
    code: str  # "31.74"
    name: str  # "Jakarta Selatan"
    slug: str  # "jakarta-selatan"

    @property
    def official_name(self) -> str:
        """E.g. "Kota Administrasi Jakarta Selatan"; Kemendagri codes below 70 are kabupaten."""
        kind = "Kabupaten" if int(self.code.split(".")[1]) < 70 else "Kota"
        return f"{kind} Administrasi {self.name}"


@dataclass(frozen=True, slots=True)
class KecamatanInfo:
    code: str  # "31.74.07"
    name: str
    slug: str
    kota: str
    kota_slug: str
    kota_code: str


@dataclass(frozen=True, slots=True)
class KelurahanInfo:
    code: str  # "31.74.07.1001"
    name: str  # "Melawai"
    slug: str  # "melawai"
    kecamatan: str
    kecamatan_slug: str
    kecamatan_code: str
    kota: str
    kota_slug: str
    kota_code: str

    def as_area_ref(self) -> dict[str, str]:
        """The `AreaRef` shape of jaklapor.events: code and the three names."""
        return {
            "code": self.code,
            "kelurahan": self.name,
            "kecamatan": self.kecamatan,
            "kota": self.kota,
        }


Area = KelurahanInfo | KecamatanInfo | KotaInfo


@dataclass(frozen=True, eq=False)
class Areas:
    """Kelurahan, kecamatan and kota, each keyed by Kemendagri code, in file order."""

    kelurahan: Mapping[str, KelurahanInfo]
    kecamatan: Mapping[str, KecamatanInfo]
    kota: Mapping[str, KotaInfo]
    _by_slug: Mapping[str, KelurahanInfo] = field(default_factory=dict, repr=False)

    def kelurahan_by_slug(self, slug: str) -> KelurahanInfo | None:
        return self._by_slug.get(slug)


def parse_areas(geojson: Mapping[str, Any], source: str = "kelurahan geojson") -> Areas:
    """Areas from the properties of the kelurahan FeatureCollection.

    Kecamatan and kota come from the code prefix (`31.74.07` = kecamatan, `31.74` = kota); a prefix
    with two different names, or two areas of one level with the same slug, is an error."""
    features = geojson.get("features") if isinstance(geojson, Mapping) else None
    if not isinstance(features, list) or not features:
        raise AreaDataError(source, ["not a FeatureCollection with features"])
    problems: list[str] = []
    rows: dict[str, tuple[str, str, str]] = {}  # code -> (kelurahan, kecamatan, kota) names
    for i, feature in enumerate(features):
        props = feature.get("properties") if isinstance(feature, Mapping) else None
        if not isinstance(props, Mapping):
            problems.append(f"feature {i}: no properties")
            continue
        code = props.get("code")
        names = (props.get("kelurahan"), props.get("kecamatan"), props.get("kota"))
        if not isinstance(code, str) or not _AREA_CODE_RE.fullmatch(code):
            problems.append(f"feature {i}: code {code!r} is not like 31.74.07.1001")
        elif not all(isinstance(n, str) and slugify(n) for n in names):
            problems.append(f"feature {code}: kelurahan, kecamatan and kota names are required")
        elif code in rows:
            problems.append(f"feature {code}: duplicate code")
        else:
            rows[code] = tuple(n.strip() for n in names)  # type: ignore[union-attr]

    def name_of(level: str, prefix_len: int, pos: int) -> dict[str, str]:
        """prefix -> its name; a prefix whose kelurahan disagree on the name is a problem."""
        seen: dict[str, Counter[str]] = {}
        for code, row in rows.items():
            seen.setdefault(code[:prefix_len], Counter())[row[pos]] += 1
        for prefix, counts in seen.items():
            if len(counts) > 1:
                listing = ", ".join(f"{n!r} ({c} kelurahan)" for n, c in counts.most_common())
                problems.append(f"{level} {prefix} has several names: {listing}")
        return {prefix: counts.most_common(1)[0][0] for prefix, counts in seen.items()}

    kota_names, kec_names = name_of("kota", 5, 2), name_of("kecamatan", 8, 1)
    kota = {c: KotaInfo(c, n, slugify(n)) for c, n in kota_names.items()}
    kecamatan = {
        c: KecamatanInfo(c, n, slugify(n), kota[c[:5]].name, kota[c[:5]].slug, c[:5]) for c, n in kec_names.items()
    }
    kelurahan: dict[str, KelurahanInfo] = {}
    for code, (kel_name, _, _) in rows.items():
        kc, kt = kecamatan[code[:8]], kota[code[:5]]
        kelurahan[code] = KelurahanInfo(
            code=code,
            name=kel_name,
            slug=slugify(kel_name),
            kecamatan=kc.name,
            kecamatan_slug=kc.slug,
            kecamatan_code=kc.code,
            kota=kt.name,
            kota_slug=kt.slug,
            kota_code=kt.code,
        )
    for level, items in (("kelurahan", kelurahan), ("kecamatan", kecamatan), ("kota", kota)):
        seen: dict[str, str] = {}
        for item in items.values():
            other = seen.setdefault(item.slug, item.code)
            if other != item.code:
                problems.append(f"{level} {item.code} and {other} have the same slug {item.slug!r}")
    if problems:
        raise AreaDataError(source, problems)
    by_slug = {k.slug: k for k in kelurahan.values()}
    return Areas(kelurahan=kelurahan, kecamatan=kecamatan, kota=kota, _by_slug=by_slug)


@functools.cache
def load_kelurahan_geojson() -> dict[str, Any]:
    """The parsed kelurahan FeatureCollection (shared and cached: do not modify it)."""
    with KELURAHAN_GEOJSON_PATH.open(encoding="utf-8") as fh:
        return json.load(fh)


@functools.cache
def load_areas() -> Areas:
    return parse_areas(load_kelurahan_geojson(), source=str(KELURAHAN_GEOJSON_PATH))
