"""Stats' Prometheus series."""

from prometheus_client import Counter

from jaklapor.metrics import registry_for

REGISTRY = registry_for("stats")

EVENTS_APPLIED = Counter(
    "jaklapor_stats_events_applied_total",
    "Events folded into the statistics (duplicates excluded), by event type",
    ["event_type"],
    registry=REGISTRY,
)
