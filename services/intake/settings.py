"""Everything intake reads from its configuration, read once and validated when the container starts."""

from __future__ import annotations

from pydantic import field_validator

from jaklapor.settings import ServiceSettings
from jaklapor.web import DEFAULT_MAX_REQUEST_BYTES
from services.intake.domain import stream_url, tracking_url
from services.intake.public_documents import check_tile_url


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
    #: the largest request body the gateway takes (enforced by jaklapor.web): a report's photos and text together
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    #: the map tiles a client's map shows under the kelurahan boundaries (a {z}/{x}/{y} template, "osm" for
    #: OpenStreetMap's); empty: no tiles, the boundaries only. config.yaml defaults to "osm"
    map_tile_url: str = ""
    #: the credit the tile server asks maps to show
    map_tile_attribution: str = "© OpenStreetMap contributors"
    #: the secrets: derives the OPDs' API keys, retried submissions' tracking tokens, encrypts contacts for notify
    #: (config.yaml gives development values; SecretGuard refuses them outside the local mode)
    opd_key_secret: str
    token_secret: str
    contact_key: str

    def tracking_url(self, token: str) -> str:
        return tracking_url(self.public_url, token)

    def stream_url(self, token: str) -> str:
        return stream_url(self.notify_public_url, token)

    @field_validator("map_tile_url")
    @classmethod
    def _tile_url(cls, value: str) -> str:
        return check_tile_url(value)
