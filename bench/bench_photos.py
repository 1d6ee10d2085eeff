"""Benchmark of the photo pipeline alone: CPU per photo to make a citizen's photo safe to store.

docs/architecture.md ("Rules") requires every photo to be decoded and re-encoded without metadata (EXIF, GPS) before
storage, so this cost is paid once per photo report whatever else the system does; it bounds photo reports/s per core.
The photos are the load generator's (bench/workload.py: distinct 150-300 KB, 1600x1200 JPEGs with GPS EXIF).

    python bench/bench_photos.py                  # 16 photos, 5 rounds
    python bench/bench_photos.py --photos 32 --rounds 10 --json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from bench.workload import photo_pool  # noqa: E402
from services.intake.image_memory import keep_image_memory  # noqa: E402
from services.intake.photos import sanitize_photo  # noqa: E402


def cpu_ms_per_photo(photos: list[bytes], rounds: int, work: object) -> float:
    started = time.process_time()
    for _ in range(rounds):
        for photo in photos:
            work(photo)  # type: ignore[operator]
    return (time.process_time() - started) / (rounds * len(photos)) * 1000


def decode_only(photo: bytes) -> None:
    with Image.open(io.BytesIO(photo)) as image:
        image.load()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args(argv)

    photos = photo_pool(args.photos)
    for photo in photos:  # warm up: imports, libjpeg tables
        sanitize_photo(photo)
    sizes = sorted({Image.open(io.BytesIO(photo)).size for photo in photos})
    # first as a fresh process allocates (keep_image_memory cannot be undone), then as the intake runs it
    fresh_ms = cpu_ms_per_photo(photos, args.rounds, sanitize_photo)
    fresh_decode_ms = cpu_ms_per_photo(photos, args.rounds, decode_only)
    keep_image_memory()
    sanitize_ms = cpu_ms_per_photo(photos, args.rounds, sanitize_photo)
    decode_ms = cpu_ms_per_photo(photos, args.rounds, decode_only)
    cores = os.cpu_count() or 1
    result = {
        "photos": len(photos),
        "mean_kb": round(sum(map(len, photos)) / len(photos) / 1024, 1),
        "sizes": [f"{w}x{h}" for w, h in sizes],
        "sanitize_cpu_ms_per_photo_fresh_memory": round(fresh_ms, 2),
        "decode_only_cpu_ms_per_photo_fresh_memory": round(fresh_decode_ms, 2),
        "sanitize_cpu_ms_per_photo": round(sanitize_ms, 2),
        "decode_only_cpu_ms_per_photo": round(decode_ms, 2),
        "photos_per_s_per_core": round(1000 / sanitize_ms, 1),
        "cores": cores,
        "ceiling_photo_reports_per_s_all_cores": round(cores * 1000 / sanitize_ms, 1),
        "python": platform.python_version(),
        "pillow": Image.__version__,
    }
    print(
        f"{len(photos)} photos ({result['mean_kb']} KB mean, {', '.join(result['sizes'])}), {args.rounds} rounds:\n"
        f"  sanitize (decode, orient, re-encode without metadata), memory freed after each photo: {fresh_ms:.2f} ms"
        f" CPU per photo (decoding alone {fresh_decode_ms:.2f} ms)\n"
        f"  the same with the intake's image memory reuse (image_memory.py): {sanitize_ms:.2f} ms CPU per photo"
        f" = {1000 / sanitize_ms:.1f} photos/s per core\n"
        f"  of which decoding alone: {decode_ms:.2f} ms\n"
        f"  ceiling from this step alone on {cores} cores: {cores * 1000 / sanitize_ms:.0f} photo reports/s"
        " (with nothing else running: no HTTP, no storage, no broker)"
    )
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
