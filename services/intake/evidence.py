"""Automatic checks of an OPD's evidence photo, with no I/O: where and when it was taken (read from its EXIF before
photos.py strips every piece of metadata), and whether it is the citizen's own photo sent back (a perceptual hash).

The raw facts (`Capture`: the photo's coordinates and capture time) live only in memory while the upload is handled;
what is kept and published is the verdict (`EvidenceCheck`): codes, a distance in metres and a time difference in
seconds. The thresholds are defined here, once:

- near: taken within NEAR_METRES (100 m) of the report's location, a street-level fix on a phone's GPS (typically
  5-20 m outdoors, worse between buildings); far: beyond FAR_METRES (500 m), clearly another place; in between the
  verifier reads the distance ("agak jauh").
- taken before the report: more than CLOCK_TOLERANCE (10 minutes: a phone clock's drift, a time zone guessed) before
  the report was submitted. A capture time without a time zone is read as Jakarta's (WIB), where the officers are.
- same as the citizen's photo: a difference-hash (dHash, 64 bits) at most SAME_PHOTO_MAX_BITS (10) bits from one of
  the citizen's photos; a re-encoded, resized or re-compressed copy stays within ~4 bits, unrelated photos sit
  around 32.

The evidence matched when every photo is near, taken after the report, and none is the citizen's own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from PIL import ExifTags, Image

from jaklapor.events import EvidenceCheck
from jaklapor.vocabulary import JAKARTA_TZ, utc

NEAR_METRES = 100.0
FAR_METRES = 500.0
CLOCK_TOLERANCE = timedelta(minutes=10)
SAME_PHOTO_MAX_BITS = 10
HASH_SIZE = 8  # 8×8 comparisons: 64 bits, written as 16 hex digits

# the verdict codes
NEAR, MIDDLE, FAR, NO_GPS = "near", "middle", "far", "no_gps"
TAKEN_AFTER, TAKEN_BEFORE, NO_TIME = "taken_after", "taken_before", "no_time"
SAME_AS_CITIZEN = "same_as_citizen_photo"
VERDICTS = (NEAR, MIDDLE, FAR, NO_GPS, TAKEN_AFTER, TAKEN_BEFORE, NO_TIME, SAME_AS_CITIZEN)

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Capture:
    """Where and when a photo says it was taken. Transient: never stored, never logged, never sent."""

    lat: float | None = None
    lon: float | None = None
    taken_at: datetime | None = None

    def __repr__(self) -> str:  # a stray log line must not print the location
        return "Capture(<withheld>)"


# ---- reading the photo -----------------------------------------------------------------------------------------------


def read_capture(im: Image.Image) -> Capture:
    """The GPS position and capture time in an opened image's EXIF (header only, no pixel decoded); an empty
    Capture for anything missing or malformed: a broken tag never refuses an upload."""
    if im.format not in ("JPEG", "MPO", "WEBP"):
        # phones write EXIF in JPEG (and WebP); a PNG's getexif() would decode the whole image before the checks
        return Capture()
    try:
        exif = im.getexif()
    except Exception:  # hostile or broken EXIF: the photo is still a photo
        return Capture()
    lat = lon = None
    taken_at = None
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "S", 90)
        lon = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "W", 180)
        if lat is None or lon is None:
            lat = lon = None
    except Exception:
        lat = lon = None
    try:
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
        text = exif_ifd.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
        offset = exif_ifd.get(ExifTags.Base.OffsetTimeOriginal)
        taken_at = _moment(text, offset)
    except Exception:
        taken_at = None
    return Capture(lat, lon, taken_at)


def _degrees(dms: Any, ref: Any, negative_ref: str, limit: float) -> float | None:
    if not isinstance(dms, tuple | list) or len(dms) != 3:
        return None
    degrees, minutes, seconds = (float(part) for part in dms)
    value = degrees + minutes / 60 + seconds / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if isinstance(ref, str) and ref.strip().upper() == negative_ref:
        value = -value
    if not math.isfinite(value) or abs(value) > limit:
        return None
    return value


def _moment(text: Any, offset: Any) -> datetime | None:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    if not isinstance(text, str):
        return None
    naive = datetime.strptime(text.strip().rstrip("\x00")[:19], "%Y:%m:%d %H:%M:%S")
    zone: timezone = JAKARTA_TZ
    if isinstance(offset, str) and len(offset) >= 6 and offset[0] in "+-":
        sign = 1 if offset[0] == "+" else -1
        zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    return naive.replace(tzinfo=zone)


def dhash(im: Image.Image) -> str:
    """The difference hash of an image: 64 bits (is each pixel of a 9×8 grey thumbnail brighter than its right
    neighbour), as 16 hex digits. Survives re-encoding, resizing and mild colour changes; not cropping."""
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    # Average the colour image down first, then grey only the 72 pixels left: greying the whole photo first cost
    # 2.8 of its 3.9 ms per 1600x1200 photo (issue 19). reducing_gap=30 lets Pillow start with reduce(), a cheap
    # integer box average, down to about 30 times the 9x8 (320x240 for 1600x1200). Grey is linear in R, G and B,
    # so only rounding differs from greying first: at most 2-3 of 64 bits on 104 test and bench photos, as much
    # as a plain box average of the colour image moves it, and far inside SAME_PHOTO_MAX_BITS.
    small = im.resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.BOX, reducing_gap=30.0).convert("L")
    pixels = list(small.tobytes())  # one byte per pixel (mode L)
    bits = 0
    for row in range(HASH_SIZE):
        for col in range(HASH_SIZE):
            left = pixels[row * (HASH_SIZE + 1) + col]
            right = pixels[row * (HASH_SIZE + 1) + col + 1]
            bits = (bits << 1) | (1 if left > right else 0)
    return f"{bits:016x}"


def hash_distance(a: str, b: str) -> int:
    """How many of the 64 bits differ."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


