"""Reference data: categories, areas and the OPD directory (jaklapor.reference)."""

from __future__ import annotations

import copy
import re
from collections import Counter
from typing import Any

import pytest
import yaml

from jaklapor.reference import (
    DIRECTORY_PATH,
    LEVELS,
    AreaDataError,
    CategoryError,
    Directory,
    DirectoryError,
    build_directory,
    load_areas,
    load_categories,
    load_directory,
    load_kelurahan_geojson,
    parse_areas,
    parse_categories,
    resolve_category,
    slugify,
)

SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory()


@pytest.fixture(scope="module")
def directory_doc() -> dict[str, Any]:
    return yaml.safe_load(DIRECTORY_PATH.read_text(encoding="utf-8"))


def test_slugify() -> None:
    assert slugify("Kebayoran Baru") == "kebayoran-baru"
    assert slugify("Jembatan/JPO/Halte") == "jembatan-jpo-halte"
    assert slugify("  Gangguan  Ketenteraman dan Ketertiban ") == "gangguan-ketenteraman-dan-ketertiban"
    assert slugify("Cipete Utara") == "cipete-utara"
    assert slugify("Pulau Pramuka \u00e9") == "pulau-pramuka-e"


# -- categories -------------------------------------------------------------------------------------


def test_categories_cover_the_taxonomy_table() -> None:
    cats = load_categories()
    assert len(cats) == 29
    assert list(cats)[:3] == ["jalan", "jaringan-listrik", "trotoar"]
    for code in (
        "jalan",
        "jaringan-listrik",
        "parkir-liar",
        "gangguan-ketenteraman-dan-ketertiban",
        "sampah",
        "pdam-pam-air-bersih",
        "keluhan-fasilitas-gedung-pemda",
        "kebakaran",
    ):
        assert code in cats
    for cat in cats.values():
        assert SLUG.fullmatch(cat.code)
        assert cat.code == slugify(cat.name), "codes are the slug of the Indonesian name"
        assert cat.name and cat.name_en and cat.description
        assert cat.evidence in ("official", "data", "guess")
        assert cat.response_days >= 1


def test_category_evidence_and_response_days() -> None:
    cats = load_categories()
    assert cats["parkir-liar"].evidence == "official"
    assert cats["gangguan-ketenteraman-dan-ketertiban"].evidence == "official"
    assert cats["jalan"].evidence == "data"
    assert cats["kebakaran"].evidence == "guess"
    assert cats["kebakaran"].response_days == 1
    assert cats["sampah"].response_days == 3


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("parkir-liar", "parkir-liar"),
        ("Parkir Liar", "parkir-liar"),
        ("  PARKIR   liar ", "parkir-liar"),
        ("gangguan ketenteraman dan ketertiban", "gangguan-ketenteraman-dan-ketertiban"),
        ("Jembatan/JPO/Halte", "jembatan-jpo-halte"),
        ("Arus Lalu Lintas", "arus-perlengkapan-lalu-lintas"),  # CRM name, kept as an alias
        ("PDAM/PAM", "pdam-pam-air-bersih"),
        ("Keluhan Fasilitas Gedung Pemda (sekolah, kantor)", "keluhan-fasilitas-gedung-pemda"),
    ],
)
def test_resolve_category(text: str, code: str) -> None:
    cat = resolve_category(text)
    assert cat is not None and cat.code == code


@pytest.mark.parametrize("text", ["", "   ", "banjir bandang raksasa", "jalan-raya"])
def test_resolve_category_unknown(text: str) -> None:
    assert resolve_category(text) is None


def test_load_categories_returns_a_copy() -> None:
    load_categories().clear()
    assert len(load_categories()) == 29


