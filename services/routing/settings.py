"""The configuration routing reads, read once and validated when the service starts (jaklapor.settings)."""

from __future__ import annotations

from jaklapor.settings import ServiceSettings


class RoutingSettings(ServiceSettings):
    #: the intake gateway's public base URL: OPD messages link to a report's transitions endpoint there
    public_url: str = "http://127.0.0.1:8000"
    #: one response deadline in seconds for every category (tests shorten it); None: each category's own target
    response_deadline_seconds: float | None = None
    #: how long a routing worker that died mid-delivery holds its claim before another worker retries the delivery
    delivery_claim_seconds: float = 30.0
    #: likely duplicates suggested to the OPD (services/routing/duplicates.py): earlier reports of the same category
    #: within this many metres, submitted within this many days before
    duplicate_radius_m: float = 150.0
    duplicate_window_days: float = 7.0
