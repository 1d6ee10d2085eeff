"""Benchmark of the photo pipeline alone: CPU per photo to make a citizen's photo safe to store.

docs/architecture.md ("Rules") requires every photo to be decoded and re-encoded without metadata (EXIF, GPS) before
storage, so this cost is paid once per photo report whatever else the system does; it bounds photo reports/s per core.
The photos are the load generator's (bench/workload.py: distinct 150-300 KB, 1600x1200 JPEGs with GPS EXIF).

    python bench/bench_photos.py                  # 16 photos, 5 rounds
    python bench/bench_photos.py --photos 32 --rounds 10 --json
    python bench/bench_photos.py --compare        # issue 19: the stored size/quality before and after, back to back
    python bench/bench_photos.py --decode-scales  # the floor: decoding alone at each scale libjpeg offers

`--compare` runs the policy before issue 19 (2560 px cap, optimised Huffman tables) and the current one alternately
(before, after, before, after) on the bench's photos and on 12 MP phone originals (4000x3000 and 4032x3024, ~3.5 MB,
EXIF orientation 6 and GPS), with the intake's image memory reuse on, and prints CPU per photo and stored size.

`--decode-scales` prints what decoding alone costs at each scale libjpeg's draft mode offers (1, 1/2, 1/4, 1/8) for
the same photos: whatever the stored size, a photo cannot be re-encoded for less than its decode at the scale that
size needs, and the entropy decoding of the whole file is paid at every scale.
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
from services.intake.photos import DEFAULT_POLICY, PhotoPolicy, sanitize_photo  # noqa: E402
from tests.photo_fixtures import realistic_photo_jpeg  # noqa: E402

#: the stored photo before issue 19: a 2560 px cap, quality 85, optimised Huffman tables
BEFORE_ISSUE_19 = PhotoPolicy(output_max_side=2560, jpeg_quality=85, jpeg_optimize=True)


def cpu_ms_per_photo(photos: list[bytes], rounds: int, work: object) -> float:
    started = time.process_time()
    for _ in range(rounds):
        for photo in photos:
            work(photo)  # type: ignore[operator]
    return (time.process_time() - started) / (rounds * len(photos)) * 1000


def decode_only(photo: bytes) -> None:
    with Image.open(io.BytesIO(photo)) as image:
        image.load()


def phone_original(size: tuple[int, int], seed: int) -> bytes:
    """A 12 MP camera-like JPEG of ~3.5 MB with an EXIF block (orientation 6: held upright, GPS) after the SOI."""
    cache = Path("/tmp/jaklapor-bench-photos") / f"phone-{size[0]}x{size[1]}-{seed}.jpg"
    if cache.exists():
        return cache.read_bytes()
    data = realistic_photo_jpeg(3500, seed, size)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to show
    exif[0x8825] = {1: "S", 2: (6.0, 10.0, 30.0), 3: "E", 4: (106.0, 49.0, 10.0)}  # GPSInfo: in Jakarta
    block = exif.tobytes()
    data = data[:2] + b"\xff\xe1" + (len(block) + 2).to_bytes(2, "big") + block + data[2:]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(data)
    return data


def phone_originals() -> dict[str, list[bytes]]:
    """Two 12 MP originals of each of the two common phone sizes."""
    return {
        "12 MP 4000x3000": [phone_original((4000, 3000), 1), phone_original((4000, 3000), 2)],
        "12 MP 4032x3024": [phone_original((4032, 3024), 3), phone_original((4032, 3024), 4)],
    }


def compare(photos: list[bytes], rounds: int) -> dict[str, object]:
    """Before/after issue 19 on the bench's photos and 12 MP originals, alternating, image memory reuse on."""
    keep_image_memory()
    sets = {
        "bench 1600x1200": photos,
        "citizen app 2048x1536": [
            realistic_photo_jpeg(300, 11, (2048, 1536)),
            realistic_photo_jpeg(300, 12, (2048, 1536)),
        ],
        **phone_originals(),
    }
    policies = {"before (2560 px, optimize)": BEFORE_ISSUE_19, "after (current policy)": DEFAULT_POLICY}
    out: dict[str, object] = {}
    for set_name, items in sets.items():
        set_rounds = rounds if len(items) > 4 else max(rounds * 2, 6)
        for policy in policies.values():  # warm up
            sanitize_photo(items[0], policy)
        for label, policy in policies.items():
            stored = [sanitize_photo(p, policy) for p in items]
            out[f"{set_name} | {label}"] = {
                "source_kb": round(sum(map(len, items)) / len(items) / 1024, 1),
                "stored_size": f"{stored[0].width}x{stored[0].height}",
                "stored_kb": round(sum(len(s.content) for s in stored) / len(stored) / 1024, 1),
                "cpu_ms": [],
            }
        for _ in range(2):  # back to back, alternating
            for label, policy in policies.items():
                ms = cpu_ms_per_photo(items, set_rounds, lambda p, policy=policy: sanitize_photo(p, policy))
                out[f"{set_name} | {label}"]["cpu_ms"].append(round(ms, 2))  # type: ignore[index]
    return out


