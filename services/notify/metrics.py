"""Notify's Prometheus series."""

from prometheus_client import Counter, Gauge, Histogram

from jaklapor.metrics import LATENCY_BUCKETS, registry_for

REGISTRY = registry_for("notify")

LIVE_STREAMS = Gauge("jaklapor_live_streams", "Open Server-Sent Events streams in this process", registry=REGISTRY)
TIMELINE_EVENTS = Counter(
    "jaklapor_timeline_events_total", "Report events added to citizens' timelines, by kind", ["kind"], registry=REGISTRY
)

# Notifications. Labels are bounded (channel, audience, outcome, reason) and never personal.
DELIVERIES = Counter(
    "jaklapor_notify_deliveries_total",
    "Notification delivery attempts and their fate, by channel (email, webhook), audience (citizen, opd) and outcome "
    "(sent; failed: an attempt failed; retried: rescheduled with backoff; dead_lettered: given up after the last "
    "try or a permanent refusal; cancelled: the contact or channel was gone by then)",
    ["channel", "audience", "outcome"],
    registry=REGISTRY,
)
DELIVERY_SECONDS = Histogram(
    "jaklapor_notify_delivery_seconds",
    "Time one delivery attempt took, by channel",
    ["channel"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
NOT_DELIVERED = Counter(
    "jaklapor_notify_notifications_skipped_total",
    "Notifications not sent because there is no way to send them, by audience and reason (no_channel: a phone "
    "contact with no relay webhook or e-mail with no SMTP server; not_configured: an OPD with no channel; "
    "unsubscribed / contact_removed: the citizen opted out or the contact was deleted)",
    ["audience", "reason"],
    registry=REGISTRY,
)
CONTACTS_REMOVED = Counter(
    "jaklapor_notify_contacts_removed_total",
    "Reporter contacts deleted from notify's store, by reason (retention, unsubscribed)",
    ["reason"],
    registry=REGISTRY,
)
DELIVERY_BACKLOG = Gauge(
    "jaklapor_notify_delivery_backlog",
    "Deliveries in notify's store by state (pending: waiting for their next attempt; sending; dead: dead-lettered)",
    ["state"],
    registry=REGISTRY,
)
