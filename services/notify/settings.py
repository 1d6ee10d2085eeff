"""The configuration notify reads, read once and validated when the service starts (jaklapor.settings); the keys are
documented in jaklapor/config.yaml and docs/notifications.md."""

from __future__ import annotations

from pydantic import ConfigDict, field_validator

from jaklapor.settings import ServiceSettings
from jaklapor.web import web_origin
from services.notify.channels import SmtpSettings
from services.notify.domain import RetryPolicy


class NotifySettings(ServiceSettings):
    # an address or a password made only of digits arrives from YAML as a number: it is still text
    model_config = ConfigDict(coerce_numbers_to_str=True)

    #: the Fernet key intake encrypts reporter contacts with (SecretGuard refuses a development key in deployment)
    contact_key: str = ""
    #: days (fractions allowed) a contact is kept after its report is selesai or ditolak
    contact_retention_days: float = 30.0
    #: links handed to citizens and agencies: the gateway (tracking, OPD API) and notify itself (unsubscribe)
    public_url: str = "http://127.0.0.1:8000"
    notify_public_url: str = "http://127.0.0.1:8001"
    #: add an English version below the Indonesian text of citizens' e-mails
    notify_english: bool = True

    # e-mail over SMTP: no host, no e-mail
    smtp_host: str | None = None
    #: None: 465 with implicit TLS (SMTP_SSL), 587 otherwise
    smtp_port: int | None = None
    smtp_starttls: bool = SmtpSettings.starttls
    smtp_ssl: bool = SmtpSettings.implicit_tls
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = SmtpSettings.sender
    smtp_timeout_seconds: float = SmtpSettings.timeout

    # webhooks: the push / SMS relay for phone contacts (no URL, no relay) and the agencies' channels file
    citizen_webhook_url: str | None = None
    citizen_webhook_secret: str = ""
    opd_channels_file: str | None = None
    webhook_timeout_seconds: float = 10.0

    # the delivery queue: retries with backoff, how often and how much is sent at once
    delivery_max_attempts: int = RetryPolicy.max_attempts
    delivery_backoff_base_seconds: float = RetryPolicy.base_seconds
    delivery_backoff_max_seconds: float = RetryPolicy.max_seconds
    delivery_poll_seconds: float = 1.0
    delivery_concurrency: int = 20
    delivery_per_destination: int = 4
    delivery_attempt_timeout_seconds: float = 60.0

    @property
    def citizen_app_origin(self) -> str:
        """Where the citizen app runs (the gateway, PUBLIC_URL): the one origin allowed to read the live streams."""
        return web_origin(self.public_url)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        web_origin(value)  # an http(s) URL with a host, or the service does not start
        return value
