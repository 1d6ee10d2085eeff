"""Intake's Prometheus series (bounded labels: category codes, statuses, error codes)."""

from prometheus_client import Counter, Gauge, Histogram

from jaklapor.metrics import LATENCY_BUCKETS, registry_for

REGISTRY = registry_for("intake")

SUBMISSIONS = Counter(
    "jaklapor_reports_submitted_total",
    "Reports accepted from citizens",
    ["category"],
    registry=REGISTRY,
)
SUBMISSIONS_REFUSED = Counter(
    "jaklapor_report_submissions_refused_total",
    "Submissions refused with a 4xx or 503, by error code",
    ["code"],
    registry=REGISTRY,
)
TRANSITIONS = Counter(
    "jaklapor_report_transitions_total",
    "Status changes made by OPDs, by new status",
    ["status"],
    registry=REGISTRY,
)
OUTBOX_PUBLISHED = Counter(
    "jaklapor_outbox_published_total",
    "Messages the outbox relay got confirmed by the broker, by destination",
    ["destination"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "jaklapor_outbox_pending_reports",
    "Reports with messages not yet confirmed by the broker (all replicas share the store: same value everywhere)",
    registry=REGISTRY,
)
OVERDUE = Gauge(
    "jaklapor_reports_overdue",
    "Reports waiting past their response deadline (not yet escalated, or at the top of the chain)",
    registry=REGISTRY,
)
ESCALATIONS = Counter(
    "jaklapor_reports_escalated_total",
    "Reports moved up the chain after a missed response deadline, by the level of the OPD that missed it",
    ["from_level"],
    registry=REGISTRY,
)
PHOTO_SECONDS = Histogram(
    "jaklapor_photo_processing_seconds",
    "Time to check and re-encode one uploaded photo",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
SUBMISSIONS_REPLAYED = Counter(
    "jaklapor_report_submissions_replayed_total",
    "Retried submissions (same Idempotency-Key) answered with the report already stored",
    registry=REGISTRY,
)
CITIZEN_FEEDBACK = Counter(
    "jaklapor_citizen_feedback_total",
    "Selesai reports confirmed or reopened by their citizen, by outcome",
    ["outcome"],
    registry=REGISTRY,
)

VERIFICATIONS = Counter(
    "jaklapor_report_verifications_total",
    "The verifier's decisions on OPDs' completions, by outcome (approved, refused)",
    ["outcome"],
    registry=REGISTRY,
)
ADMISSION_REFUSED = Counter(
    "jaklapor_intake_admission_refused_total",
    "Submissions answered 503 overloaded at once because a backlog was over its bound (admission.py), by bound",
    ["reason"],
    registry=REGISTRY,
)
SUBMISSIONS_IN_FLIGHT = Gauge(
    "jaklapor_intake_submissions_in_flight",
    "Admitted submissions waiting for a worker slot or being handled, in this process",
    registry=REGISTRY,
)