# ---- the verdict ---------------------------------------------------------------------------------------------------


def check_evidence(
    capture: Capture | None,
    photo_hash: str | None,
    report_location: dict[str, float],
    report_submitted_at: datetime,
    citizen_hashes: Iterable[str],
) -> EvidenceCheck:
    """The verdict on one evidence photo: distance and time against the report, hash against the citizen's photos."""
    capture = capture or Capture()
    verdicts: list[str] = []
    metres = None
    if capture.lat is not None and capture.lon is not None:
        metres = round(distance_m(report_location["lat"], report_location["lon"], capture.lat, capture.lon), 1)
        verdicts.append(NEAR if metres <= NEAR_METRES else FAR if metres > FAR_METRES else MIDDLE)
    else:
        verdicts.append(NO_GPS)
    after = None
    if capture.taken_at is not None:
        delta = utc(capture.taken_at) - utc(report_submitted_at)
        after = int(delta.total_seconds())
        verdicts.append(TAKEN_BEFORE if delta < -CLOCK_TOLERANCE else TAKEN_AFTER)
    else:
        verdicts.append(NO_TIME)
    closest = None
    if photo_hash:
        distances = [hash_distance(photo_hash, other) for other in citizen_hashes if other]
        closest = min(distances) if distances else None
    if closest is not None and closest <= SAME_PHOTO_MAX_BITS:
        verdicts.append(SAME_AS_CITIZEN)
    matched = NEAR in verdicts and TAKEN_AFTER in verdicts and SAME_AS_CITIZEN not in verdicts
    return EvidenceCheck(
        verdicts=verdicts,
        distance_m=metres,
        taken_after_seconds=after,
        citizen_photo_distance=closest,
        matched=matched,
    )


def all_matched(checks: Sequence[EvidenceCheck]) -> bool:
    return bool(checks) and all(check.matched for check in checks)


# ---- in words, for the verifier ----------------------------------------------------------------------------------


def _distance_text(metres: float, lang: str) -> str:
    if metres < 1000:
        return f"{round(metres)} m"
    km = f"{metres / 1000:.1f}"
    return f"{km.replace('.', ',') if lang == 'id' else km} km"


def _duration_text(seconds: int, lang: str) -> str:
    seconds = abs(seconds)
    for size, id_word, en_word in ((86400, "hari", "day"), (3600, "jam", "hour"), (60, "menit", "minute")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {id_word}" if lang == "id" else f"{count} {en_word}{'s' if count != 1 else ''}"
    return "kurang dari 1 menit" if lang == "id" else "less than a minute"


def describe(check: EvidenceCheck, lang: str = "id") -> str:
    """The verdict as the verifier reads it: "diambil 35 m dari lokasi laporan, 2 hari setelah laporan"."""
    id_ = lang == "id"
    parts: list[str] = []
    codes = set(check.verdicts)
    if check.distance_m is None:
        parts.append("tanpa GPS" if id_ else "no GPS")
    elif FAR in codes:
        where = _distance_text(check.distance_m, lang)
        parts.append(f"jauh dari lokasi ({where})" if id_ else f"far from the report ({where})")
    else:
        where = _distance_text(check.distance_m, lang)
        parts.append(f"diambil {where} dari lokasi laporan" if id_ else f"taken {where} from the report")
    if check.taken_after_seconds is None:
        parts.append("tanpa waktu pengambilan" if id_ else "no capture time")
    elif TAKEN_BEFORE in codes:
        ago = _duration_text(check.taken_after_seconds, lang)
        parts.append(f"diambil sebelum laporan dibuat ({ago})" if id_ else f"taken before the report was filed ({ago})")
    else:
        later = _duration_text(check.taken_after_seconds, lang)
        parts.append(f"{later} setelah laporan" if id_ else f"{later} after the report")
    if SAME_AS_CITIZEN in codes:
        parts.append("sama dengan foto pelapor" if id_ else "same as the citizen's photo")
    return ", ".join(parts)


def summary(check: EvidenceCheck) -> dict[str, Any]:
    """One check as the verifier's API shows it: the stored verdict and its words in both languages."""
    return {**check.model_dump(), "text": {"id": describe(check, "id"), "en": describe(check, "en")}}
