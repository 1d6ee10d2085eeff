"""The routing domain: locating points on the kelurahan polygons and routing decisions.

Coordinates of places are well-known landmarks, each checked against the polygons of
jaklapor/reference/jakarta_kelurahan.geojson (the expected kelurahan is what that data says).
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import pytest
import shapely
import yaml
from shapely.geometry import shape

from jaklapor.messaging import opd_queue
from jaklapor.reference import (
    DIRECTORY_PATH,
    Directory,
    KelurahanInfo,
    build_directory,
    load_areas,
    load_directory,
    load_kelurahan_geojson,
)
from jaklapor.vocabulary import note_triage
from services.routing.domain import (
    DEFAULT_SNAP_CAP_M,
    AreaIndex,
    AreaMatch,
    Outside,
    Routed,
    Unroutable,
    distance_id,
    route,
    routing_key_for,
    triage_routing_key,
)

# a sliver where Lenteng Agung (Jakarta Selatan) and Baru (Pasar Rebo, Jakarta Timur) overlap
OVERLAP = (-6.3214542734375, 106.84004142815854)
# a thin gap between Sunter Agung and its neighbours (inside the union's outline, in no polygon)
GAP = (-6.1471185, 106.86815117)
# due north of the Ancol shore in the data: ~290 m and ~1990 m from the nearest polygon
OFF_COAST_300M = (-6.1156, 106.83)
OFF_COAST_2KM = (-6.0986, 106.83)


@pytest.fixture(scope="session")
def index() -> AreaIndex:
    return AreaIndex.default()  # built once per process


@pytest.fixture(scope="session")
def directory() -> Directory:
    return load_directory()


@pytest.fixture(scope="session")
def raw_polygons() -> list[tuple[str, Any]]:
    """(code, lon/lat geometry) straight from the file, to check the index against."""
    return [(f["properties"]["code"], shape(f["geometry"])) for f in load_kelurahan_geojson()["features"]]


def containing(raw_polygons: list[tuple[str, Any]], lat: float, lon: float) -> list[str]:
    return [code for code, g in raw_polygons if g.intersects(shapely.Point(lon, lat))]


def geodesic_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Vincenty's inverse formula on the WGS84 ellipsoid (reference distances, ~mm accuracy)."""
    a, f = 6_378_137.0, 1 / 298.257223563
    b = (1 - f) * a
    big_l = math.radians(lon2 - lon1)
    u1 = math.atan((1 - f) * math.tan(math.radians(lat1)))
    u2 = math.atan((1 - f) * math.tan(math.radians(lat2)))
    su1, cu1, su2, cu2 = math.sin(u1), math.cos(u1), math.sin(u2), math.cos(u2)
    lam = big_l
    for _ in range(200):
        sl, cl = math.sin(lam), math.cos(lam)
        ss = math.hypot(cu2 * sl, cu1 * su2 - su1 * cu2 * cl)
        cs = su1 * su2 + cu1 * cu2 * cl
        sig = math.atan2(ss, cs)
        sa = cu1 * cu2 * sl / ss
        c2a = 1 - sa * sa
        c2sm = cs - 2 * su1 * su2 / c2a if c2a else 0.0
        c = f / 16 * c2a * (4 + f * (4 - 3 * c2a))
        previous = lam
        lam = big_l + (1 - c) * f * sa * (sig + c * ss * (c2sm + c * cs * (-1 + 2 * c2sm**2)))
        if abs(lam - previous) < 1e-12:
            break
    usq = c2a * (a * a - b * b) / (b * b)
    big_a = 1 + usq / 16384 * (4096 + usq * (-768 + usq * (320 - 175 * usq)))
    big_b = usq / 1024 * (256 + usq * (-128 + usq * (74 - 47 * usq)))
    ds = (
        big_b
        * ss
        * (c2sm + big_b / 4 * (cs * (-1 + 2 * c2sm**2) - big_b / 6 * c2sm * (-3 + 4 * ss**2) * (-3 + 4 * c2sm**2)))
    )
    return b * big_a * (sig - ds)


