"""Evidence photos for the verification tests: photo-like JPEGs with a phone's EXIF (tests/photo_fixtures.gps_exif)
taken a known distance from a point, at a known moment, or with no GPS at all."""

from __future__ import annotations

import functools
import io
from datetime import datetime

from PIL import Image

from jaklapor.vocabulary import JAKARTA_TZ
from tests import photo_fixtures as fx

METRES_PER_DEGREE_LAT = 111_195.0


@functools.cache
def scene(seed: int) -> bytes:
    """A photo-like scene, different for each seed."""
    return fx.realistic_photo_jpeg(target_kb=40, seed=seed, size=(640, 480))


def exif_time(moment: datetime) -> str:
    """A moment as a phone writes DateTimeOriginal: local (Jakarta) time, no zone."""
    return moment.astimezone(JAKARTA_TZ).strftime("%Y:%m:%d %H:%M:%S")


def north_of(lat: float, lon: float, metres: float) -> tuple[float, float]:
    return lat + metres / METRES_PER_DEGREE_LAT, lon


def photo(seed: int, at: tuple[float, float] | None = None, taken: datetime | None = None) -> bytes:
    """The scene of `seed` as a JPEG taken at `at` (lat, lon) at `taken`; no GPS without `at`, no time without
    `taken`."""
    im = Image.open(io.BytesIO(scene(seed)))
    if at is None and taken is None:
        return fx.encode(im, "JPEG", quality=90)
    exif = fx.gps_exif(*(at or (0.0, 0.0)), taken=exif_time(taken) if taken else "2024:05:01 08:30:00")
    if at is None:
        del exif[0x8825]  # GPSInfo
    if taken is None:
        del exif[0x0132]  # DateTime
        exif.get_ifd(0x8769).pop(0x9003, None)  # DateTimeOriginal
    return fx.encode(im, "JPEG", quality=90, exif=exif)


def resized_copy(data: bytes, scale: float = 0.5, quality: int = 60) -> bytes:
    """The same photo made smaller and re-compressed, as a messenger app forwards it (no metadata)."""
    im = Image.open(io.BytesIO(data))
    small = im.resize((int(im.width * scale), int(im.height * scale)))
    return fx.encode(small, "JPEG", quality=quality)
