"""Routing rules: where a report is, and which OPD queue it goes to.

No I/O besides reading the reference data; the service entrypoint and the `route` CLI both call
`route()`.

Locating a point (`AreaIndex.locate`) on the kelurahan polygons of jaklapor/reference, whose
neighbours do not share edges (small overlaps, thin gaps; see jaklapor/reference/ATTRIBUTION.md):

1. The point is in exactly one polygon: `inside`.
2. The point is in several polygons (an overlap sliver, or exactly on a shared boundary):
   `overlap`; the kelurahan whose boundary is farthest from the point wins (the point lies deepest
   inside it), ties by the lowest Kemendagri code. The same point always gets the same kelurahan.
3. The point is in no polygon (a gap between neighbours, a pier, the harbour, just off the coast):
   it snaps to the nearest polygon if that is within `snap_cap_m` (default 500 m): `snapped`, with
   `distance_m`; equally near polygons: lowest code.
4. Otherwise `Outside(reason="outside_jakarta", distance_m=...)` (Depok, Bekasi and Tangerang are
   3-6 km from the nearest polygon).

Distances are in metres: the polygons are projected once to a local equirectangular plane centred
on Jakarta, with the WGS84 ellipsoid's radii of curvature at the centre latitude. Over Jakarta's
extent (5.2-6.4 deg S) the scale error stays below 0.15 %, under 1 m at the 500 m snapping cap.
Distances beyond 50 km (far outside Jakarta) are great-circle distances instead.

Routing keys (AMQP topic exchange: dots separate words; codes and slugs never contain dots):
    <opd_code>.<kota-slug>.<kecamatan-slug>.<kelurahan-slug>
    e.g. sudin-bina-marga-jakarta-selatan.jakarta-selatan.kebayoran-baru.melawai
    triage.<reason-with-dashes>[.<kota-slug>.<kecamatan-slug>.<kelurahan-slug>]
    e.g. triage.outside-jakarta, triage.unknown-category.jakarta-selatan.kebayoran-baru.melawai
An OPD's queue binds `<opd_code>.#` (`jaklapor.messaging.opd_queue`); a Suku Dinas receives only its kota
because the directory resolves the kota unit before the key is built.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import numpy as np
import shapely
from shapely import Point, STRtree
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from jaklapor.reference import (
    AreaDataError,
    Category,
    Directory,
    KelurahanInfo,
    Opd,
    load_areas,
    load_kelurahan_geojson,
    parse_areas,
)

__all__ = [
    "DEFAULT_SNAP_CAP_M",
    "UNROUTABLE_REASONS",
    "AreaIndex",
    "AreaMatch",
    "MatchKind",
    "Outside",
    "Routed",
    "RoutingDecision",
    "Unroutable",
    "default_area_index",
    "route",
    "routing_key_for",
    "triage_routing_key",
]

DEFAULT_SNAP_CAP_M: Final = 500.0
MatchKind = Literal["inside", "overlap", "snapped"]
# why a report went to triage; `invalid_location`: coordinates that are not a place on Earth
UNROUTABLE_REASONS: Final = (
    "outside_jakarta",
    "no_handler",
    "unknown_category",
    "invalid_location",
)

# WGS84
_A: Final = 6_378_137.0
_F: Final = 1 / 298.257223563
_E2: Final = _F * (2 - _F)
_EARTH_MEAN_RADIUS_M: Final = 6_371_008.8
_GREAT_CIRCLE_BEYOND_M: Final = 50_000.0


# --------------------------------------------------------------------------------------------------
# Results of locating a point
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AreaMatch:
    """The kelurahan of a point, and how it was found."""

    kelurahan: KelurahanInfo
    match: MatchKind
    distance_m: float = 0.0  # to the polygon, for `snapped`; 0 otherwise
    candidates: tuple[str, ...] = ()  # `overlap`: codes of every kelurahan containing the point

    @property
    def code(self) -> str:
        return self.kelurahan.code

    @property
    def kecamatan(self) -> str:
        return self.kelurahan.kecamatan

    @property
    def kota(self) -> str:
        return self.kelurahan.kota

    def as_area_ref(self) -> dict[str, str]:
        """The `AreaRef` shape of jaklapor.events (code, kelurahan, kecamatan, kota)."""
        return self.kelurahan.as_area_ref()


@dataclass(frozen=True, slots=True)
class Outside:
    """A point farther than the snapping cap from every kelurahan."""

    reason: str
    distance_m: float  # to the nearest kelurahan polygon
    nearest: KelurahanInfo | None = None


# --------------------------------------------------------------------------------------------------
# The area index
# --------------------------------------------------------------------------------------------------


class _LocalProjection:
    """Equirectangular projection to metres around (lon0, lat0), ellipsoidal scale at lat0."""

    __slots__ = ("kx", "ky", "lat0", "lon0")

    def __init__(self, lon0: float, lat0: float) -> None:
        phi = math.radians(lat0)
        w = 1.0 - _E2 * math.sin(phi) ** 2
        meridional = _A * (1.0 - _E2) / w**1.5  # radius of curvature along the meridian
        prime_vertical = _A / math.sqrt(w)
        self.lon0, self.lat0 = lon0, lat0
        self.kx = math.radians(1.0) * prime_vertical * math.cos(phi)  # metres per degree of lon
        self.ky = math.radians(1.0) * meridional  # metres per degree of lat

    def forward(self, coords: np.ndarray) -> np.ndarray:
        """(n, 2) lon/lat -> (n, 2) x/y metres."""
        return np.column_stack(((coords[:, 0] - self.lon0) * self.kx, (coords[:, 1] - self.lat0) * self.ky))

    def inverse_xy(self, x: float, y: float) -> tuple[float, float]:
        """x/y metres -> (lon, lat)."""
        return self.lon0 + x / self.kx, self.lat0 + y / self.ky


def _great_circle_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_MEAN_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _coordinate(name: str, value: Any, limit: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not -limit <= number <= limit:
        raise ValueError(f"{name} must be between {-limit:g} and {limit:g}, got {value!r}")
    return number


def _check_coordinates(lat: Any, lon: Any) -> tuple[float, float]:
    # fast path for plain floats in range (NaN and inf fail the comparisons)
    if type(lat) is float and type(lon) is float and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:
        return lat, lon
    return _coordinate("lat", lat, 90.0), _coordinate("lon", lon, 180.0)


class AreaIndex:
    """Kelurahan polygons in an STRtree: `locate(lat, lon)` -> `AreaMatch | Outside`.

    Build it once (it takes ~0.1 s) and share it; it is read-only and safe to use from any thread.
    """

    def __init__(
        self,
        kelurahan: Sequence[KelurahanInfo],
        geometries: Sequence[BaseGeometry],
        *,
        snap_cap_m: float = DEFAULT_SNAP_CAP_M,
    ) -> None:
        """`geometries`: WGS84 lon/lat polygons, one per entry of `kelurahan`, same order."""
        if len(kelurahan) != len(geometries) or not kelurahan:
            raise ValueError("need one geometry per kelurahan, and at least one")
        if isinstance(snap_cap_m, bool) or not isinstance(snap_cap_m, numbers.Real):
            raise ValueError(f"snap_cap_m must be a number of metres, got {snap_cap_m!r}")
        if not (math.isfinite(snap_cap_m) and snap_cap_m >= 0):
            raise ValueError(f"snap_cap_m must be a finite, non-negative distance, got {snap_cap_m!r}")
        geoms = np.asarray(list(geometries), dtype=object)
        problems = [
            f"{k.code} ({k.name}): {why}" for k, g in zip(kelurahan, geoms, strict=True) if (why := _polygon_problem(g))
        ]
        if problems:
            raise AreaDataError("kelurahan geometries", problems)
        self._kelurahan: tuple[KelurahanInfo, ...] = tuple(kelurahan)
        self._codes: tuple[str, ...] = tuple(k.code for k in self._kelurahan)
        self._snap_cap_m: float = float(snap_cap_m)
        # project around the mean of the kelurahan centroids (mostly mainland), rounded to 0.01 deg so that
        # the projection, and so every answer, does not depend on the order of the features
        centroids = shapely.get_coordinates(shapely.centroid(geoms))
        lon0, lat0 = (round(float(np.mean(centroids[:, k])), 2) for k in (0, 1))
        proj = _LocalProjection(lon0, lat0)
        self._proj: _LocalProjection = proj
        self._geoms: np.ndarray = shapely.transform(geoms, proj.forward)
        shapely.prepare(self._geoms)
        self._boundaries: np.ndarray = shapely.boundary(self._geoms)
        self._tree: STRtree = STRtree(self._geoms)
        self._inside: tuple[AreaMatch, ...] = tuple(AreaMatch(k, "inside") for k in self._kelurahan)
        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        self.bounds: tuple[float, float, float, float] = (
            float(minx),
            float(miny),
            float(maxx),
            float(maxy),
        )

    @classmethod
    def from_geojson(
        cls,
        geojson: Mapping[str, Any] | str | Path | None = None,
        *,
        snap_cap_m: float = DEFAULT_SNAP_CAP_M,
    ) -> AreaIndex:
        """From a kelurahan FeatureCollection (mapping or path); the repo's file by default."""
        if geojson is None:
            data, areas = load_kelurahan_geojson(), load_areas()
        else:
            if isinstance(geojson, str | Path):
                with open(geojson, encoding="utf-8") as fh:
                    data = json.load(fh)
            else:
                data = dict(geojson)
            areas = parse_areas(data, source=str(geojson) if isinstance(geojson, str | Path) else "geojson")
        kelurahan, geometries = [], []
        for feature in data["features"]:
            kelurahan.append(areas.kelurahan[feature["properties"]["code"]])
            geometries.append(shape(feature["geometry"]))
        return cls(kelurahan, geometries, snap_cap_m=snap_cap_m)

    @classmethod
    def default(cls, snap_cap_m: float = DEFAULT_SNAP_CAP_M) -> AreaIndex:
        """The index of the repo's boundaries, built once per process (`default_area_index`)."""
        return default_area_index(float(snap_cap_m))

    @property
    def snap_cap_m(self) -> float:
        return self._snap_cap_m

    @property
    def kelurahan(self) -> tuple[KelurahanInfo, ...]:
        return self._kelurahan

    def __len__(self) -> int:
        return len(self._kelurahan)

    def locate(self, lat: float, lon: float) -> AreaMatch | Outside:
        """The kelurahan of a WGS84 point. Raises ValueError for NaN, infinite or out-of-range
        coordinates (or anything that is not a number)."""
        lat, lon = _check_coordinates(lat, lon)
        proj = self._proj
        point = Point((lon - proj.lon0) * proj.kx, (lat - proj.lat0) * proj.ky)
        hits = self._tree.query(point, predicate="intersects")
        if len(hits) == 1:
            return self._inside[hits[0]]
        if len(hits) > 1:
            return self._resolve_overlap(point, hits)
        return self._snap(point, lat, lon)

    def _resolve_overlap(self, point: Point, hits: np.ndarray) -> AreaMatch:
        codes = self._codes
        depth = shapely.distance(self._boundaries[hits], point)
        best = min(range(len(hits)), key=lambda i: (-depth[i], codes[hits[i]]))
        return AreaMatch(self._kelurahan[hits[best]], "overlap", 0.0, tuple(sorted(codes[i] for i in hits)))

    def _nearest(self, point: Point, max_distance: float | None) -> tuple[int, float] | None:
        idx, dist = self._tree.query_nearest(point, max_distance=max_distance, return_distance=True, all_matches=True)
        if not len(idx):
            return None
        codes = self._codes
        best = min(range(len(idx)), key=lambda i: (dist[i], codes[idx[i]]))
        return int(idx[best]), float(dist[best])

    def _snap(self, point: Point, lat: float, lon: float) -> AreaMatch | Outside:
        if self._snap_cap_m > 0:
            near = self._nearest(point, self._snap_cap_m)
            if near is not None:
                i, dist = near
                return AreaMatch(self._kelurahan[i], "snapped", round(dist, 1))
        i, dist = self._nearest(point, None)  # type: ignore[misc]  # the tree is never empty
        if dist > _GREAT_CIRCLE_BEYOND_M:
            # the flat projection means nothing far from Jakarta: measure along the sphere instead
            on_polygon = shapely.shortest_line(self._geoms[i], point).coords[0]
            dist = _great_circle_m(lon, lat, *self._proj.inverse_xy(*on_polygon))
        return Outside(reason="outside_jakarta", distance_m=round(dist, 1), nearest=self._kelurahan[i])


