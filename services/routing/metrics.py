"""Routing's Prometheus series (labels: kota, OPD level, unroutable reason: all bounded, nothing personal)."""

from prometheus_client import Counter, Histogram

from jaklapor.metrics import LATENCY_BUCKETS, registry_for

REGISTRY = registry_for("routing")

ROUTED = Counter(
    "jaklapor_reports_routed_total",
    "Reports delivered to a responsible OPD's queue, by kota and OPD level",
    ["kota", "opd_level"],
    registry=REGISTRY,
)
UNROUTABLE = Counter(
    "jaklapor_reports_unroutable_total",
    "Reports sent to the triage queue, by reason",
    ["reason"],
    registry=REGISTRY,
)
DELIVERY_LATENCY = Histogram(
    "jaklapor_opd_delivery_latency_seconds",
    "Time from submission (or hand-over) to the broker confirming the report on an OPD queue",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)

INCIDENTS_OPENED = Counter(
    "jaklapor_routing_incidents_opened_total", "Incidents opened by a surge of reports", registry=REGISTRY
)
INCIDENT_MEMBERS = Counter(
    "jaklapor_routing_incident_members_total",
    "Reports routed into an incident instead of on their own",
    registry=REGISTRY,
)
INCIDENT_MESSAGES = Counter(
    "jaklapor_routing_incident_messages_total",
    "Incident messages put on OPD queues",
    ["message_type"],
    registry=REGISTRY,
)