def test_parse_categories_reports_every_problem() -> None:
    text = """
categories:
  - {code: jalan, name: Jalan, name_en: Roads, description: x, evidence: data}
  - {code: jalan, name: Jalan Lagi, name_en: Roads, description: x, evidence: data}
  - {code: Pohon Besar, name: Pohon, name_en: Trees, description: x, evidence: rumour}
  - {code: taman, name: Taman, name_en: Parks, description: x, evidence: data, aliases: [Jalan]}
  - {code: pkl, name: PKL, name_en: Vendors, description: x, evidence: data, response_days: 0}
"""
    with pytest.raises(CategoryError) as err:
        parse_categories(text)
    message = str(err.value)
    assert "category 'jalan': duplicate code" in message
    assert "lowercase ASCII slug" in message
    assert "evidence must be one of" in message
    assert "'Jalan' already means category 'jalan'" in message
    assert "response_days must be a positive integer" in message


def test_parse_categories_rejects_missing_fields_and_bad_yaml() -> None:
    with pytest.raises(CategoryError, match="missing or empty name_en, description"):
        parse_categories({"categories": [{"code": "x", "name": "X", "evidence": "data"}]})
    with pytest.raises(CategoryError, match="not valid YAML"):
        parse_categories("categories: [unclosed")
    with pytest.raises(CategoryError, match="non-empty list"):
        parse_categories("categories: []")


# -- areas ------------------------------------------------------------------------------------------


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


# -- directory --------------------------------------------------------------------------------------


def test_directory_generates_units_and_offices(directory: Directory) -> None:
    levels = Counter(o.level for o in directory.all())
    assert levels["kelurahan"] == 267
    assert levels["kecamatan"] == 44
    assert levels["kota"] == 6
    assert levels["triage"] == 1
    assert set(levels) <= set(LEVELS)
    sudin = directory.opd("sudin-bina-marga-jakarta-selatan")
    assert sudin.name == "Suku Dinas Bina Marga Kota Administrasi Jakarta Selatan"
    assert (sudin.level, sudin.agency, sudin.kota, sudin.parent) == (
        "suku-dinas",
        "bina-marga",
        "jakarta-selatan",
        "bina-marga",
    )
    seribu = directory.opd("sudin-bina-marga-kepulauan-seribu")
    assert seribu.name == "Suku Dinas Bina Marga Kabupaten Administrasi Kepulauan Seribu"
    satpol = directory.opd("satpol-pp-jakarta-selatan")
    assert satpol.name == "Satpol PP Kota Administrasi Jakarta Selatan"
    assert (satpol.agency, satpol.parent) == ("satpol-pp", "satpol-pp")
    assert directory.opd("bina-marga").name == "Dinas Bina Marga"
    assert directory.opd("bina-marga").kota is None
    kel = directory.opd("kelurahan-melawai")
    assert (kel.name, kel.level, kel.kota, kel.kecamatan, kel.kelurahan) == (
        "Kelurahan Melawai",
        "kelurahan",
        "jakarta-selatan",
        "kebayoran-baru",
        "melawai",
    )
    assert directory.triage.code == "triage"
    assert directory.triage.name == "Tim Triase CRM (Biro Pemerintahan)"


def test_city_wide_bumd_have_no_kota_units(directory: Directory) -> None:
    for code in ("pam-jaya", "transjakarta"):
        assert directory.opd(code).level == "bumd"
        assert directory.units_of(code) == []
        assert directory.sudin_of(code, "jakarta-selatan") is None


def test_every_provincial_unit_family_covers_every_kota(directory: Directory) -> None:
    kotas = {k.slug for k in load_areas().kota.values()}
    for dinas in ("bina-marga", "perhubungan", "satpol-pp", "sumber-daya-air", "citata"):
        assert {u.kota for u in directory.units_of(dinas)} == kotas
        for kota in kotas:
            unit = directory.sudin_of(dinas, kota)
            assert unit is not None and directory.escalation_parent(unit.code).code == dinas


def test_codes_and_names_are_unique_slugs(directory: Directory) -> None:
    opds = directory.all()
    assert len({o.code for o in opds}) == len(opds)
    assert len({o.name for o in opds}) == len(opds)
    assert all(SLUG.fullmatch(o.code) for o in opds)