def topic_matches(binding: str, key: str) -> bool:
    """AMQP topic semantics: `*` is one word, `#` zero or more words."""
    pattern = ""
    for i, word in enumerate(binding.split(".")):
        if word == "#":
            pattern += r"(\.[^.]+)*" if i else r"([^.]+(\.[^.]+)*)?"
        else:
            part = "[^.]+" if word == "*" else re.escape(word)
            pattern += ("\\." if i else "") + part
    return re.fullmatch(pattern, key) is not None


# -- locating places ----------------------------------------------------------------------------------

PLACES = {
    # name: (lat, lon, kelurahan, kecamatan, kota)
    "Monas": (-6.1754, 106.8272, "Gambir", "Gambir", "Jakarta Pusat"),
    "Blok M": (-6.2443, 106.8001, "Melawai", "Kebayoran Baru", "Jakarta Selatan"),
    # Kota Tua straddles the kota border: Taman Fatahillah is Jakarta Barat, Museum Bahari Utara
    "Taman Fatahillah (Kota Tua)": (-6.1352, 106.8133, "Pinangsia", "Taman Sari", "Jakarta Barat"),
    "Stasiun Jakarta Kota": (-6.1376, 106.8146, "Pinangsia", "Taman Sari", "Jakarta Barat"),
    "Museum Bahari": (-6.1270, 106.8085, "Penjaringan", "Penjaringan", "Jakarta Utara"),
    "Pelabuhan Tanjung Priok": (-6.1043, 106.8866, "Tanjung Priok", "Tanjung Priok", "Jakarta Utara"),
    "Mal Kelapa Gading": (-6.1577, 106.9085, "Kelapa Gading Timur", "Kelapa Gading", "Jakarta Utara"),
    "Stasiun Jatinegara": (-6.2151, 106.8703, "Rawa Bunga", "Jatinegara", "Jakarta Timur"),
    "Pasar Jatinegara": (-6.2194, 106.8679, "Bali Mester", "Jatinegara", "Jakarta Timur"),
    "Pulau Pramuka": (
        -5.7456,
        106.6137,
        "Pulau Panggang",
        "Kepulauan Seribu Utara",
        "Kepulauan Seribu",
    ),
    "Pulau Tidung": (-5.7978, 106.4990, "Pulau Tidung", "Kepulauan Seribu Selatan", "Kepulauan Seribu"),
}


@pytest.mark.parametrize("place", PLACES)
def test_landmarks(index: AreaIndex, place: str) -> None:
    lat, lon, kelurahan, kecamatan, kota = PLACES[place]
    found = index.locate(lat, lon)
    assert isinstance(found, AreaMatch)
    assert (found.kelurahan.name, found.kecamatan, found.kota) == (kelurahan, kecamatan, kota)
    assert found.match == "inside"
    assert found.distance_m == 0.0


@pytest.mark.parametrize(
    ("place", "lat", "lon", "min_km", "max_km"),
    [
        ("Depok", -6.4025, 106.7942, 3, 6),
        ("Bekasi", -6.2383, 106.9756, 2.5, 6),
        ("Tangerang", -6.1783, 106.6319, 5, 7),
        ("Java Sea, between the coast and the islands", -5.9, 106.9, 5, 15),
        ("Bogor", -6.5971, 106.806, 20, 30),
    ],
)
def test_points_outside_jakarta(
    index: AreaIndex, place: str, lat: float, lon: float, min_km: float, max_km: float
) -> None:
    found = index.locate(lat, lon)
    assert isinstance(found, Outside), place
    assert found.reason == "outside_jakarta"
    assert min_km * 1000 <= found.distance_m <= max_km * 1000
    assert found.nearest is not None


def test_far_away_distance_is_a_great_circle(index: AreaIndex) -> None:
    found = index.locate(51.5074, -0.1278)  # London, ~11,700 km
    assert isinstance(found, Outside)
    assert 11_000_000 < found.distance_m < 12_000_000


