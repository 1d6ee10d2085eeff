"""The ways a notification leaves notify: e-mail over SMTP and signed webhooks (HTTP POST of JSON), and the agencies'
channel configuration (which OPD hears through which webhook / e-mail address).

Senders raise `DeliveryFailed` with a short reason that never contains personal data (no address, no URL, no server
reply text: an SMTP server's reply often repeats the recipient), and say whether trying again can help.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Container, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import yaml
from email_validator import EmailNotValidError, validate_email

from services.notify.signing import SIGNATURE_HEADER, signature_header

if TYPE_CHECKING:
    from services.notify.settings import NotifySettings

MIN_SECRET_CHARS = 16


class DeliveryFailed(Exception):
    """One attempt failed. `reason` is safe to log and store (`http 503`, `timeout`, `smtp 550`)."""

    def __init__(self, reason: str, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


# ---- e-mail ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    starttls: bool = True
    implicit_tls: bool = False
    user: str | None = None
    password: str | None = None
    sender: str = "JakLapor <noreply@jaklapor.localhost>"
    timeout: float = 20.0

    @classmethod
    def from_settings(cls, settings: NotifySettings) -> SmtpSettings | None:
        """The SMTP server notify sends through; None without SMTP_HOST (no e-mail)."""
        if not settings.smtp_host:
            return None
        implicit = settings.smtp_ssl
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port or (465 if implicit else 587),
            starttls=settings.smtp_starttls and not implicit,
            implicit_tls=implicit,
            user=settings.smtp_user or None,
            password=settings.smtp_password or None,
            sender=settings.smtp_from,
            timeout=settings.smtp_timeout_seconds,
        )


class SmtpSender:
    """One SMTP session per message (stdlib smtplib; green under eventlet's monkey patching). Each socket operation
    is bounded by `timeout`; the dispatcher bounds the whole attempt as well."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def send(self, message: EmailMessage) -> None:
        s = self.settings
        try:
            if s.implicit_tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with smtp:
                smtp.ehlo()
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if s.user:
                    smtp.login(s.user, s.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _reply in exc.recipients.values()})
            # 5xx for every recipient: the address does not exist; retrying will not help
            permanent = bool(codes) and all(500 <= code < 600 for code in codes)
            raise DeliveryFailed(f"smtp {codes[0] if codes else '?'} recipient refused", not permanent) from None
        except smtplib.SMTPDataError as exc:
            raise DeliveryFailed(f"smtp {exc.smtp_code} message refused", not 500 <= exc.smtp_code < 600) from None
        except smtplib.SMTPResponseException as exc:  # auth, sender refused, ...: configuration; may be fixed
            raise DeliveryFailed(f"smtp {exc.smtp_code} {type(exc).__name__}") from None
        except (smtplib.SMTPException, ssl.SSLError) as exc:
            raise DeliveryFailed(f"smtp {type(exc).__name__}") from None
        except TimeoutError:
            raise DeliveryFailed("smtp timeout") from None
        except OSError as exc:
            raise DeliveryFailed(f"smtp {type(exc).__name__}") from None


# ---- webhooks -------------------------------------------------------------------------------------------------------


class WebhookSender:
    """POSTs a body signed with the receiver's secret. Any 2xx is accepted; anything else (including a redirect,
    which is not followed) and any timeout or connection error is a failed attempt, retried later."""

    def __init__(self, timeout: float = 10.0, user_agent: str = "jaklapor-notify/1") -> None:
        self.timeout = timeout
        self.user_agent = user_agent
        self.session = requests.Session()

    def post(self, url: str, secret: str, body: bytes, headers: Mapping[str, str] | None = None) -> int:
        all_headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": self.user_agent,
            **(headers or {}),
            SIGNATURE_HEADER: signature_header(secret, body),
        }
        try:
            response = self.session.post(
                url,
                data=body,
                headers=all_headers,
                timeout=(min(self.timeout, 5.0), self.timeout),
                allow_redirects=False,
                stream=True,  # the answer's body is not needed: never read a large one
            )
        except requests.Timeout:
            raise DeliveryFailed("webhook timeout") from None
        except requests.RequestException as exc:
            raise DeliveryFailed(f"webhook {type(exc).__name__}") from None
        status = response.status_code
        response.close()
        if not 200 <= status < 300:
            raise DeliveryFailed(f"http {status}")
        return status

    def close(self) -> None:
        self.session.close()