def test_lookup_api(directory: Directory) -> None:
    assert directory.get("nope") is None
    with pytest.raises(KeyError, match="unknown OPD code 'nope'"):
        directory.opd("nope")
    assert "kelurahan-gambir" in directory and "kecamatan-gambir" in directory
    assert directory.category("Parkir Liar").code == "parkir-liar"
    assert directory.category("nope") is None


def test_escalation_chain(directory: Directory) -> None:
    chain = []
    code: str | None = "kelurahan-melawai"
    while code is not None:
        chain.append(code)
        parent = directory.escalation_parent(code)
        code = parent.code if parent else None
    assert chain == ["kelurahan-melawai", "kecamatan-kebayoran-baru", "kota-jakarta-selatan"]
    assert directory.escalation_parent("sudin-perhubungan-jakarta-barat").code == "perhubungan"
    assert directory.escalation_parent("perhubungan") is None
    assert directory.escalation_parent("unknown") is None


def test_every_category_has_an_opd_in_every_kelurahan(directory: Directory) -> None:
    for kel in load_areas().kelurahan.values():
        for category in load_categories():
            opd = directory.responsible_for(category, kel)
            assert opd is not None, (category, kel.code)
            assert opd.level != "triage"
            # a kota-bound OPD is always the one of the report's kota
            assert opd.kota in (None, kel.kota_slug)


def test_rules_at_melawai(directory: Directory) -> None:
    melawai = load_areas().kelurahan_by_slug("melawai")

    def handler(category: str) -> str:
        opd = directory.responsible_for(category, melawai)
        assert opd is not None
        return opd.code

    assert handler("parkir-liar") == "sudin-perhubungan-jakarta-selatan"
    assert handler("sampah") == "kelurahan-melawai"
    assert handler("gangguan-ketenteraman-dan-ketertiban") == "satpol-pp-jakarta-selatan"
    assert handler("pdam-pam-air-bersih") == "pam-jaya"
    assert handler("jalan") == "sudin-bina-marga-jakarta-selatan"
    assert handler("keluhan-fasilitas-gedung-pemda") == "kelurahan-melawai"
    assert handler("kebakaran") == "sudin-gulkarmat-jakarta-selatan"
    assert handler("transportasi-publik") == "transjakarta"


def test_kota_override(directory: Directory) -> None:
    pramuka = load_areas().kelurahan_by_slug("pulau-panggang")
    opd = directory.responsible_for("transportasi-publik", pramuka)
    assert opd is not None and opd.code == "sudin-perhubungan-kepulauan-seribu"


def test_responsible_for_coarser_or_missing_areas(directory: Directory) -> None:
    areas = load_areas()
    jaksel = areas.kota["31.74"]
    assert directory.responsible_for("jalan", jaksel).code == "sudin-bina-marga-jakarta-selatan"
    assert directory.responsible_for("sampah", jaksel) is None  # needs a kelurahan
    assert directory.responsible_for("pdam-pam-air-bersih", None).code == "pam-jaya"
    assert directory.responsible_for("jalan", None) is None
    assert directory.responsible_for("no-such-category", jaksel) is None


# -- directory validation ---------------------------------------------------------------------------


def _broken(doc: dict[str, Any], change) -> str:
    doc = copy.deepcopy(doc)
    change(doc)
    with pytest.raises(DirectoryError) as err:
        build_directory(doc)
    return str(err.value)


def _rule(doc: dict[str, Any], category: str) -> dict[str, Any]:
    return next(r for r in doc["rules"] if r["category"] == category)


def test_directory_from_yaml_text_and_mapping(directory_doc: dict[str, Any]) -> None:
    from_text = build_directory(DIRECTORY_PATH.read_text(encoding="utf-8"))
    from_doc = build_directory(directory_doc)
    assert [o.code for o in from_text.all()] == [o.code for o in from_doc.all()]
    assert len(from_doc) == len(load_directory())