def test_overlap_gets_one_deterministic_answer(index: AreaIndex, raw_polygons: list[tuple[str, Any]]) -> None:
    lat, lon = OVERLAP
    inside = containing(raw_polygons, lat, lon)
    assert sorted(inside) == ["31.74.09.1004", "31.75.05.1002"]  # really in two polygons
    answers = {index.locate(lat, lon) for _ in range(5)}
    assert len(answers) == 1
    found = answers.pop()
    assert isinstance(found, AreaMatch)
    assert found.match == "overlap"
    assert found.candidates == ("31.74.09.1004", "31.75.05.1002")
    # the rule: the polygon whose boundary is farthest from the point
    depth = {code: g.boundary.distance(shapely.Point(lon, lat)) for code, g in raw_polygons if code in inside}
    assert found.code == max(depth, key=depth.__getitem__) == "31.75.05.1002"

    # and it does not depend on the order of the features
    data = copy.deepcopy(load_kelurahan_geojson())
    data["features"].reverse()
    assert AreaIndex.from_geojson(data).locate(lat, lon) == found


def test_every_overlap_in_a_sample_is_stable(index: AreaIndex, raw_polygons: list[tuple[str, Any]]) -> None:
    """Find real overlaps in the data, check each resolves to one of the candidates, stably."""
    geoms = [g for _, g in raw_polygons]
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="overlaps")
    checked = 0
    for i, j in zip(left, right, strict=True):
        if i >= j or checked >= 25:
            continue
        point = shapely.intersection(geoms[i], geoms[j]).representative_point()
        found = index.locate(point.y, point.x)
        assert isinstance(found, AreaMatch)
        if found.match == "overlap":
            assert found.code in found.candidates
            assert {raw_polygons[i][0], raw_polygons[j][0]} <= set(found.candidates)
            assert index.locate(point.y, point.x) == found
            checked += 1
    assert checked == 25


def test_gap_snaps_to_the_nearest_kelurahan(index: AreaIndex, raw_polygons: list[tuple[str, Any]]) -> None:
    lat, lon = GAP
    assert containing(raw_polygons, lat, lon) == []
    found = index.locate(lat, lon)
    assert isinstance(found, AreaMatch)
    assert found.match == "snapped"
    assert found.kelurahan.name == "Sunter Agung"
    assert 0 < found.distance_m < 10


def test_harbour_water_snaps_to_the_port(index: AreaIndex) -> None:
    found = index.locate(-6.103, 106.878)  # in the Tanjung Priok basin, in no polygon
    assert isinstance(found, AreaMatch)
    assert (found.match, found.kelurahan.name) == ("snapped", "Tanjung Priok")
    assert 30 < found.distance_m < 100


def test_off_the_coast(index: AreaIndex) -> None:
    near = index.locate(*OFF_COAST_300M)
    assert isinstance(near, AreaMatch)
    assert (near.match, near.kelurahan.name) == ("snapped", "Ancol")
    assert 250 <= near.distance_m <= 350
    far = index.locate(*OFF_COAST_2KM)
    assert isinstance(far, Outside)
    assert 1800 <= far.distance_m <= 2200
    assert far.nearest is not None and far.nearest.name == "Ancol"


def test_snap_distances_are_metres(index: AreaIndex, raw_polygons: list[tuple[str, Any]]) -> None:
    """distance_m agrees with the WGS84 geodesic distance to the nearest point of the polygon."""
    points = [OFF_COAST_300M, OFF_COAST_2KM, (-6.103, 106.878), (-6.4025, 106.7942), (-6.2383, 106.9756)]
    points += [(-5.799, 106.493), (-6.1783, 106.6319)]  # Pulau Tidung's shore; Tangerang
    for lat, lon in points:
        found = index.locate(lat, lon)
        code = found.code if isinstance(found, AreaMatch) else found.nearest.code
        geom = next(g for c, g in raw_polygons if c == code)
        plon, plat = shapely.shortest_line(geom, shapely.Point(lon, lat)).coords[0]
        expected = geodesic_m(lat, lon, plat, plon)
        assert found.distance_m == pytest.approx(expected, rel=0.002, abs=0.5)