def _polygon_problem(geom: Any) -> str | None:
    if not isinstance(geom, BaseGeometry):
        return f"not a geometry ({type(geom).__name__})"
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        return f"{geom.geom_type}, expected Polygon or MultiPolygon"
    if geom.is_empty:
        return "empty geometry"
    if not geom.is_valid:
        return f"invalid geometry: {shapely.is_valid_reason(geom)}"
    return None


@functools.lru_cache(maxsize=4)
def default_area_index(snap_cap_m: float = DEFAULT_SNAP_CAP_M) -> AreaIndex:
    """The index of the repo's kelurahan boundaries, built once per process (per snapping cap)."""
    return AreaIndex.from_geojson(snap_cap_m=snap_cap_m)


# --------------------------------------------------------------------------------------------------
# Routing decisions
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Routed:
    """The report goes to `opd`'s queue with `routing_key`."""

    opd: Opd
    area: AreaMatch
    category: Category
    routing_key: str
    routed: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Unroutable:
    """The report goes to the triage desk (`opd`) with `routing_key`; `reason` is one of
    UNROUTABLE_REASONS, `detail` says why in words (English, for the triage desk and operators),
    `detail_id` the same for the citizen (Indonesian)."""

    reason: str
    detail: str
    detail_id: str
    routing_key: str
    opd: Opd  # the triage desk
    area: AreaMatch | None = None  # known for no_handler / unknown_category
    category: Category | None = None
    distance_m: float | None = None  # outside_jakarta: to the nearest kelurahan
    routed: ClassVar[bool] = False


