"""Pieces of the stats service that need no broker: the response cache and which static files are served."""

from __future__ import annotations

import time

import pytest

from services.stats.service import STATIC_DIR, STATIC_NAME, ResponseCache


def test_cached_answers_are_reused_while_nothing_changed() -> None:
    cache = ResponseCache(fresh=0.05, idle=60)
    calls = []
    compute = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert cache.get_or_compute("k", compute) == 1
    cache.changed()
    assert cache.get_or_compute("k", compute) == 1  # an event arrived, but the answer is still fresh
    time.sleep(0.06)
    assert cache.get_or_compute("k", compute) == 2  # stale after an event: computed again
    time.sleep(0.06)
    assert cache.get_or_compute("k", compute) == 2  # older than `fresh`, but no event arrived since
    assert cache.get_or_compute("other", compute) == 3


def test_the_cache_is_bounded() -> None:
    cache = ResponseCache(size=3)
    for key in range(10):
        cache.get_or_compute(key, lambda: 0)
    assert len(cache.entries) <= 3


@pytest.mark.parametrize("name", ["dashboard.js", "dashboard.css"])
def test_the_dashboard_assets_ship_with_the_package(name: str) -> None:
    assert STATIC_NAME.match(name) and (STATIC_DIR / name).is_file()
    assert (STATIC_DIR / "dashboard.html").is_file()


@pytest.mark.parametrize("name", ["../service.py", "dashboard.html", ".hidden.js", "x.py", "a/b.js", "DASH.JS"])
def test_only_plain_asset_names_are_served(name: str) -> None:
    assert not STATIC_NAME.match(name)