def test_snap_cap_is_configurable() -> None:
    assert AreaIndex.default().snap_cap_m == DEFAULT_SNAP_CAP_M
    strict = AreaIndex.default(snap_cap_m=0)
    assert isinstance(strict.locate(*GAP), Outside)
    generous = AreaIndex.default(snap_cap_m=5000)
    depok = generous.locate(-6.4025, 106.7942)
    assert isinstance(depok, AreaMatch) and depok.match == "snapped"
    assert depok.kelurahan.name == "Cipedak"
    with pytest.raises(ValueError, match="snap_cap_m"):
        AreaIndex.from_geojson(snap_cap_m=-1)
    with pytest.raises(ValueError, match="snap_cap_m"):
        AreaIndex.from_geojson(snap_cap_m=float("nan"))


def test_every_kelurahan_finds_itself(index: AreaIndex, raw_polygons: list[tuple[str, Any]]) -> None:
    for code, geom in raw_polygons:
        p = geom.representative_point()
        found = index.locate(p.y, p.x)
        assert isinstance(found, AreaMatch)
        assert found.code == code or code in found.candidates


@pytest.mark.parametrize(
    ("lat", "lon", "message"),
    [
        (float("nan"), 106.8, "lat must be a finite number"),
        (-6.2, float("nan"), "lon must be a finite number"),
        (float("inf"), 106.8, "lat must be a finite number"),
        (-6.2, float("-inf"), "lon must be a finite number"),
        (-91.0, 106.8, "lat must be between -90 and 90"),
        (-6.2, 180.5, "lon must be between -180 and 180"),
        (None, 106.8, "lat must be a number"),
        ("-6.2", 106.8, "lat must be a number"),
        (True, 106.8, "lat must be a number"),
    ],
)
def test_invalid_coordinates(index: AreaIndex, lat: Any, lon: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        index.locate(lat, lon)


def test_integer_and_edge_coordinates_are_fine(index: AreaIndex) -> None:
    assert isinstance(index.locate(0, 0), Outside)
    assert isinstance(index.locate(-90.0, 180.0), Outside)


# -- routing decisions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "opd"),
    [
        ("parkir-liar", "sudin-perhubungan-jakarta-selatan"),
        ("Parkir Liar", "sudin-perhubungan-jakarta-selatan"),
        ("sampah", "kelurahan-melawai"),
        ("gangguan-ketenteraman-dan-ketertiban", "satpol-pp-jakarta-selatan"),
        ("pdam-pam-air-bersih", "pam-jaya"),
        ("jalan", "sudin-bina-marga-jakarta-selatan"),
        ("keluhan-fasilitas-gedung-pemda", "kelurahan-melawai"),
    ],
)
def test_route_at_blok_m(index: AreaIndex, directory: Directory, category: str, opd: str) -> None:
    decision = route(index, directory, -6.2443, 106.8001, category)
    assert isinstance(decision, Routed) and decision.routed
    assert decision.opd.code == opd
    assert decision.area.kelurahan.name == "Melawai"
    assert decision.routing_key == f"{opd}.jakarta-selatan.kebayoran-baru.melawai"


def test_route_example_key(index: AreaIndex, directory: Directory) -> None:
    decision = route(index, directory, -6.2443, 106.8001, "jalan")
    assert decision.routing_key == "sudin-bina-marga-jakarta-selatan.jakarta-selatan.kebayoran-baru.melawai"


def test_route_in_each_kota_reaches_that_kota_unit(index: AreaIndex, directory: Directory) -> None:
    for lat, lon, _, _, kota in PLACES.values():
        decision = route(index, directory, lat, lon, "gangguan-ketenteraman-dan-ketertiban")
        assert isinstance(decision, Routed)
        assert decision.opd.agency == "satpol-pp"
        assert decision.opd.kota == decision.area.kelurahan.kota_slug
        assert decision.area.kota == kota


