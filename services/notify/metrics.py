"""Notify's Prometheus series."""

from prometheus_client import Counter, Gauge

from jaklapor.metrics import registry_for

REGISTRY = registry_for("notify")

LIVE_STREAMS = Gauge("jaklapor_live_streams", "Open Server-Sent Events streams in this process", registry=REGISTRY)
TIMELINE_EVENTS = Counter(
    "jaklapor_timeline_events_total", "Report events added to citizens' timelines, by kind", ["kind"], registry=REGISTRY
)