DRAFT_SCALES = (1, 2, 4, 8)


def decoded_at(photo: bytes, scale: int) -> str:
    """Decode `photo` at 1/`scale` (libjpeg's draft mode); its decoded size."""
    with Image.open(io.BytesIO(photo)) as image:
        if scale > 1:
            image.draft(None, (image.width // scale, image.height // scale))
        image.load()
        return f"{image.width}x{image.height}"


def decode_scales(photos: list[bytes], rounds: int) -> dict[str, dict[str, object]]:
    """CPU per photo of decoding alone at each draft scale, for the bench's photos and 12 MP originals."""
    keep_image_memory()
    sets = {
        "bench 1600x1200": photos,
        **phone_originals(),
    }
    out: dict[str, dict[str, object]] = {}
    for set_name, items in sets.items():
        set_rounds = rounds if len(items) > 4 else max(rounds * 2, 6)
        row: dict[str, object] = {"source_kb": round(sum(map(len, items)) / len(items) / 1024, 1)}
        for scale in DRAFT_SCALES:
            size = decoded_at(items[0], scale)  # also the warm-up
            best = min(cpu_ms_per_photo(items, set_rounds, lambda p, s=scale: decoded_at(p, s)) for _ in range(3))
            row[f"1/{scale}"] = {"decoded": size, "cpu_ms": round(best, 2)}
        out[set_name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    parser.add_argument("--compare", action="store_true", help="the policy before issue 19 against the current one")
    parser.add_argument("--decode-scales", action="store_true", help="decoding alone at each libjpeg draft scale")
    args = parser.parse_args(argv)

    photos = photo_pool(args.photos)
    if args.decode_scales:
        scales = decode_scales(photos, args.rounds)
        print(f"{'photos':<18} {'source KB':>9}  " + "  ".join(f"{'1/' + str(s):>20}" for s in DRAFT_SCALES))
        for name, row in scales.items():
            cells = [row[f"1/{s}"] for s in DRAFT_SCALES]
            print(
                f"{name:<18} {row['source_kb']:>9}  "
                + "  ".join(f"{c['decoded']:>10} {c['cpu_ms']:>6} ms" for c in cells)  # type: ignore[index]
            )
        print("(decoding alone, best of 3, CPU ms per photo; every scale pays the entropy decoding of the whole file)")
        if args.json:
            print(json.dumps(scales, indent=2))
        return 0
    if args.compare:
        rows = compare(photos, args.rounds)
        print(f"{'photos | policy':<50} {'source KB':>9} {'stored':>10} {'stored KB':>9}  CPU ms per photo (runs)")
        for name, row in rows.items():
            r = row  # type: ignore[assignment]
            print(f"{name:<50} {r['source_kb']:>9} {r['stored_size']:>10} {r['stored_kb']:>9}  {r['cpu_ms']}")
        if args.json:
            print(json.dumps(rows, indent=2))
        return 0
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