def test_rule_naming_an_unknown_agency(directory_doc: dict[str, Any]) -> None:
    msg = _broken(directory_doc, lambda d: _rule(d, "jalan").update(handler="dinas-jalan-tol"))
    assert "rule for 'jalan': unknown agency 'dinas-jalan-tol'" in msg


def test_rule_for_an_unknown_category(directory_doc: dict[str, Any]) -> None:
    msg = _broken(directory_doc, lambda d: d["rules"].append({"category": "ufo", "handler": "satpol-pp"}))
    assert "rule for 'ufo': unknown category 'ufo'" in msg


def test_category_without_a_rule(directory_doc: dict[str, Any]) -> None:
    def drop(d: dict[str, Any]) -> None:
        d["rules"] = [r for r in d["rules"] if r["category"] not in ("sampah", "pohon")]

    assert "no rule for categories pohon, sampah" in _broken(directory_doc, drop)


def test_duplicate_codes(directory_doc: dict[str, Any]) -> None:
    def dup(d: dict[str, Any]) -> None:
        d["agencies"].append({"code": "perhubungan", "name": "Dinas Perhubungan Lagi", "level": "dinas"})

    assert "duplicate OPD code 'perhubungan'" in _broken(directory_doc, dup)

    def dup_rule(d: dict[str, Any]) -> None:
        d["rules"].append({"category": "jalan", "handler": "perhubungan"})

    assert "rule for 'jalan': duplicate rule" in _broken(directory_doc, dup_rule)

    def clash(d: dict[str, Any]) -> None:  # generates sudin-bina-marga-<kota> a second time
        d["agencies"].append(
            {
                "code": "bina-marga-2",
                "name": "Dinas Bina Marga Dua",
                "level": "dinas",
                "acts_through": "suku-dinas",
                "unit_code": "sudin-bina-marga-{kota}",
            }
        )

    assert "duplicate OPD code 'sudin-bina-marga-jakarta-selatan'" in _broken(directory_doc, clash)


def test_reserved_codes_unknown_levels_and_triage(directory_doc: dict[str, Any]) -> None:
    def reserved(d: dict[str, Any]) -> None:
        d["agencies"].append({"code": "kelurahan-melawai", "name": "X", "level": "badan"})

    assert "reserved for generated offices" in _broken(directory_doc, reserved)

    def bad_level(d: dict[str, Any]) -> None:
        d["agencies"][1]["level"] = "kementerian"

    assert "level must be one of" in _broken(directory_doc, bad_level)

    def no_triage(d: dict[str, Any]) -> None:
        d["agencies"] = [a for a in d["agencies"] if a["level"] != "triage"]

    assert "exactly one agency with level triage" in _broken(directory_doc, no_triage)

    def bad_kota(d: dict[str, Any]) -> None:
        _rule(d, "jalan")["kota_overrides"] = {"bogor": None}

    assert "unknown kota 'bogor'" in _broken(directory_doc, bad_kota)


def test_every_problem_is_listed(directory_doc: dict[str, Any]) -> None:
    def many(d: dict[str, Any]) -> None:
        _rule(d, "jalan")["handler"] = "nobody"
        _rule(d, "pohon")["secondary"] = ["nobody-either"]
        d["rules"] = [r for r in d["rules"] if r["category"] != "sampah"]

    doc = copy.deepcopy(directory_doc)
    many(doc)
    with pytest.raises(DirectoryError) as err:
        build_directory(doc)
    assert len(err.value.problems) == 3, err.value.problems
    assert isinstance(err.value, ValueError)


def test_null_override_means_no_handler(directory_doc: dict[str, Any]) -> None:
    doc = copy.deepcopy(directory_doc)
    _rule(doc, "pdam-pam-air-bersih")["kota_overrides"] = {"kepulauan-seribu": None}
    custom = build_directory(doc)
    areas = load_areas()
    assert custom.responsible_for("pdam-pam-air-bersih", areas.kelurahan_by_slug("pulau-panggang")) is None
    assert custom.responsible_for("pdam-pam-air-bersih", areas.kelurahan_by_slug("melawai")).code == "pam-jaya"