RoutingDecision = Routed | Unroutable


def routing_key_for(opd: Opd | str, area: AreaMatch | KelurahanInfo | None) -> str:
    """`<opd_code>.<kota>.<kecamatan>.<kelurahan>` (slugs); just the OPD code without an area."""
    code = opd if isinstance(opd, str) else opd.code
    if not code or any(c in code for c in ".*# "):
        raise ValueError(f"OPD code {code!r} cannot be a routing key word")
    if area is None:
        return code
    kel = area.kelurahan if isinstance(area, AreaMatch) else area
    return f"{code}.{kel.kota_slug}.{kel.kecamatan_slug}.{kel.slug}"


def triage_routing_key(reason: str, area: AreaMatch | KelurahanInfo | None = None, triage_code: str = "triage") -> str:
    """`triage.<reason-with-dashes>`, then `.<kota>.<kecamatan>.<kelurahan>` if the area is known.

    E.g. `triage.outside-jakarta`; `triage.no-handler.jakarta-selatan.kebayoran-baru.melawai`.
    """
    head = routing_key_for(triage_code, None) + "." + routing_key_for(reason.replace("_", "-"), None)
    if area is None:
        return head
    kel = area.kelurahan if isinstance(area, AreaMatch) else area
    return f"{head}.{kel.kota_slug}.{kel.kecamatan_slug}.{kel.slug}"


