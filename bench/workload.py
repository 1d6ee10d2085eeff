"""What the load generator sends: realistic citizen reports, built before the clock starts.

Category mix: the shares the city publishes for the top six categories (CRM_TAXONOMY.md: Jalan ~14 %, Pohon ~11 %,
Parkir Liar ~10 %, Gangguan Ketenteraman dan Ketertiban 9-14 % -> 11.5 %, Sampah 5-11 % -> 8 %, Jaringan Listrik
~8 %); the remaining 37.5 % is split over the other categories in proportion to their counts in the 2023 sample
(`bench/crm2023_sample_category_agency_counts.csv`, CRM names resolved to our codes; names that are not one of our
categories are dropped), with half a count for categories the sample does not contain, so the long tail
(kebakaran, pendidikan, ...) is exercised too.

Geotags: a kelurahan is picked uniformly (each of the 267 kelurahan equally likely, default) or in proportion to its
area (`area`), then a point uniformly inside its polygon (rejection sampling with shapely). Kelurahan are drawn to
similar populations, so "uniform" is the closer proxy for where reports come from; "area" over-weights the large,
sparse ones at the edges.

Photos: a pool of distinct photo-like JPEGs of 150-300 KB (tests/photo_fixtures.realistic_photo_jpeg), generated
once and cached on disk, so generating them is never part of a measurement.
"""

from __future__ import annotations

import csv
import random
import urllib.parse
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely

REPO = Path(__file__).resolve().parents[1]
PHOTO_CACHE = Path("/tmp/jaklapor-bench-photos")
#: how often each CRM category went to each agency in 2023's 209-report sample (bench/README.md): only the
#: benchmarks draw from it
CRM_SAMPLE_CSV = Path(__file__).resolve().parent / "crm2023_sample_category_agency_counts.csv"

# shares published by the city (CRM_TAXONOMY.md, "Top categories"); ranges use their midpoint
PUBLISHED_SHARES: dict[str, float] = {
    "jalan": 0.14,
    "pohon": 0.11,
    "parkir-liar": 0.10,
    "gangguan-ketenteraman-dan-ketertiban": 0.115,
    "sampah": 0.08,
    "jaringan-listrik": 0.08,
}
ABSENT_CATEGORY_COUNT = 0.5

# what citizens write, per category; anything else uses the category's own description
PHRASES: dict[str, tuple[str, ...]] = {
    "jalan": (
        "Jalan berlubang cukup dalam, sudah ada pengendara motor yang jatuh",
        "Aspal terkelupas dan amblas setelah hujan deras semalam",
        "Lubang besar di tengah jalan, mohon segera ditambal",
    ),
    "pohon": (
        "Pohon besar miring ke arah jalan, rawan tumbang saat hujan angin",
        "Dahan pohon menutupi lampu jalan dan kabel, mohon dipangkas",
        "Pohon tumbang menutup sebagian badan jalan",
    ),
    "parkir-liar": (
        "Mobil parkir di trotoar setiap sore, pejalan kaki terpaksa turun ke jalan",
        "Juru parkir liar menarik tarif di bahu jalan depan minimarket",
        "Motor parkir dua lapis di depan pasar, jalan jadi macet",
    ),
    "gangguan-ketenteraman-dan-ketertiban": (
        "Sekelompok orang berkumpul dan mabuk di pos ronda sampai larut malam",
        "Ada pungutan liar kepada pedagang setiap pagi",
        "Balap liar setiap malam minggu, warga resah",
    ),
    "sampah": (
        "Sampah menumpuk sudah tiga hari belum diangkut, bau menyengat",
        "Warga membuang sampah sembarangan di pinggir kali",
        "Tempat sampah penuh dan meluber ke jalan",
    ),
    "jaringan-listrik": (
        "Lampu penerangan jalan mati sepanjang satu blok, gelap dan rawan",
        "Kabel menjuntai rendah di atas jalan, membahayakan kendaraan tinggi",
        "Tiang listrik miring setelah tertabrak truk",
    ),
    "saluran-air-kali-sungai": (
        "Saluran air tersumbat sampah, air meluap ke jalan saat hujan",
        "Kali dangkal dan penuh lumpur, perlu dikeruk",
    ),
    "penanganan-banjir": ("Genangan setinggi lutut di permukiman, pompa air tidak bekerja",),
}
PLACES = (
    "depan sekolah",
    "dekat halte",
    "samping masjid",
    "depan pasar",
    "dekat pintu masuk gang",
    "seberang minimarket",
    "dekat pos RW",
    "di tikungan jalan",
    "depan kantor kelurahan",
    "dekat jembatan",
)


@dataclass(frozen=True)
class Report:
    category: str
    description: str
    lat: float
    lon: float
    photo: int | None  # index in the photo pool, or None


