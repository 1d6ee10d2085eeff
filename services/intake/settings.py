"""Everything intake reads from its configuration, read once and validated when the container starts."""

from __future__ import annotations

from datetime import timedelta

from pydantic import field_validator

from jaklapor.settings import ServiceSettings
from jaklapor.vocabulary import DEFAULT_FEEDBACK_WINDOW_DAYS
from jaklapor.web import DEFAULT_MAX_REQUEST_BYTES, web_origin
from services.intake.domain import stream_url, tracking_url
from services.intake.public_documents import check_tile_url
from services.intake.sessions import SessionPolicy
from services.intake.verification import VerificationPolicy


class IntakeSettings(ServiceSettings):
    #: where citizens and OPDs reach this gateway: tracking links, photo URLs, the OpenAPI server
    public_url: str = "http://127.0.0.1:8000"
    #: where citizens follow a report live (notify's stream)
    notify_public_url: str = "http://127.0.0.1:8001"
    #: where browsers read the statistics (the OPD workbench shows an agency its own figures from there)
    stats_public_url: str = "http://127.0.0.1:8002"
    #: reverse proxies in front of intake whose X-Forwarded-For entries are trusted (rate limiting per client)
    trusted_proxy_hops: int = 0
    rate_limit_burst: int = 20
    rate_limit_per_minute: float = 30
    #: relay green threads publishing the outbox, each with its own broker connection
    outbox_relay_workers: int = 4
    #: reports claimed, published and cleared together by one relay round
    outbox_relay_batch: int = 100
    #: seconds a relay round that is not full waits for more reports handed over, while they come closer together
    #: than that (a store write, a broker confirm and one event pack per round, whatever its size: at 300 reports/s,
    #: 50 ms makes rounds of about 15 instead of 3; docs/performance.md, session 10). A report handed over after a
    #: quiet spell goes out at once
    outbox_relay_linger: float = 0.05
    #: the largest request body the gateway takes (enforced by jaklapor.web): a report's photos and text together
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    #: the map tiles a client's map shows under the kelurahan boundaries (a {z}/{x}/{y} template, "osm" for
    #: OpenStreetMap's); empty: no tiles, the boundaries only. config.yaml defaults to "osm"
    map_tile_url: str = ""
    #: the credit the tile server asks maps to show
    map_tile_attribution: str = "© OpenStreetMap contributors"
    #: workbench sessions (an OPD's key exchanged for a cookie): they end after this long without a request, and
    #: this long after sign-in at the latest
    opd_session_idle_hours: float = 8.0
    opd_session_absolute_hours: float = 12.0
    #: wrong OPD keys one client may send (sign-in or Bearer) before each further one doubles its wait, up to this
    opd_key_failures_allowed: int = 5
    opd_key_max_wait_seconds: float = 900.0
    #: live work-list streams per OPD per gateway process; how long one stream lasts before the client reconnects;
    #: how often a stream re-reads its list when nothing woke it (a lost wake-up is caught within this)
    opd_streams_per_opd: int = 20
    opd_stream_max_seconds: float = 3600.0
    opd_stream_poll_seconds: float = 5.0
    #: verified completion (services/intake/verification.py): whether an OPD's selesai waits for the city's verifier
    #: before the report closes, for every category (true, the default: Jakarta's CRM 2.0 checks every follow-up) or
    #: for none (false); VERIFICATION_EXCEPTIONS lists the category codes (comma separated) that are the exception
    verification_default: bool = True
    verification_exceptions: str = ""
    #: seconds an OPD has to finish again a report sent back to it (the verifier refused its completion, or the
    #: citizen reopened the report); empty: jaklapor.vocabulary.DEFAULT_REWORK_DAYS
    rework_deadline_seconds: float | None = None
    #: the secrets: derives the OPDs' API keys, retried submissions' tracking tokens, encrypts contacts for notify
    #: (config.yaml gives development values; SecretGuard refuses them outside the local mode)
    #: Open311 POST requests need one of these (comma-separated) as api_key; empty: anonymous, as the native API
    open311_api_keys: str = ""
    opd_key_secret: str
    token_secret: str
    contact_key: str

    #: the days after a report became selesai in which its citizen may confirm the fix or reopen it (fractions
    #: allowed: tests shorten it)
    citizen_feedback_window_days: float = DEFAULT_FEEDBACK_WINDOW_DAYS

    def tracking_url(self, token: str) -> str:
        return tracking_url(self.public_url, token)

    def stream_url(self, token: str) -> str:
        return stream_url(self.notify_public_url, token)

    @property
    def public_origin(self) -> str:
        """The gateway's origin as a browser writes it in `Origin` (PUBLIC_URL's scheme://host[:port])."""
        return web_origin(self.public_url)

    @property
    def secure_cookies(self) -> bool:
        """Cookies only over TLS when the gateway is reached over https."""
        return self.public_url.strip().lower().startswith("https://")

    def session_policy(self) -> SessionPolicy:
        return SessionPolicy(
            idle=timedelta(hours=self.opd_session_idle_hours), absolute=timedelta(hours=self.opd_session_absolute_hours)
        )

    def verification_policy(self) -> VerificationPolicy:
        return VerificationPolicy.of(self.verification_default, self.verification_exceptions)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        web_origin(value)  # an http(s) URL with a host, or the service does not start
        return value

    @field_validator("opd_session_idle_hours", "opd_session_absolute_hours", "opd_stream_poll_seconds")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be above 0")
        return value

    @field_validator("citizen_feedback_window_days")
    @classmethod
    def _window(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be above 0")
        return value

    @field_validator("map_tile_url")
    @classmethod
    def _tile_url(cls, value: str) -> str:
        return check_tile_url(value)
