"""Kelurahan, kecamatan and kota from the boundary file (jaklapor/reference/areas.py)."""

from __future__ import annotations

import copy
from collections import Counter

import pytest

from jaklapor.reference import AreaDataError, load_areas, load_kelurahan_geojson, parse_areas
from jaklapor.reference.tests import SLUG


def test_areas_match_the_source_counts() -> None:
    areas = load_areas()
    assert (len(areas.kelurahan), len(areas.kecamatan), len(areas.kota)) == (267, 44, 6)
    per_kota = Counter(k.kota for k in areas.kelurahan.values())
    kec_per_kota = Counter(k.kota for k in areas.kecamatan.values())
    expected = {  # SOURCE.md: kecamatan / kelurahan per kota
        "Kepulauan Seribu": (2, 6),
        "Jakarta Pusat": (8, 44),
        "Jakarta Utara": (6, 31),
        "Jakarta Barat": (8, 56),
        "Jakarta Selatan": (10, 65),
        "Jakarta Timur": (10, 65),
    }
    assert {k: (kec_per_kota[k], per_kota[k]) for k in expected} == expected


def test_kelurahan_info_from_code_prefix() -> None:
    areas = load_areas()
    melawai = areas.kelurahan_by_slug("melawai")
    assert melawai is not None
    assert melawai.code == "31.74.07.1001"
    assert (melawai.kecamatan_code, melawai.kota_code) == ("31.74.07", "31.74")
    assert (melawai.kecamatan, melawai.kecamatan_slug) == ("Kebayoran Baru", "kebayoran-baru")
    assert (melawai.kota, melawai.kota_slug) == ("Jakarta Selatan", "jakarta-selatan")
    assert areas.kecamatan["31.74.07"].name == "Kebayoran Baru"
    assert areas.kota["31.74"].official_name == "Kota Administrasi Jakarta Selatan"
    assert areas.kota["31.01"].official_name == "Kabupaten Administrasi Kepulauan Seribu"
    assert melawai.as_area_ref() == {
        "code": "31.74.07.1001",
        "kelurahan": "Melawai",
        "kecamatan": "Kebayoran Baru",
        "kota": "Jakarta Selatan",
    }


def test_area_slugs_are_unique_and_ascii() -> None:
    areas = load_areas()
    for level in (areas.kelurahan, areas.kecamatan, areas.kota):
        slugs = [a.slug for a in level.values()]
        assert len(set(slugs)) == len(slugs)
        assert all(SLUG.fullmatch(s) for s in slugs)


def test_parse_areas_rejects_inconsistent_prefixes() -> None:
    data = copy.deepcopy(load_kelurahan_geojson())
    props = next(f["properties"] for f in data["features"] if f["properties"]["kelurahan"] == "Melawai")
    props["kecamatan"] = "Kebayoran Lama"  # 31.74.07 is Kebayoran Baru everywhere else
    with pytest.raises(AreaDataError) as err:
        parse_areas(data)
    assert err.value.problems == [
        "kecamatan 31.74.07 has several names: 'Kebayoran Baru' (9 kelurahan), 'Kebayoran Lama' (1 kelurahan)"
    ]
