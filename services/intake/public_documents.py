"""What the gateway publishes for its clients besides reports (no I/O): the limits and map settings a client needs
(app-config), the categories by group, the areas for a
kelurahan picker and their boundaries for a map (these two built once and served with an ETag, plain or
gzip-compressed)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jaklapor.reference import Areas, Category, category_groups
from jaklapor.reference.geo import representative_points, simplify_kelurahan
from jaklapor.web import gzipped
from services.intake.domain import MAX_PHOTOS_PER_REPORT, REJECTION_REASONS
from services.intake.nearby import DEFAULT_RADIUS_M, MAX_RADIUS_M, NEARBY_LIMIT
from services.intake.photos import DEFAULT_POLICY, PhotoPolicy
from services.intake.schemas import CONTACT_MAX_CHARS, DESCRIPTION_MAX_CHARS, PHONE_RE

#: how long clients and caches may keep the reference documents (they change with a release only)
REFERENCE_MAX_AGE_SECONDS = 86400
#: MAP_TILE_URL's short name for OpenStreetMap's tiles (config.yaml's default: its `${VAR:default}` cannot hold
#: the template's braces)
OSM_PRESET = "osm"
OSM_TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
#: where a map of Jakarta starts: Monas, the city at a glance
MAP_CENTER = {"lat": -6.1754, "lon": 106.8272}
MAP_ZOOM = 12


def check_tile_url(value: str) -> str:
    """MAP_TILE_URL as clients get it: "osm" becomes OpenStreetMap's template; any other must be an http(s)
    template with {z}, {x} and {y}; empty stays empty (no tiles)."""
    value = value.strip()
    if value == OSM_PRESET:
        return OSM_TILE_URL
    if value and (not value.startswith(("https://", "http://")) or not all(p in value for p in ("{z}", "{x}", "{y}"))):
        raise ValueError(f"must be empty, {OSM_PRESET!r} or an http(s) URL template with {{z}}, {{x}} and {{y}}")
    return value


def app_config(
    tile_url: str,
    tile_attribution: str,
    max_request_bytes: int,
    policy: PhotoPolicy = DEFAULT_POLICY,
    stats_url: str = "",
) -> dict[str, Any]:
    """The limits a client checks before sending (the server checks them all the same), the map's settings and where
    the statistics are read and the reasons an OPD may give to reject a report (the OPD workbench's)."""
    return {
        "report": {
            "description_max_chars": DESCRIPTION_MAX_CHARS,
            "max_photos": MAX_PHOTOS_PER_REPORT,
            "max_photo_bytes": policy.max_bytes,
            "max_photo_pixels": policy.max_pixels,
            "photo_types": sorted(f"image/{fmt.lower()}" for fmt in policy.allowed_formats),
            # a larger photo is scaled down to this longer side when stored: a client need not send more
            "stored_photo_max_side": policy.output_max_side,
            "max_request_bytes": max_request_bytes,
        },
        "contact": {
            "optional": True,
            "max_chars": CONTACT_MAX_CHARS,
            "kinds": ["email", "phone"],
            "phone_pattern": PHONE_RE.pattern,
            "phone_example": "+62812345678",
            "phone_note": "spaces, dashes, dots and brackets are ignored; 08... is read as +628...",
        },
        "nearby": {"default_radius_m": DEFAULT_RADIUS_M, "max_radius_m": MAX_RADIUS_M, "limit": NEARBY_LIMIT},
        "map": {
            "tile_url": tile_url or None,
            "tile_attribution": tile_attribution if tile_url else None,
            "center": MAP_CENTER,
            "zoom": MAP_ZOOM,
            "areas_url": "/api/v1/areas",
            "boundaries_url": "/api/v1/areas/kelurahan.geojson",
        },
        "stats": {"url": stats_url.rstrip("/") or None},
        # why an OPD may reject a report (ditolak), for an agency's client to offer
        "rejection_reasons": [{"code": code, "label": label} for code, label in REJECTION_REASONS.items()],
    }


@dataclass(frozen=True)
class CachedDocument:
    """A document built once: its JSON bytes, the same gzip-compressed, and an ETag of the content."""

    body: bytes
    gzipped: bytes
    etag: str  # unquoted
    content_type: str

    @classmethod
    def of(cls, payload: Any, content_type: str = "application/json") -> CachedDocument:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(
            body=body,
            gzipped=gzipped(body),
            etag=hashlib.sha256(body).hexdigest()[:32],
            content_type=content_type,
        )


@dataclass(frozen=True)
class ReferenceDocuments:
    areas: CachedDocument
    kelurahan_geojson: CachedDocument


def reference_documents(areas: Areas, kelurahan_geojson: Mapping[str, Any]) -> ReferenceDocuments:
    """The areas tree and the simplified boundaries, from the reference data."""
    return ReferenceDocuments(
        areas=CachedDocument.of(area_tree(areas, representative_points(kelurahan_geojson))),
        kelurahan_geojson=CachedDocument.of(simplify_kelurahan(kelurahan_geojson), "application/geo+json"),
    )


def categories_document(categories: Mapping[str, Category]) -> dict[str, Any]:
    """Every category a report can have, in the file's order, each with its group; and the groups in the order a
    picker shows them, with the codes of their categories."""
    return {
        "categories": [c.public_fields() for c in categories.values()],
        "groups": [
            {
                "name": group.name,
                "name_en": group.name_en,
                "categories": [c.code for c in categories.values() if c.group == group],
            }
            for group in category_groups(categories)
        ],
    }


def area_tree(areas: Areas, points: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
    """kota -> kecamatan -> kelurahan, each level by name, each kelurahan with its code and a point inside it."""
    kecamatan_of: dict[str, list[dict[str, Any]]] = {}
    for kelurahan in areas.kelurahan.values():
        lat, lon = points[kelurahan.code]
        entry: dict[str, Any] = {"code": kelurahan.code, "name": kelurahan.name, "point": {"lat": lat, "lon": lon}}
        kecamatan_of.setdefault(kelurahan.kecamatan_code, []).append(entry)
    kota_of: dict[str, list[dict[str, Any]]] = {}
    for kecamatan in areas.kecamatan.values():
        kelurahan_list = sorted(kecamatan_of.get(kecamatan.code, []), key=_by_name)
        kota_of.setdefault(kecamatan.kota_code, []).append(
            {"code": kecamatan.code, "name": kecamatan.name, "kelurahan": kelurahan_list}
        )
    kota: list[dict[str, Any]] = [
        {"code": k.code, "name": k.name, "kecamatan": sorted(kota_of.get(k.code, []), key=_by_name)}
        for k in areas.kota.values()
    ]
    return {"kota": sorted(kota, key=_by_name)}


def _by_name(entry: Mapping[str, Any]) -> str:
    return str(entry["name"]).casefold()
