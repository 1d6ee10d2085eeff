"""Stats' Prometheus series. Labels are bounded: event types and the six official statuses."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from jaklapor.metrics import registry_for
from jaklapor.vocabulary import STATUSES

log = logging.getLogger(__name__)

REGISTRY = registry_for("stats")

EVENTS_APPLIED = Counter(
    "jaklapor_stats_events_applied_total",
    "Events folded into the statistics (duplicates excluded), by event type",
    ["event_type"],
    registry=REGISTRY,
)
EVENTS_DUPLICATE = Counter(
    "jaklapor_stats_events_duplicate_total",
    "Events received again (redelivered or republished) and ignored, by event type",
    ["event_type"],
    registry=REGISTRY,
)


class ReportsByStatus(Collector):
    """`jaklapor_stats_reports{status}`: reports per current status, read from the projections at scrape time
    (one grouped count on an indexed field)."""

    def __init__(self) -> None:
        self._source: Callable[[], dict[str, int]] | None = None
        self._lock = threading.Lock()

    def watch(self, source: Callable[[], dict[str, int]]) -> None:
        with self._lock:
            self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "jaklapor_stats_reports", "Reports per current status, from the statistics projections", labels=["status"]
        )
        source = self._source
        if source is not None:
            try:
                counts = source()
            except Exception as exc:  # a scrape must not fail because the store is down; the health check says so
                log.warning("could not count reports by status for /metrics: %r", exc)
                counts = None
            if counts is not None:
                for status in STATUSES:
                    family.add_metric([status], counts.get(status, 0))
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("jaklapor_stats_reports", "Reports per current status", labels=["status"])


REPORTS_BY_STATUS = ReportsByStatus()
REGISTRY.register(REPORTS_BY_STATUS)