def route(index: AreaIndex, directory: Directory, lat: float, lon: float, category_code: str) -> RoutingDecision:
    """Decide where a report goes. Never raises for bad input: invalid coordinates, a point outside
    Jakarta, an unknown category (code, or a name / alias, see `Directory.category`) and a category
    nobody handles in that kota all give an `Unroutable` decision for the triage desk."""
    category = directory.category(category_code) if isinstance(category_code, str) else None
    try:
        where = index.locate(lat, lon)
    except ValueError as exc:
        return _unroutable(directory, "invalid_location", str(exc), "koordinat lokasi tidak valid", None, category)
    if isinstance(where, Outside):
        nearest = f" ({where.nearest.name}, {where.nearest.kota})" if where.nearest else ""
        detail = (
            f"{where.distance_m:.0f} m from the nearest kelurahan{nearest}, beyond the "
            f"{index.snap_cap_m:.0f} m snapping cap"
        )
        detail_id = (
            f"lokasi {distance_id(where.distance_m)} dari kelurahan terdekat{nearest}, di luar batas "
            f"{distance_id(index.snap_cap_m)}"
        )
        return _unroutable(directory, "outside_jakarta", detail, detail_id, None, category, where.distance_m)
    if category is None:
        detail = f"unknown category {category_code!r}"
        return _unroutable(
            directory, "unknown_category", detail, f'kategori "{category_code}" tidak dikenal', where, None
        )
    opd = directory.responsible_for(category.code, where.kelurahan)
    if opd is None:
        detail = f"no OPD handles {category.code!r} in {where.kelurahan.kota}"
        detail_id = f"belum ada OPD yang menangani kategori {category.name} di {where.kelurahan.kota}"
        return _unroutable(directory, "no_handler", detail, detail_id, where, category)
    kel = where.kelurahan
    key = f"{opd.code}.{kel.kota_slug}.{kel.kecamatan_slug}.{kel.slug}"
    return Routed(opd, where, category, key)


def _unroutable(
    directory: Directory,
    reason: str,
    detail: str,
    detail_id: str,
    area: AreaMatch | None,
    category: Category | None,
    distance_m: float | None = None,
) -> Unroutable:
    triage = directory.triage
    key = triage_routing_key(reason, area, triage.code)
    return Unroutable(reason, detail, detail_id, key, triage, area, category, distance_m)


def distance_id(meters: float) -> str:
    """A distance as an Indonesian reader writes it: `570 m`, `3,2 km` (decimal comma)."""
    if round(meters) < 1000:
        return f"{meters:.0f} m"
    return f"{meters / 1000:.1f} km".replace(".", ",")
