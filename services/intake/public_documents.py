"""What the gateway publishes for its clients besides reports (no I/O): the areas for a kelurahan picker, their
boundaries for a map, built once and served with an ETag, plain or gzip-compressed."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jaklapor.reference import Areas
from jaklapor.reference.geo import representative_points, simplify_kelurahan

#: how long clients and caches may keep the reference documents (they change with a release only)
REFERENCE_MAX_AGE_SECONDS = 86400


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
            gzipped=gzip.compress(body, compresslevel=9, mtime=0),
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