def test_route_outside(index: AreaIndex, directory: Directory) -> None:
    decision = route(index, directory, -6.4025, 106.7942, "sampah")
    assert isinstance(decision, Unroutable) and not decision.routed
    assert decision.reason == "outside_jakarta"
    assert decision.routing_key == "triage.outside-jakarta"
    assert decision.opd.code == "triage"
    assert decision.area is None
    assert decision.category is not None and decision.category.code == "sampah"
    assert decision.distance_m is not None and decision.distance_m > 3000
    assert "Cipedak" in decision.detail


def test_route_unknown_category_keeps_the_area(index: AreaIndex, directory: Directory) -> None:
    decision = route(index, directory, -6.2443, 106.8001, "ufo-sighting")
    assert isinstance(decision, Unroutable)
    assert decision.reason == "unknown_category"
    assert decision.routing_key == "triage.unknown-category.jakarta-selatan.kebayoran-baru.melawai"
    assert decision.area is not None and decision.area.kelurahan.name == "Melawai"
    assert "ufo-sighting" in decision.detail


def test_route_invalid_location_goes_to_triage(index: AreaIndex, directory: Directory) -> None:
    decision = route(index, directory, float("nan"), 106.8, "sampah")
    assert isinstance(decision, Unroutable)
    assert decision.reason == "invalid_location"
    assert decision.routing_key == "triage.invalid-location"


def test_route_no_handler(index: AreaIndex) -> None:
    doc = yaml.safe_load(DIRECTORY_PATH.read_text(encoding="utf-8"))
    rule = next(r for r in doc["rules"] if r["category"] == "pdam-pam-air-bersih")
    rule["kota_overrides"] = {"kepulauan-seribu": None}
    custom = build_directory(doc)
    decision = route(index, custom, -5.7456, 106.6137, "pdam-pam-air-bersih")
    assert isinstance(decision, Unroutable)
    assert decision.reason == "no_handler"
    assert decision.routing_key == ("triage.no-handler.kepulauan-seribu.kepulauan-seribu-utara.pulau-panggang")
    assert isinstance(route(index, custom, -6.2443, 106.8001, "pdam-pam-air-bersih"), Routed)


# words of the English details that must never reach a citizen's (Indonesian) note
ENGLISH_WORDS = re.compile(r"\b(from|the|nearest|beyond|snapping|cap|unknown|category|handles|no|in|is|not|must)\b")


def test_the_citizen_reads_why_a_report_waits_for_triage_in_indonesian(index: AreaIndex, directory: Directory) -> None:
    doc = yaml.safe_load(DIRECTORY_PATH.read_text(encoding="utf-8"))
    rule = next(r for r in doc["rules"] if r["category"] == "pdam-pam-air-bersih")
    rule["kota_overrides"] = {"kepulauan-seribu": None}
    decisions = {
        "outside_jakarta": route(index, directory, -6.4025, 106.7942, "sampah"),
        "near_outside": route(index, directory, *OFF_COAST_2KM, "sampah"),
        "unknown_category": route(index, directory, -6.2443, 106.8001, "ufo-sighting"),
        "invalid_location": route(index, directory, float("nan"), 106.8, "sampah"),
        "no_handler": route(index, build_directory(doc), -5.7456, 106.6137, "pdam-pam-air-bersih"),
    }
    notes = {}
    for name, decision in decisions.items():
        assert isinstance(decision, Unroutable), name
        notes[name] = note_triage(decision.detail_id)
        assert notes[name].startswith("Perlu diperiksa petugas: "), notes[name]
        assert not ENGLISH_WORDS.search(notes[name]), notes[name]
        assert ENGLISH_WORDS.search(decision.detail), decision.detail  # the English detail stays for the desk
    assert re.fullmatch(
        r"Perlu diperiksa petugas: lokasi \d+,\d km dari kelurahan terdekat \(Cipedak, Jakarta Selatan\), "
        r"di luar batas 500 m",
        notes["outside_jakarta"],
    ), notes["outside_jakarta"]
    assert notes["near_outside"].endswith(
        "lokasi 2,0 km dari kelurahan terdekat (Ancol, Jakarta Utara), di luar batas 500 m"
    )
    assert notes["unknown_category"] == 'Perlu diperiksa petugas: kategori "ufo-sighting" tidak dikenal'
    assert notes["no_handler"].endswith(
        "belum ada OPD yang menangani kategori PDAM/PAM, Air Bersih di Kepulauan Seribu"
    )


