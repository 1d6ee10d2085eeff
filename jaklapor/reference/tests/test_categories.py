"""Report categories (jaklapor/reference/categories.py) and the slugs they are looked up by."""

from __future__ import annotations

import pytest

from jaklapor.reference import (
    CategoryError,
    category_groups,
    load_categories,
    parse_categories,
    resolve_category,
    slugify,
)
from jaklapor.reference.tests import SLUG


def test_slugify() -> None:
    assert slugify("Kebayoran Baru") == "kebayoran-baru"
    assert slugify("Jembatan/JPO/Halte") == "jembatan-jpo-halte"
    assert slugify("  Gangguan  Ketenteraman dan Ketertiban ") == "gangguan-ketenteraman-dan-ketertiban"
    assert slugify("Cipete Utara") == "cipete-utara"
    assert slugify("Pulau Pramuka \u00e9") == "pulau-pramuka-e"


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
groups: [{name: Umum, name_en: General}]
categories:
  - {code: jalan, name: Jalan, name_en: Roads, description: x, evidence: data, group: Umum}
  - {code: jalan, name: Jalan Lagi, name_en: Roads, description: x, evidence: data, group: Umum}
  - {code: Pohon Besar, name: Pohon, name_en: Trees, description: x, evidence: rumour, group: Umum}
  - {code: taman, name: Taman, name_en: Parks, description: x, evidence: data, aliases: [Jalan], group: Umum}
  - {code: pkl, name: PKL, name_en: Vendors, description: x, evidence: data, response_days: 0, group: Umum}
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


def test_every_category_has_a_group_and_every_group_categories() -> None:
    cats = load_categories()
    groups = category_groups(cats)
    assert [g.name for g in groups][:2] == ["Jalan & Transportasi", "Air & Banjir"]
    assert [g.rank for g in groups] == sorted(g.rank for g in groups)
    assert all(g.name and g.name_en for g in groups)
    assert {cat.group for cat in cats.values()} == set(groups)
    assert cats["jalan"].group.name == "Jalan & Transportasi"
    assert cats["sampah"].group.name == "Lingkungan & Kebersihan"
    assert cats["kebakaran"].group.name_en == "Fire & rescue"


GROUPED = """
groups:
  - {name: Jalan & Transportasi, name_en: Roads}
  - {name: Lingkungan, name_en: Environment}
categories:
  - {code: jalan, name: Jalan, name_en: Roads, description: x, evidence: data, group: Jalan & Transportasi}
"""


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (GROUPED.replace("group: Jalan & Transportasi", "group: Jalan"), "group 'Jalan' is not one of `groups`"),
        (GROUPED.replace(", group: Jalan & Transportasi", ""), "missing or empty group"),
        (GROUPED, "group 'Lingkungan' has no category"),
        (GROUPED.replace("name_en: Environment", "name_en: ''"), "groups[1]: name and name_en are required"),
        (GROUPED.replace("name: Lingkungan", "name: Jalan & Transportasi"), "duplicate group"),
        (GROUPED[GROUPED.index("categories:") :], "`groups` must be a non-empty list"),
        (GROUPED.replace("name_en: Roads}", "name_en: Roads, icon: x}"), "groups[0]: unknown field(s) icon"),
    ],
)
def test_groups_are_checked(text: str, problem: str) -> None:
    with pytest.raises(CategoryError) as err:
        parse_categories(text)
    assert problem in str(err.value)


def test_the_public_fields_of_a_category() -> None:
    assert load_categories()["kebakaran"].public_fields() == {
        "code": "kebakaran",
        "name": "Kebakaran",
        "name_en": load_categories()["kebakaran"].name_en,
        "description": load_categories()["kebakaran"].description,
        "group": "Kebakaran & Penyelamatan",
        "response_days": 1,
        "visibility": "public",
        "location_precision": "exact",
    }
    assert load_categories()["kependudukan"].public_fields()["visibility"] == "private"
    assert load_categories()["gangguan-dan-kebisingan"].public_fields()["location_precision"] == 3
