"""Benchmark of the routing domain: decisions per second on one core, and the area index's memory.

    python bench/bench_routing.py                 # 200,000 decisions, 5 % of points outside polygons
    python bench/bench_routing.py --points 500000 --outside 0.1 --json

Points: area-weighted random points inside the kelurahan polygons, plus a share drawn around Jakarta
in no polygon (thin gaps, harbour, sea, Depok / Bekasi / Tangerang), which exercise the snapping and
`outside` paths. Categories: drawn with the frequencies of crm2023_sample_category_agency_counts.csv,
by the CRM name (names that are not one of our categories exercise the `unknown_category` path).
Memory: RSS growth while building the index from the already-parsed GeoJSON (GEOS allocations are
outside Python's allocator, so tracemalloc alone under-counts; both are printed).
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import platform
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import shapely  # noqa: E402
from shapely.geometry import shape  # noqa: E402

from bench.workload import CRM_SAMPLE_CSV, points_inside  # noqa: E402
from jaklapor.reference import load_directory, load_kelurahan_geojson  # noqa: E402
from services.routing.domain import DEFAULT_SNAP_CAP_M, AreaIndex, AreaMatch, route  # noqa: E402


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def sample_points(n_inside: int, n_outside: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) lat/lon: area-weighted points inside polygons, then points in no polygon nearby."""
    geoms = [shape(f["geometry"]) for f in load_kelurahan_geojson()["features"]]
    areas = np.array([g.area for g in geoms])
    counts = rng.multinomial(n_inside, areas / areas.sum())
    chunks = []
    for geom, count in zip(geoms, counts, strict=True):
        chunks.append(points_inside(geom, int(count), rng))
    union = shapely.union_all(geoms)
    shapely.prepare(union)
    mainland = shapely.union_all([g for g in geoms if g.bounds[1] < -6.0])
    minx, miny, maxx, maxy = mainland.bounds
    outside = np.empty((0, 2))
    while len(outside) < n_outside:
        xs = rng.uniform(minx - 0.15, maxx + 0.15, 4 * n_outside)
        ys = rng.uniform(miny - 0.15, maxy + 0.1, 4 * n_outside)
        keep = ~shapely.contains_xy(union, xs, ys)
        outside = np.vstack([outside, np.column_stack([ys[keep], xs[keep]])])
    points = np.vstack([*chunks, outside[:n_outside]])
    return points[rng.permutation(len(points))]


def category_mix(n: int, rng: np.random.Generator) -> list[str]:
    with open(CRM_SAMPLE_CSV, encoding="utf-8") as fh:
        totals: Counter[str] = Counter()
        for row in csv.DictReader(fh):
            totals[row["category"]] += int(row["count"])
    names = list(totals)
    weights = np.array([totals[c] for c in names], dtype=float)
    return [names[i] for i in rng.choice(len(names), size=n, p=weights / weights.sum())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=200_000, help="decisions to time (>= 100000)")
    parser.add_argument("--outside", type=float, default=0.05, help="share of points in no polygon")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--snap-cap-m", type=float, default=DEFAULT_SNAP_CAP_M)
    parser.add_argument("--no-pin", action="store_true", help="do not pin the process to one CPU")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args()

    pinned = None
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        pinned = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {pinned})

    # memory and time to build the index (GeoJSON already parsed; the directory is separate)
    geojson = load_kelurahan_geojson()
    directory = load_directory()
    gc.collect()
    rss_before = rss_bytes()
    tracemalloc.start()
    t0 = time.perf_counter()
    index = AreaIndex.from_geojson(geojson, snap_cap_m=args.snap_cap_m)
    build_s = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    traced_now = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    gc.collect()
    rss_delta = rss_bytes() - rss_before

    rng = np.random.default_rng(args.seed)
    n_outside = round(args.points * args.outside)
    points = sample_points(args.points - n_outside, n_outside, rng)
    lats, lons = points[:, 0].tolist(), points[:, 1].tolist()
    cats = category_mix(len(lats), rng)
    work = list(zip(lats, lons, cats, strict=True))

    for lat, lon, cat in work[:2000]:  # warm-up
        route(index, directory, lat, lon, cat)

    gc.collect()
    t0 = time.perf_counter()
    for lat, lon in zip(lats, lons, strict=True):
        index.locate(lat, lon)
    locate_s = time.perf_counter() - t0

    gc.collect()
    t0 = time.perf_counter()
    decisions = [route(index, directory, lat, lon, cat) for lat, lon, cat in work]
    route_s = time.perf_counter() - t0

    matches: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for d in decisions:
        area = d.area
        matches[area.match if isinstance(area, AreaMatch) else "outside"] += 1
        outcomes["routed" if d.routed else d.reason] += 1

    result = {
        "points": len(work),
        "decisions_per_s": round(len(work) / route_s),
        "us_per_decision": round(route_s / len(work) * 1e6, 2),
        "locate_per_s": round(len(work) / locate_s),
        "index_build_s": round(build_s, 3),
        "index_rss_delta_mib": round(rss_delta / 2**20, 2),
        "index_tracemalloc_mib": round(traced_now / 2**20, 2),
        "index_tracemalloc_peak_mib": round(traced_peak / 2**20, 2),
        "match": dict(matches.most_common()),
        "outcome": dict(outcomes.most_common()),
        "snap_cap_m": args.snap_cap_m,
        "pinned_cpu": pinned,
        "python": platform.python_version(),
        "shapely": shapely.__version__,
        "geos": shapely.geos_version_string,
        "machine": platform.machine(),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"routing benchmark: {result['points']:,} points, seed {args.seed}, CPU {pinned}")
    print(f"  route():  {result['decisions_per_s']:>9,} decisions/s  ({result['us_per_decision']} us each)")
    print(f"  locate(): {result['locate_per_s']:>9,} points/s")
    print(
        f"  index:    built in {result['index_build_s']} s, RSS +{result['index_rss_delta_mib']} MiB "
        f"(tracemalloc {result['index_tracemalloc_mib']} MiB, peak {result['index_tracemalloc_peak_mib']} MiB)"
    )
    print(f"  matches:  {result['match']}")
    print(f"  outcomes: {result['outcome']}")
    print(f"  Python {result['python']}, shapely {result['shapely']}, GEOS {result['geos']}")


if __name__ == "__main__":
    main()
