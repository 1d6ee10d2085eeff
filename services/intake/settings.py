"""Everything intake reads from its configuration, read once and validated when the container starts."""

from __future__ import annotations

from jaklapor.settings import ServiceSettings
from services.intake.domain import stream_url, tracking_url


class IntakeSettings(ServiceSettings):
    #: where citizens and OPDs reach this gateway: tracking links, photo URLs, the OpenAPI server
    public_url: str = "http://127.0.0.1:8000"
    #: where citizens follow a report live (notify's stream)
    notify_public_url: str = "http://127.0.0.1:8001"
    #: the citizen app's map tiles (`{z}/{x}/{y}`, optional `{s}`) and their attribution; empty: no tiles, the map
    #: shows the kelurahan boundaries only (as on a machine without internet)
    map_tile_url: str = ""
    map_tile_attribution: str = ""
    #: reverse proxies in front of intake whose X-Forwarded-For entries are trusted (rate limiting per client)
    trusted_proxy_hops: int = 0
    rate_limit_burst: int = 20
    rate_limit_per_minute: float = 30
    #: relay green threads publishing the outbox, each with its own broker connection
    outbox_relay_workers: int = 4
    #: reports claimed, published and cleared together by one relay round
    outbox_relay_batch: int = 100
    #: the secrets: derives the OPDs' API keys, retried submissions' tracking tokens, encrypts contacts for notify
    #: (config.yaml gives development values; SecretGuard refuses them outside the local mode)
    opd_key_secret: str
    token_secret: str
    contact_key: str

    def tracking_url(self, token: str) -> str:
        return tracking_url(self.public_url, token)

    def stream_url(self, token: str) -> str:
        return stream_url(self.notify_public_url, token)