# ---- who hears through what: the agencies' channels ------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str

    def __repr__(self) -> str:  # never print a secret
        return f"WebhookTarget(url={self.url!r}, secret=***)"


@dataclass(frozen=True)
class OpdChannels:
    webhook: WebhookTarget | None = None
    emails: tuple[str, ...] = ()


class ChannelConfigError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.problems = problems


def check_webhook_url(url: Any) -> str | None:
    """A problem with a webhook URL, or None if it is a usable http(s) URL."""
    if not isinstance(url, str) or not url:
        return "url is missing"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"url must be http(s)://host/...: {url!r}"
    return None


def parse_opd_channels(
    data: Any, known_opds: Container[str], source: str = "OPD channels", environ: Mapping[str, str] | None = None
) -> dict[str, OpdChannels]:
    """Validate the agencies' channel file: `{opd_code: {webhook: {url, secret | secret_env}, email: addr | [addr]}}`.
    Unknown OPD codes, bad URLs, short secrets and invalid addresses fail with every problem listed."""
    env = os.environ if environ is None else environ
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ChannelConfigError(source, ["must be a mapping of OPD code to its channels"])
    problems: list[str] = []
    channels: dict[str, OpdChannels] = {}
    for code, entry in data.items():
        where = f"{code}"
        if not isinstance(code, str) or code not in known_opds:
            problems.append(f"{where}: unknown OPD code (see jaklapor/reference/opd_directory.yaml)")
            continue
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: must be a mapping with `webhook` and/or `email`")
            continue
        unknown = set(entry) - {"webhook", "email"}
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        webhook = None
        if entry.get("webhook") is not None:
            spec = entry["webhook"]
            if not isinstance(spec, Mapping):
                problems.append(f"{where}.webhook: must be a mapping with url and secret (or secret_env)")
            else:
                url_problem = check_webhook_url(spec.get("url"))
                if url_problem:
                    problems.append(f"{where}.webhook: {url_problem}")
                secret_problem = None
                secret = spec.get("secret")
                if spec.get("secret_env"):
                    secret = env.get(str(spec["secret_env"]))
                    if not secret:
                        secret_problem = f"environment variable {spec['secret_env']} (secret_env) is not set"
                if secret_problem is None and (not isinstance(secret, str) or len(secret) < MIN_SECRET_CHARS):
                    secret_problem = f"secret must be a string of at least {MIN_SECRET_CHARS} characters"
                if secret_problem:
                    problems.append(f"{where}.webhook: {secret_problem}")
                elif not url_problem:
                    webhook = WebhookTarget(str(spec["url"]), str(secret))
        emails: list[str] = []
        raw_emails = entry.get("email")
        if raw_emails is not None:
            for address in [raw_emails] if isinstance(raw_emails, str) else list(raw_emails or []):
                try:
                    emails.append(validate_email(str(address), check_deliverability=False).normalized)
                except EmailNotValidError as exc:
                    problems.append(f"{where}.email: {address!r} is not a valid address ({exc})")
        if entry.get("webhook") is None and raw_emails is None:
            problems.append(f"{where}: configure a webhook and/or an email")
        channels[code] = OpdChannels(webhook=webhook, emails=tuple(emails))
    if problems:
        raise ChannelConfigError(source, problems)
    return channels


def load_opd_channels(path: str | os.PathLike[str] | None, known_opds: Container[str]) -> dict[str, OpdChannels]:
    """The channels file named by OPD_CHANNELS_FILE (none: no agency is notified outside its queue)."""
    if not path:
        return {}
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ChannelConfigError(str(file), [f"cannot be read: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ChannelConfigError(str(file), [f"is not valid YAML: {exc}"]) from None
    return parse_opd_channels(data, known_opds, str(file))
