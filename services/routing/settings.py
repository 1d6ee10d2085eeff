"""The configuration routing reads, read once and validated when the service starts (jaklapor.settings)."""

from __future__ import annotations

from jaklapor.settings import ServiceSettings
from services.routing import surge


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
    # surges grouped into incidents (services/routing/surge.py, docs/incidents.md); SURGE_MIN_REPORTS=0: off
    #: reports of one category in one kecamatan (for one OPD) within the window that open an incident
    surge_min_reports: int = surge.DEFAULT_MIN_REPORTS
    surge_window_seconds: float = surge.DEFAULT_WINDOW_SECONDS
    #: an incident takes new members until this long passed without one
    surge_quiet_seconds: float = surge.DEFAULT_QUIET_SECONDS
    #: at most one incident_updated message per incident this often...
    incident_update_seconds: float = surge.DEFAULT_UPDATE_SECONDS
    #: ...unless this many new members are waiting
    incident_update_members: int = surge.DEFAULT_UPDATE_MEMBERS

    def surge_rule(self) -> surge.SurgeRule:
        return surge.SurgeRule(
            min_reports=self.surge_min_reports,
            window_seconds=self.surge_window_seconds,
            quiet_seconds=self.surge_quiet_seconds,
            update_seconds=self.incident_update_seconds,
            update_members=self.incident_update_members,
        )
