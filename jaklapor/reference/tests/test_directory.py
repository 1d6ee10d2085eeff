"""The OPD directory (jaklapor/reference/directory.py): generated units and offices, rules, validation."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest
import yaml

from jaklapor.reference import (
    DIRECTORY_PATH,
    LEVELS,
    Directory,
    DirectoryError,
    build_directory,
    load_areas,
    load_categories,
    load_directory,
)
from jaklapor.reference.tests import SLUG


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory()


@pytest.fixture(scope="module")
def directory_doc() -> dict[str, Any]:
    return yaml.safe_load(DIRECTORY_PATH.read_text(encoding="utf-8"))


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