def test_distances_are_written_the_indonesian_way() -> None:
    distances = (0, 570.4, 999.4, 999.6, 1000, 3240)
    assert [distance_id(m) for m in distances] == ["0 m", "570 m", "999 m", "1,0 km", "1,0 km", "3,2 km"]


def test_routing_keys_are_topic_words(index: AreaIndex, directory: Directory) -> None:
    word = r"[a-z0-9]+(-[a-z0-9]+)*"
    routed_key = re.compile(rf"{word}(\.{word}){{3}}")
    for kel in load_areas().kelurahan.values():
        for category in ("jalan", "sampah", "pdam-pam-air-bersih"):
            opd = directory.responsible_for(category, kel)
            key = routing_key_for(opd, kel)
            assert routed_key.fullmatch(key), key
            assert topic_matches(opd_queue(opd.code).routing_key, key)


def test_queue_bindings_select_only_their_own_reports(directory: Directory) -> None:
    melawai: KelurahanInfo = load_areas().kelurahan_by_slug("melawai")
    key = routing_key_for(directory.opd("sudin-bina-marga-jakarta-selatan"), melawai)
    assert opd_queue("sudin-bina-marga-jakarta-selatan").routing_key == "sudin-bina-marga-jakarta-selatan.#"
    assert topic_matches("sudin-bina-marga-jakarta-selatan.#", key)
    assert not topic_matches("sudin-bina-marga-jakarta-barat.#", key)
    assert not topic_matches("bina-marga.#", key)
    assert not topic_matches("satpol-pp.#", "satpol-pp-jakarta-selatan.jakarta-selatan.x.y")
    assert topic_matches("triage.#", triage_routing_key("outside_jakarta"))
    assert topic_matches("*.jakarta-selatan.#", key)  # e.g. a kota-wide monitor


def test_routing_key_helpers(index: AreaIndex, directory: Directory) -> None:
    found = index.locate(-6.2443, 106.8001)
    assert routing_key_for("pam-jaya", found) == "pam-jaya.jakarta-selatan.kebayoran-baru.melawai"
    assert routing_key_for(directory.opd("pam-jaya"), None) == "pam-jaya"
    assert triage_routing_key("no_handler", found) == ("triage.no-handler.jakarta-selatan.kebayoran-baru.melawai")
    with pytest.raises(ValueError):
        routing_key_for("bad.code", found)
    with pytest.raises(ValueError):
        routing_key_for("", None)


def test_decisions_are_immutable(index: AreaIndex, directory: Directory) -> None:
    decision = route(index, directory, -6.1754, 106.8272, "jalan")
    with pytest.raises(AttributeError):
        decision.routing_key = "x"  # type: ignore[misc]


def test_the_snapping_cap_is_the_edge_of_jakarta(index: AreaIndex) -> None:
    """Walking north from the Ancol shore out to sea: snapped up to 500 m off the polygon, outside beyond."""
    start_lat, lon = OFF_COAST_300M
    seen = []
    for step in range(120):
        found = index.locate(start_lat + step * 0.00004, lon)  # about 4.4 m north per step
        seen.append((found.distance_m, isinstance(found, AreaMatch)))
    assert all(snapped for distance, snapped in seen if distance <= 500)
    assert all(not snapped for distance, snapped in seen if distance > 500)
    assert any(480 <= distance <= 500 for distance, _ in seen), "a point just inside the cap was tried"
    assert any(500 < distance <= 520 for distance, _ in seen), "a point just outside the cap was tried"
