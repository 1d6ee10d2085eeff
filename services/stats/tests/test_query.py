"""Query parameters of the statistics API: what is accepted, and a 400 naming the parameter for the rest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.stats.query import QueryError, parse_filters, positive_int

KOTAS = {"jakarta selatan": "Jakarta Selatan", "jakarta-selatan": "Jakarta Selatan", "jakarta barat": "Jakarta Barat"}
CATEGORIES = ["jalan", "sampah"]


def parse(**params: str | list[str]):
    args = [(k, v if isinstance(v, list) else [v]) for k, v in params.items()]
    return parse_filters(args, kotas=KOTAS, categories=CATEGORIES, extra={"min_reports": positive_int(1000)})


def test_no_parameters_no_filter() -> None:
    filters = parse()
    assert filters.mongo() == {}
    assert filters.echo()["from"] is None


def test_days_are_jakarta_days_and_to_is_inclusive() -> None:
    filters = parse(**{"from": "2026-11-27", "to": "2026-11-28"})
    assert filters.start == datetime(2026, 11, 26, 17, 0, tzinfo=UTC)  # 00:00 WIB
    assert filters.end == datetime(2026, 11, 28, 17, 0, tzinfo=UTC)  # the end of the 28th, WIB
    assert filters.mongo() == {"submitted_at": {"$gte": filters.start, "$lt": filters.end}}
    assert filters.echo()["from"] == "2026-11-26T17:00:00Z"


def test_instants_with_and_without_offset() -> None:
    assert parse(**{"from": "2026-11-27T08:00:00Z"}).start == datetime(2026, 11, 27, 8, tzinfo=UTC)
    assert parse(**{"from": "2026-11-27T08:00:00+07:00"}).start == datetime(2026, 11, 27, 1, tzinfo=UTC)
    assert parse(**{"from": "2026-11-27T08:00:00"}).start == datetime(2026, 11, 27, 1, tzinfo=UTC)  # Jakarta time
    assert parse(to="2026-11-27T08:00:00Z").end == datetime(2026, 11, 27, 8, 0, 0, 1000, tzinfo=UTC)


def test_kota_by_name_or_slug_and_category() -> None:
    filters = parse(kota="Jakarta Selatan", category="jalan")
    assert filters.mongo() == {"kota": "Jakarta Selatan", "category": "jalan"}
    assert parse(kota="jakarta-selatan").kota == "Jakarta Selatan"
    assert parse(kota="JAKARTA BARAT").kota == "Jakarta Barat"


def test_endpoint_specific_parameter() -> None:
    assert parse(min_reports="5").extra == {"min_reports": 5}


@pytest.mark.parametrize(
    ("params", "param", "text"),
    [
        ({"from": "kemarin"}, "from", "not a day"),
        ({"from": "2026-13-01"}, "from", "not a day"),
        ({"to": "2026-11-31"}, "to", "not a day"),
        ({"from": "2026-11-28", "to": "2026-11-27"}, "to", "before from"),
        ({"kota": "Bandung"}, "kota", "unknown kota"),
        ({"category": "banjir-bandang"}, "category", "unknown category"),
        ({"kategori": "jalan"}, "kategori", "unknown query parameter"),
        ({"kota": ["Jakarta Barat", "Jakarta Selatan"]}, "kota", "more than once"),
        ({"kota": " "}, "kota", "empty"),
        ({"min_reports": "0"}, "min_reports", "between 1 and 1000"),
        ({"min_reports": "lima"}, "min_reports", "whole number"),
    ],
)
def test_bad_parameters_are_named(params: dict, param: str, text: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(**params)
    assert caught.value.param == param
    assert text in caught.value.message and caught.value.message.startswith(f"{param}: ")
