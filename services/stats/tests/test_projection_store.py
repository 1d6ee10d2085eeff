"""The projection store: a report's first event creates its projection in one write; if a later event of the report
came first, the first one is folded into what is there (nothing is lost, nothing counted twice)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mongomock

from services.stats.dependencies import ProjectionRepository


def add_event(name: str) -> Callable[[dict[str, Any] | None], dict[str, Any] | None]:
    def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
        seen = (current or {}).get("events", [])
        if name in seen:
            return None
        return {**(current or {}), "events": [*seen, name]}

    return change


def test_a_first_event_creates_the_projection_and_a_repeat_changes_nothing() -> None:
    store = ProjectionRepository(mongomock.MongoClient(tz_aware=True)["stats"])
    assert store.update("JK-1", add_event("submitted"), probably_new=True)
    assert not store.update("JK-1", add_event("submitted"), probably_new=True)
    assert store.get("JK-1") == {"_id": "JK-1", "events": ["submitted"], "rev": 1}


def test_a_first_event_arriving_after_a_later_one_is_folded_into_it() -> None:
    store = ProjectionRepository(mongomock.MongoClient(tz_aware=True)["stats"])
    assert store.update("JK-1", add_event("routed"))
    assert store.update("JK-1", add_event("submitted"), probably_new=True)
    assert store.get("JK-1") == {"_id": "JK-1", "events": ["routed", "submitted"], "rev": 2}
