"""The automatic evidence checks (services/intake/evidence.py): what they add to a photo's sanitising, and how well the
perceptual hash tells the citizen's own photo sent back from another photo of the place.

- cost: sanitising a phone-sized JPEG with GPS with and without the checks (EXIF read before stripping, 64-bit dHash
  of the clean image), median of N runs each, on one core;
- hash: bits between each photo and its resized, re-compressed copy (as a messenger forwards it), and between
  different scenes, against the threshold SAME_PHOTO_MAX_BITS.

    python bench/bench_evidence.py             # 20 photos, 30 timing runs
    python bench/bench_evidence.py --photos 50 --runs 50
"""

from __future__ import annotations

import argparse
import io
import itertools
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.intake import photos as photo_module
from services.intake.evidence import SAME_PHOTO_MAX_BITS, dhash, hash_distance, read_capture
from tests import photo_fixtures as fx


def timed(function, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    scene = Image.open(io.BytesIO(fx.realistic_photo_jpeg(target_kb=900, seed=1, size=(4000, 3000))))
    phone = fx.encode(scene, "JPEG", quality=88, exif=fx.gps_exif(*fx.JAKARTA))
    with_checks = timed(lambda: photo_module.sanitize_photo(phone), args.runs)
    # the same pipeline without the two additions, by swapping them for no-ops in the module
    saved = photo_module.read_capture, photo_module.dhash
    photo_module.read_capture, photo_module.dhash = (lambda im: None), (lambda im: "")  # type: ignore[assignment]
    try:
        without = timed(lambda: photo_module.sanitize_photo(phone), args.runs)
    finally:
        photo_module.read_capture, photo_module.dhash = saved
    opened = Image.open(io.BytesIO(phone))
    exif_ms = timed(lambda: read_capture(Image.open(io.BytesIO(phone))), args.runs)
    clean = Image.open(io.BytesIO(photo_module.sanitize_photo(phone).content))
    clean.load()
    hash_ms = timed(lambda: dhash(clean), args.runs)
    print(f"photo: {opened.width}x{opened.height} JPEG, {len(phone) / 1e6:.1f} MB, median of {args.runs} runs")
    print(f"sanitise without checks : {without:8.1f} ms")
    print(f"sanitise with checks    : {with_checks:8.1f} ms  (+{with_checks - without:.1f} ms)")
    print(f"  EXIF GPS + time read  : {exif_ms:8.2f} ms")
    print(f"  dHash of clean image  : {hash_ms:8.2f} ms")

    hashes, copies = [], []
    for seed in range(args.photos):
        data = fx.realistic_photo_jpeg(target_kb=60, seed=100 + seed, size=(800, 600))
        im = Image.open(io.BytesIO(data))
        copy = fx.encode(im.resize((400, 300)), "JPEG", quality=55)
        hashes.append(photo_module.sanitize_photo(data).phash)
        copies.append(photo_module.sanitize_photo(copy).phash)
    same = [hash_distance(a, b) for a, b in zip(hashes, copies, strict=True)]
    other = [hash_distance(a, b) for a, b in itertools.combinations(hashes, 2)]
    median_same = statistics.median(same)
    print(f"hash bits, photo vs its resized q55 copy ({len(same)} pairs): max {max(same)}, median {median_same}")
    print(f"hash bits, different scenes ({len(other)} pairs): min {min(other)}, median {statistics.median(other)}")
    recognised = sum(d <= SAME_PHOTO_MAX_BITS for d in same)
    mistaken = sum(d <= SAME_PHOTO_MAX_BITS for d in other)
    print(
        f"threshold SAME_PHOTO_MAX_BITS = {SAME_PHOTO_MAX_BITS}: copies recognised {recognised}/{len(same)}, ", end=""
    )
    print(f"different scenes taken for a copy {mistaken}/{len(other)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