def category_weights() -> dict[str, float]:
    """Category code -> probability (see the module docstring)."""
    from jaklapor.reference import load_categories, resolve_category

    sample: Counter[str] = Counter()
    with open(CRM_SAMPLE_CSV, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            category = resolve_category(row["category"])
            if category is not None:
                sample[category.code] += int(row["count"])
    rest = {
        code: float(sample.get(code, ABSENT_CATEGORY_COUNT))
        for code in load_categories()
        if code not in PUBLISHED_SHARES
    }
    rest_share = 1.0 - sum(PUBLISHED_SHARES.values())
    rest_total = sum(rest.values())
    weights = dict(PUBLISHED_SHARES)
    weights.update({code: rest_share * count / rest_total for code, count in rest.items()})
    return weights


def points_inside(geom: Any, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 2) lat/lon drawn uniformly inside `geom` (rejection sampling in its bounding box)."""
    minx, miny, maxx, maxy = geom.bounds
    got = np.empty((0, 2))
    while len(got) < count:
        k = max(64, 4 * (count - len(got)))
        xs, ys = rng.uniform(minx, maxx, k), rng.uniform(miny, maxy, k)
        keep = shapely.contains_xy(geom, xs, ys)
        got = np.vstack([got, np.column_stack([ys[keep], xs[keep]])])
    return got[:count]


def sample_points(n: int, rng: np.random.Generator, weighting: str = "uniform") -> tuple[np.ndarray, list[str]]:
    """n (lat, lon) points inside kelurahan polygons, shuffled, and each point's kelurahan name."""
    from shapely.geometry import shape

    from jaklapor.reference import load_kelurahan_geojson

    features = load_kelurahan_geojson()["features"]
    geoms = [shape(f["geometry"]) for f in features]
    if weighting == "area":
        areas = np.array([g.area for g in geoms])
        p = areas / areas.sum()
    elif weighting == "uniform":
        p = np.full(len(geoms), 1.0 / len(geoms))
    else:
        raise ValueError(f"unknown kelurahan weighting {weighting!r}")
    counts = rng.multinomial(n, p)
    points, names = [], []
    for feature, geom, count in zip(features, geoms, counts, strict=True):
        if count == 0:
            continue
        points.append(points_inside(geom, int(count), rng))
        names += [feature["properties"]["kelurahan"]] * int(count)
    order = rng.permutation(n)
    stacked = np.vstack(points)[order]
    return stacked, [names[i] for i in order]


def build_reports(
    n: int, seed: int, photo_share: float, photo_pool: int, weighting: str = "uniform"
) -> tuple[list[Report], dict[str, float]]:
    """n reports: categories by weight, geotags inside kelurahan, a photo for `photo_share` of them."""
    from jaklapor.reference import load_categories

    rng = np.random.default_rng(seed)
    pyrng = random.Random(seed)
    weights = category_weights()
    codes = list(weights)
    probs = np.array([weights[c] for c in codes])
    chosen = rng.choice(len(codes), size=n, p=probs / probs.sum())
    points, kelurahan = sample_points(n, rng, weighting)
    with_photo = rng.random(n) < photo_share
    categories = load_categories()
    reports = []
    for i in range(n):
        code = codes[chosen[i]]
        phrase = pyrng.choice(PHRASES.get(code) or (categories[code].description.rstrip("."),))
        description = f"{phrase}, {pyrng.choice(PLACES)}, Kelurahan {kelurahan[i]}."
        photo = pyrng.randrange(photo_pool) if with_photo[i] and photo_pool > 0 else None
        reports.append(Report(code, description, round(points[i, 0], 6), round(points[i, 1], 6), photo))
    return reports, weights


def photo_pool(size: int, seed: int = 7) -> list[bytes]:
    """`size` distinct photo-like JPEGs of 150-300 KB, cached under /tmp so later runs start at once."""
    if size <= 0:
        return []
    import sys

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.photo_fixtures import realistic_photo_jpeg

    PHOTO_CACHE.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    pool = []
    for i in range(size):
        target_kb = rng.randrange(165, 285)  # the generator lands within a few % of the target
        path = PHOTO_CACHE / f"photo-{target_kb}-{seed}-{i}.jpg"
        if path.exists():
            data = path.read_bytes()
        else:
            data = realistic_photo_jpeg(target_kb, seed * 1000 + i)
            path.write_bytes(data)
        if not 150 * 1024 <= len(data) <= 300 * 1024:
            raise RuntimeError(f"photo {path} is {len(data)} bytes, outside 150-300 KB")
        pool.append(data)
    return pool


def urlencoded_body(report: Report) -> bytes:
    return urllib.parse.urlencode(
        {"category": report.category, "description": report.description, "lat": report.lat, "lon": report.lon}
    ).encode()


def multipart_body(report: Report, photo: bytes | None) -> tuple[bytes, str]:
    """A multipart/form-data body with the text fields and the photo, if any, under a boundary of its own as a
    browser's `FormData` has; (body, content type)."""
    boundary = f"jaklapor-bench-{uuid.uuid4().hex}"
    parts = []
    for name, value in (
        ("category", report.category),
        ("description", report.description),
        ("lat", str(report.lat)),
        ("lon", str(report.lon)),
    ):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    if photo is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="laporan.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n".encode()
        )
        parts += [photo, b"\r\n"]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def client_addresses(n: int, seed: int) -> list[str]:
    """n distinct private IPv4 addresses, one per simulated phone, for X-Forwarded-For."""
    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < n:
        seen.add(f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}")
    return sorted(seen, key=lambda _: rng.random())
