"""The automatic evidence checks: GPS distance and capture time read before the metadata is stripped, the perceptual
hash against the citizen's photos, the verdict in words; only the verdict is kept."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from services.intake.evidence import (
    FAR,
    MIDDLE,
    NEAR,
    NO_GPS,
    NO_TIME,
    SAME_AS_CITIZEN,
    SAME_PHOTO_MAX_BITS,
    TAKEN_AFTER,
    TAKEN_BEFORE,
    Capture,
    check_evidence,
    describe,
    dhash,
    distance_m,
    hash_distance,
)
from services.intake.photos import sanitize_photo
from services.intake.tests.evidence_photos import north_of, photo, resized_copy

REPORT = {"lat": -6.2441, "lon": 106.8013}
FILED = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def check(evidence: bytes, citizen: list[bytes] = ()) -> object:  # type: ignore[assignment]
    clean = sanitize_photo(evidence)
    hashes = [sanitize_photo(p).phash for p in citizen]
    return check_evidence(clean.capture, clean.phash, REPORT, FILED, hashes)


@pytest.mark.parametrize(
    ("metres", "verdict"), [(0, NEAR), (35, NEAR), (99, NEAR), (250, MIDDLE), (499, MIDDLE), (3200, FAR)]
)
def test_the_distance_to_the_report_is_measured_from_the_photos_gps(metres: float, verdict: str) -> None:
    result = check(photo(1, north_of(REPORT["lat"], REPORT["lon"], metres), FILED + timedelta(days=2)))
    assert result.distance_m == pytest.approx(metres, abs=1.0)
    assert result.verdicts[0] == verdict
    assert result.matched is (verdict == NEAR)


def test_a_photo_near_the_report_taken_after_it_matches_and_reads_as_such() -> None:
    result = check(photo(1, north_of(REPORT["lat"], REPORT["lon"], 35), FILED + timedelta(days=2)))
    assert result.verdicts == [NEAR, TAKEN_AFTER] and result.matched
    assert result.taken_after_seconds == pytest.approx(2 * 86400, abs=1)
    assert describe(result) == "diambil 35 m dari lokasi laporan, 2 hari setelah laporan"
    assert describe(result, "en") == "taken 35 m from the report, 2 days after the report"


def test_far_away_reads_in_kilometres() -> None:
    result = check(photo(1, north_of(REPORT["lat"], REPORT["lon"], 3200), FILED + timedelta(hours=5)))
    assert describe(result) == "jauh dari lokasi (3,2 km), 5 jam setelah laporan"
    assert not result.matched


def test_a_photo_without_gps_or_time_cannot_match() -> None:
    result = check(photo(1))
    assert result.verdicts == [NO_GPS, NO_TIME]
    assert (result.distance_m, result.taken_after_seconds, result.matched) == (None, None, False)
    assert describe(result) == "tanpa GPS, tanpa waktu pengambilan"


def test_a_photo_taken_before_the_report_was_filed_is_flagged() -> None:
    result = check(photo(1, north_of(REPORT["lat"], REPORT["lon"], 10), FILED - timedelta(days=3)))
    assert TAKEN_BEFORE in result.verdicts and not result.matched
    assert describe(result) == "diambil 10 m dari lokasi laporan, diambil sebelum laporan dibuat (3 hari)"


def test_a_few_minutes_of_clock_drift_is_not_before() -> None:
    result = check(photo(1, north_of(REPORT["lat"], REPORT["lon"], 10), FILED - timedelta(minutes=5)))
    assert TAKEN_AFTER in result.verdicts


def test_the_citizens_own_photo_sent_back_resized_and_recompressed_is_recognised() -> None:
    citizen = photo(7)
    result = check(resized_copy(citizen), [photo(3), citizen])
    assert SAME_AS_CITIZEN in result.verdicts and not result.matched
    assert result.citizen_photo_distance is not None and result.citizen_photo_distance <= 4
    assert describe(result).endswith("sama dengan foto pelapor")


def test_other_scenes_are_far_apart_in_hash() -> None:
    hashes = [sanitize_photo(photo(seed)).phash for seed in range(6)]
    for i, a in enumerate(hashes):
        for b in hashes[i + 1 :]:
            assert hash_distance(a, b) > SAME_PHOTO_MAX_BITS
    result = check(photo(1, north_of(REPORT["lat"], REPORT["lon"], 20), FILED + timedelta(hours=1)), [photo(2)])
    assert SAME_AS_CITIZEN not in result.verdicts and result.matched


def greyed_first_dhash(im: Image.Image) -> str:
    """The hash as it was computed before issue 19: the whole photo greyed, then averaged down to 9×8."""
    pixels = im.convert("L").resize((9, 8), Image.Resampling.BOX).tobytes()
    bits = "".join("1" if pixels[r * 9 + c] > pixels[r * 9 + c + 1] else "0" for r in range(8) for c in range(8))
    return f"{int(bits, 2):016x}"


def test_hashes_stored_before_the_faster_hash_still_match() -> None:
    # Reports filed earlier keep the hash of their photos: today's evidence photo is compared with those.
    for seed in range(8):
        with Image.open(io.BytesIO(sanitize_photo(photo(seed)).content)) as im:
            im.load()
            assert hash_distance(dhash(im), greyed_first_dhash(im)) <= 2


def test_the_capture_stays_in_memory_and_the_clean_photo_has_no_metadata() -> None:
    evidence = photo(1, north_of(REPORT["lat"], REPORT["lon"], 35), FILED + timedelta(days=2))
    clean = sanitize_photo(evidence)
    assert clean.capture is not None and clean.capture.lat is not None
    assert "-6.24" not in repr(clean.capture)  # a stray log line does not print where the photo was taken
    assert b"Exif" not in clean.content and b"GPS" not in clean.content
    dumped = check_evidence(clean.capture, clean.phash, REPORT, FILED, []).model_dump()
    assert set(dumped) == {"verdicts", "distance_m", "taken_after_seconds", "citizen_photo_distance", "matched"}


def test_broken_or_missing_exif_never_refuses_a_photo() -> None:
    assert check_evidence(None, None, REPORT, FILED, ["0" * 16]).verdicts == [NO_GPS, NO_TIME]
    assert check_evidence(Capture(lat=1.0), "f" * 16, REPORT, FILED, []).verdicts == [NO_GPS, NO_TIME]


def test_haversine_distance() -> None:
    # Monas to Bundaran HI: about 2.1 km
    assert distance_m(-6.175392, 106.827153, -6.194957, 106.823067) == pytest.approx(2220, rel=0.03)
