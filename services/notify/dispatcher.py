"""Delivery of notifications as durable work in notify's MongoDB: one document per message to send, each attempt
claimed with a lease, failures rescheduled with exponential backoff and jitter (`next_attempt_at`), dead-lettered
(state `dead`, with the last error) after a bounded number of attempts.

Why MongoDB and not a RabbitMQ delay queue: the backoff needs a different delay per message and jitter, which
RabbitMQ per-message TTLs do badly (a message only expires at the head of its queue, so a long delay holds up the
shorter ones behind it; one queue per backoff step loses the jitter), and a message in a queue cannot be skipped while
its receiver is busy. Here every delivery has its own `next_attempt_at`, the dispatcher never takes more than
`DELIVERY_PER_DESTINATION` attempts at once for one receiver (a slow or failing endpoint cannot hold the others up),
the state survives restarts (an attempt interrupted by a crash becomes due again when its lease runs out), and the
contact never leaves notify's store: a delivery document holds only public facts; the message is rendered, and the
contact decrypted, at the moment of sending.

Sends run in a green pool of their own, not in nameko's workers, so a burst of slow receivers never starves the
event consumers or the live streams.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import eventlet
from eventlet.greenpool import GreenPool
from eventlet.queue import Empty, LightQueue
from nameko.extensions import DependencyProvider

from jaklapor.contacts import decrypt_contact, encrypt_contact
from jaklapor.mongo import MongoConnection
from jaklapor.reference import load_directory
from jaklapor.vocabulary import utcnow
from services.notify import metrics
from services.notify.channels import (
    MIN_SECRET_CHARS,
    ChannelConfigError,
    DeliveryFailed,
    OpdChannels,
    SmtpSender,
    SmtpSettings,
    WebhookSender,
    WebhookTarget,
    check_webhook_url,
    load_opd_channels,
)
from services.notify.dependencies import (
    ACTIVE_STATES,
    CANCELLED,
    DEAD,
    PENDING,
    SENT,
    NotifyRepository,
)
from services.notify.domain import (
    CITIZEN,
    Notification,
    RetryPolicy,
    delivery_id,
    parse_contact_plaintext,
    unsubscribe_token_hash,
)
from services.notify.messages import (
    CitizenLinks,
    build_email,
    canonical_json,
    citizen_webhook_body,
    opd_webhook_body,
    render_citizen_email,
    render_opd_email,
)
from services.notify.settings import NotifySettings
from services.notify.signing import ATTEMPT_HEADER, DELIVERY_HEADER, EVENT_HEADER

log = logging.getLogger(__name__)

SMTP_DESTINATION = "smtp"
CITIZEN_RELAY_DESTINATION = "citizen-relay"
UNRESOLVED_DESTINATION = "citizen-unresolved"


#: the delivery key of a supporter's message: the prefix, then its subscription's id
SUPPORTER_KEY_PREFIX = "supporter:"


class Cancelled(Exception):
    """Nothing to send any more (the contact was removed, the channel is gone): not a failure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DeliverySettings:
    """How the dispatcher works, from the service's settings (`from_settings`)."""

    retry: RetryPolicy
    poll_seconds: float
    concurrency: int
    per_destination: int
    attempt_timeout: float
    webhook_timeout: float
    retention_days: float
    english: bool
    public_url: str
    notify_public_url: str

    @property
    def lease_seconds(self) -> float:
        # an attempt is cut off after attempt_timeout; a lease twice as long is only outlived by a dead process
        return self.attempt_timeout * 2 + 5

    @classmethod
    def from_settings(cls, settings: NotifySettings) -> DeliverySettings:
        return cls(
            retry=RetryPolicy(
                base_seconds=settings.delivery_backoff_base_seconds,
                max_seconds=settings.delivery_backoff_max_seconds,
                max_attempts=max(settings.delivery_max_attempts, 1),
            ),
            poll_seconds=settings.delivery_poll_seconds,
            concurrency=max(settings.delivery_concurrency, 1),
            per_destination=max(settings.delivery_per_destination, 1),
            attempt_timeout=settings.delivery_attempt_timeout_seconds,
            webhook_timeout=settings.webhook_timeout_seconds,
            retention_days=settings.contact_retention_days,
            english=settings.notify_english,
            public_url=settings.public_url,
            notify_public_url=settings.notify_public_url,
        )


class DeliveryPlan(NamedTuple):
    """An event's notifications, and what its timeline write told of the report (None: not known, looked up)."""

    notifications: list[Notification]
    has_contact: bool | None = None
    supporter_contacts: bool | None = None


def delivery_document(
    notification: Notification, channel: str | None, destination: str, key: str, now: datetime
) -> dict[str, Any]:
    """The delivery of one notification by one route, due now; its id derives from the event (stored once)."""
    document = {
        "_id": delivery_id(notification, key),
        "report_id": notification.report_id,
        "event_id": notification.event_id,
        "occurred_at": notification.occurred_at,
        "audience": notification.audience,
        "kind": notification.kind,
        "opd": notification.opd,
        "channel": channel,
        "destination": destination,
        "facts": notification.facts,
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "last_error": None,
    }
    if key.startswith(SUPPORTER_KEY_PREFIX):  # a supporter's subscription, not the reporter's
        document["contact_id"] = key[len(SUPPORTER_KEY_PREFIX) :]
    return document


def unsubscribe_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/api/v1/unsubscribe/{token}"


class Dispatcher:
    """Plans deliveries for notifications and sends them; one per service container."""

    def __init__(
        self,
        repository: NotifyRepository,
        settings: DeliverySettings,
        contact_key: str,
        smtp: SmtpSender | None,
        webhooks: WebhookSender,
        citizen_webhook: WebhookTarget | None,
        opd_channels: dict[str, OpdChannels],
        opd_names: dict[str, str],
    ) -> None:
        self.repository = repository
        self.settings = settings
        self.contact_key = contact_key
        self.smtp = smtp
        self.webhooks = webhooks
        self.citizen_webhook = citizen_webhook
        self.opd_channels = opd_channels
        self.opd_names = opd_names
        self.owner = uuid.uuid4().hex
        self.pool = GreenPool(settings.concurrency)
        self.in_flight: Counter[str] = Counter()
        self._wakeup: LightQueue = LightQueue(maxsize=1)
        self.running = False

    # ---- planning ------------------------------------------------------------------------------------------------

    def enqueue(
        self, notifications: list[Notification], has_contact: bool | None = None, supporter_contacts: bool | None = None
    ) -> int:
        """Store a delivery for each way each notification must go (idempotent per event); returns how many new.

        `has_contact`: whether the report's reporter left a contact, if the caller knows (None: look it up);
        `supporter_contacts`: whether a supporter of the report did (None: look it up)."""
        return self.enqueue_many([DeliveryPlan(notifications, has_contact, supporter_contacts)])

    def enqueue_many(self, plans: Sequence[DeliveryPlan]) -> int:
        """`enqueue` for the notifications of a batch of events, stored in one write; returns how many new."""
        now = utcnow()
        documents = [
            delivery_document(notification, channel, destination, key, now)
            for plan in plans
            for notification in plan.notifications
            for channel, destination, key in self._routes(notification, plan.has_contact, plan.supporter_contacts)
        ]
        added = self.repository.enqueue_deliveries(documents) if documents else 0
        if added:
            self.kick()
        return added

    def _routes(
        self, notification: Notification, has_contact: bool | None, supporter_contacts: bool | None = None
    ) -> list[tuple[str | None, str, str]]:
        """(channel, destination, delivery key) for each message this notification becomes; counts the ones that
        have nowhere to go."""
        if notification.audience == CITIZEN:
            supporters = self._supporter_routes(notification.report_id) if supporter_contacts is not False else []
            if has_contact is False:
                return supporters  # the reporter left no contact: only supporters (if any) to tell
            return self._citizen_route(notification.report_id) + supporters
        channels = self.opd_channels.get(notification.opd or "")
        if channels is None:
            metrics.NOT_DELIVERED.labels("opd", "not_configured").inc()
            return []
        routes: list[tuple[str | None, str, str]] = []
        if channels.webhook is not None:
            routes.append(("webhook", webhook_destination(channels.webhook.url), "webhook"))
        if channels.emails:
            if self.smtp is None:
                metrics.NOT_DELIVERED.labels("opd", "no_channel").inc()
            else:
                routes.append(("email", SMTP_DESTINATION, "email"))
        return routes

    def _citizen_route(self, report_id: str) -> list[tuple[str | None, str, str]]:
        contact = self.repository.contact(report_id)
        if contact is None:
            if not self._contact_expected(report_id):
                return []  # the reporter left no contact: nobody to tell
            # the contact's hand-over is on its way (it travels on its own queue): resolve it when sending
            return [(None, UNRESOLVED_DESTINATION, "citizen")]
        if contact.get("state") not in ACTIVE_STATES:
            metrics.NOT_DELIVERED.labels("citizen", _removal_reason(contact)).inc()
            return []
        if contact.get("kind") is None:  # stored before contacts were classified: resolved when sending
            return [(None, UNRESOLVED_DESTINATION, "citizen")]
        channel, destination = self._citizen_channel(contact.get("kind"))
        if channel is None:
            metrics.NOT_DELIVERED.labels("citizen", "no_channel").inc()
            return []
        return [(channel, destination, "citizen")]

    def _supporter_routes(self, report_id: str) -> list[tuple[str | None, str, str]]:
        """A route to each supporter who left a contact for the report (services/intake/duplicates.py)."""
        report = self.repository.report(report_id)
        if not (report or {}).get("supporter_contacts"):
            return []  # almost every report: no lookup of subscriptions
        routes: list[tuple[str | None, str, str]] = []
        for contact in self.repository.supporter_contacts(report_id):
            channel, destination = self._citizen_channel(contact.get("kind"))
            if channel is None:
                metrics.NOT_DELIVERED.labels("citizen", "no_channel").inc()
                continue
            routes.append((channel, destination, SUPPORTER_KEY_PREFIX + contact["_id"]))
        return routes

    def _contact_expected(self, report_id: str) -> bool:
        """Whether a contact not (yet) stored is still to come: the submission said it had one, or notify has not
        seen the submission yet."""
        report = self.repository.report(report_id)
        return report is None or report.get("has_contact") is True

    def _citizen_channel(self, kind: str | None) -> tuple[str | None, str]:
        if kind == "email":
            return ("email", SMTP_DESTINATION) if self.smtp is not None else (None, "")
        if kind == "phone":
            return ("webhook", CITIZEN_RELAY_DESTINATION) if self.citizen_webhook is not None else (None, "")
        return None, ""

    # ---- the loop ------------------------------------------------------------------------------------------------

    def kick(self) -> None:
        try:
            self._wakeup.put_nowait(True)
        except eventlet.queue.Full:
            pass

    def start(self) -> None:
        self.running = True

    def run(self) -> None:
        """Claim due deliveries while there is room, then sleep until kicked or the next poll (until `stop`)."""
        housekeeping_at = 0.0
        while self.running:
            try:
                if time.monotonic() >= housekeeping_at:
                    housekeeping_at = time.monotonic() + max(self.settings.poll_seconds * 5, 1.0)
                    self._housekeeping()
                self.dispatch_due()
            except Exception as exc:  # the store is down: try again at the next poll
                log.error("delivery dispatch failed: %r", exc)
            try:
                self._wakeup.get(timeout=self.settings.poll_seconds)
            except Empty:
                pass

    def _housekeeping(self) -> None:
        released = self.repository.release_expired_leases(utcnow())
        if released:
            log.warning("deliveries whose attempt was interrupted are due again", extra={"count": released})
        for state, count in self.repository.delivery_counts().items():
            metrics.DELIVERY_BACKLOG.labels(state).set(count)

    def dispatch_due(self) -> int:
        started = 0
        while self.running and self.pool.free() > 0:
            busy = sorted(d for d, n in self.in_flight.items() if n >= self.settings.per_destination)
            now = utcnow()
            lease_until = now + timedelta(seconds=self.settings.lease_seconds)
            document = self.repository.claim_delivery(now, busy, lease_until, self.owner)
            if document is None:
                break
            self.in_flight[document["destination"]] += 1
            self.pool.spawn_n(self._attempt, document)
            started += 1
        return started

    def stop(self, grace_seconds: float = 10.0) -> None:
        self.running = False
        self.kick()
        # attempts still running finish; if they do not in time, their leases make them due again after a restart
        with eventlet.Timeout(grace_seconds, False):
            self.pool.waitall()

    # ---- one attempt ---------------------------------------------------------------------------------------------

    def _attempt(self, document: dict[str, Any]) -> None:
        channel = document.get("channel") or "none"
        audience = document["audience"]
        started = time.monotonic()
        try:
            with eventlet.Timeout(self.settings.attempt_timeout, DeliveryFailed("attempt timeout")):
                channel = self._send(document) or channel
        except Cancelled as cancelled:
            self._settle(document, {"state": CANCELLED, "last_error": cancelled.reason, "finished_at": utcnow()})
            metrics.DELIVERIES.labels(channel, audience, "cancelled").inc()
            metrics.NOT_DELIVERED.labels(audience, cancelled.reason).inc()
        except DeliveryFailed as failure:
            self._failed(document, channel, failure)
        except Exception as exc:  # a bug or an unexpected library error: never its message (it may hold data)
            log.error(
                "delivery attempt crashed: %s",
                type(exc).__name__,
                extra={"report_id": document["report_id"], "delivery_id": document["_id"]},
            )
            self._failed(document, channel, DeliveryFailed(f"error {type(exc).__name__}"))
        else:
            self._settle(document, {"state": SENT, "channel": channel, "finished_at": utcnow(), "last_error": None})
            metrics.DELIVERIES.labels(channel, audience, "sent").inc()
            log.info(
                "notification delivered",
                extra={
                    "report_id": document["report_id"],
                    "delivery_id": document["_id"],
                    "channel": channel,
                    "audience": audience,
                    "kind": document["kind"],
                    "attempt": document["attempts"],
                },
            )
        finally:
            metrics.DELIVERY_SECONDS.labels(channel).observe(time.monotonic() - started)
            destination = document["destination"]
            self.in_flight[destination] -= 1
            if self.in_flight[destination] <= 0:
                del self.in_flight[destination]
            self.kick()

    def _failed(self, document: dict[str, Any], channel: str, failure: DeliveryFailed) -> None:
        audience = document["audience"]
        attempts = int(document["attempts"])
        metrics.DELIVERIES.labels(channel, audience, "failed").inc()
        fields = {
            "report_id": document["report_id"],
            "delivery_id": document["_id"],
            "channel": channel,
            "audience": audience,
            "attempt": attempts,
            "error": failure.reason,
        }
        if self.settings.retry.outcome(attempts, failure.retryable) == "retry":
            delay = self.settings.retry.delay(attempts)
            self._settle(
                document,
                {
                    "state": PENDING,
                    "next_attempt_at": utcnow() + timedelta(seconds=delay),
                    "last_error": failure.reason,
                },
            )
            metrics.DELIVERIES.labels(channel, audience, "retried").inc()
            log.info("delivery attempt failed; retrying", extra={**fields, "retry_in_seconds": round(delay, 3)})
        else:
            self._settle(document, {"state": DEAD, "last_error": failure.reason, "finished_at": utcnow()})
            metrics.DELIVERIES.labels(channel, audience, "dead_lettered").inc()
            log.warning("delivery dead-lettered", extra=fields)

    def _settle(self, document: dict[str, Any], changes: dict[str, Any]) -> None:
        if not self.repository.settle_delivery(document["_id"], self.owner, changes):
            log.warning(
                "delivery outcome not recorded: its lease was lost",
                extra={"report_id": document["report_id"], "delivery_id": document["_id"]},
            )

    def _send(self, document: dict[str, Any]) -> str:
        if document["audience"] == CITIZEN:
            return self._send_to_citizen(document)
        return self._send_to_opd(document)

    def _send_to_opd(self, document: dict[str, Any]) -> str:
        opd = document["opd"]
        channels = self.opd_channels.get(opd)
        body = opd_webhook_body(
            document["_id"],
            document["kind"],
            opd,
            document["report_id"],
            document["event_id"],
            document["occurred_at"],
            document["facts"],
            self.settings.public_url,
        )
        if document["channel"] == "webhook":
            if channels is None or channels.webhook is None:
                raise Cancelled("not_configured")
            self._post(channels.webhook, body, document)
            return "webhook"
        if channels is None or not channels.emails:
            raise Cancelled("not_configured")
        if self.smtp is None:
            raise Cancelled("no_channel")
        rendered = render_opd_email(body, self.opd_names.get(opd))
        self.smtp.send(build_email(self.smtp.settings.sender, list(channels.emails), rendered, document["_id"]))
        return "email"

    def _send_to_citizen(self, document: dict[str, Any]) -> str:
        report_id = document["report_id"]
        # the reporter's contact is kept under the report's id, a supporter's under its own
        contact_id = document.get("contact_id") or report_id
        contact = self.repository.contact(contact_id)
        if contact is None:
            if contact_id != report_id or not self._contact_expected(report_id):
                raise Cancelled("no_contact")
            raise DeliveryFailed("contact not registered yet")
        if contact.get("state") not in ACTIVE_STATES or not contact.get("ciphertext"):
            raise Cancelled(_removal_reason(contact))
        plaintext = decrypt_contact(self.contact_key, contact["ciphertext"])
        bundle = parse_contact_plaintext(plaintext) if plaintext is not None else None
        if bundle is None:
            raise DeliveryFailed("contact cannot be decrypted (CONTACT_KEY)", retryable=False)
        token_ciphertext = contact.get("unsubscribe_ciphertext")
        if not token_ciphertext:  # a contact stored before unsubscribe links existed
            fresh = secrets.token_urlsafe(32)
            token_ciphertext = self.repository.ensure_unsubscribe_token(
                contact_id, unsubscribe_token_hash(fresh), encrypt_contact(self.contact_key, fresh)
            )
        token = decrypt_contact(self.contact_key, token_ciphertext or "")
        if token is None:
            raise DeliveryFailed("unsubscribe token cannot be decrypted (CONTACT_KEY)", retryable=False)
        links = CitizenLinks(bundle.tracking_url, unsubscribe_url(self.settings.notify_public_url, token))
        channel, _destination = self._citizen_channel(bundle.kind)
        if channel is None:
            raise Cancelled("no_channel")
        if channel == "email" and self.smtp is not None:
            rendered = render_citizen_email(
                report_id,
                document["kind"],
                document["facts"],
                document["occurred_at"],
                links,
                self.settings.retention_days,
                self.settings.english,
            )
            message = build_email(
                self.smtp.settings.sender, [bundle.contact], rendered, document["_id"], links.unsubscribe_url
            )
            self.smtp.send(message)
            return "email"
        if self.citizen_webhook is None:
            raise Cancelled("no_channel")
        body = citizen_webhook_body(
            document["_id"],
            report_id,
            document["kind"],
            document["facts"],
            document["occurred_at"],
            bundle.contact,
            links,
        )
        self._post(self.citizen_webhook, body, document)
        return "webhook"

    def _post(self, target: WebhookTarget, body: dict[str, Any], document: dict[str, Any]) -> None:
        headers = {
            DELIVERY_HEADER: document["_id"],
            EVENT_HEADER: body.get("type", ""),
            ATTEMPT_HEADER: str(document["attempts"]),
        }
        self.webhooks.post(target.url, target.secret, canonical_json(body), headers)


def _removal_reason(contact: dict[str, Any]) -> str:
    return "unsubscribed" if contact.get("state") == "unsubscribed" else "contact_removed"


def webhook_destination(url: str) -> str:
    """Deliveries to one receiver share a concurrency limit; the key does not show the URL."""
    return "webhook:" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


class Deliveries(DependencyProvider):
    """nameko dependency: the dispatcher, its channels validated at start (a bad OPD_CHANNELS_FILE stops the
    service with every problem listed), its loop running for the container's lifetime."""

    connection = MongoConnection()

    def setup(self) -> None:
        settings = NotifySettings.of_container(self.container)
        repository = NotifyRepository(self.connection.database("notify"))
        directory = load_directory()
        try:
            opd_channels = load_opd_channels(settings.opd_channels_file, directory)
        except ChannelConfigError as exc:
            log.critical("OPD_CHANNELS_FILE is invalid: %s", exc)
            raise
        citizen_webhook = None
        relay_url = settings.citizen_webhook_url
        if relay_url:
            secret = settings.citizen_webhook_secret
            problems = [p for p in (check_webhook_url(relay_url),) if p]
            if len(secret) < MIN_SECRET_CHARS:
                problems.append(f"CITIZEN_WEBHOOK_SECRET must be at least {MIN_SECRET_CHARS} characters")
            if problems:
                log.critical("the citizen relay webhook is misconfigured: %s", "; ".join(problems))
                raise ChannelConfigError("CITIZEN_WEBHOOK_URL", problems)
            citizen_webhook = WebhookTarget(relay_url, secret)
        delivery = DeliverySettings.from_settings(settings)
        smtp_settings = SmtpSettings.from_settings(settings)
        self.dispatcher = Dispatcher(
            repository,
            delivery,
            settings.contact_key,
            SmtpSender(smtp_settings) if smtp_settings else None,
            WebhookSender(delivery.webhook_timeout),
            citizen_webhook,
            opd_channels,
            {opd.code: opd.name for opd in directory.all()},
        )
        log.info(
            "notification channels",
            extra={
                "email": bool(smtp_settings),
                "citizen_relay": citizen_webhook is not None,
                "opds_with_channels": len(opd_channels),
            },
        )
        if smtp_settings is None:
            log.warning("SMTP_HOST is not set: no e-mail notifications (citizens' e-mail contacts get nothing)")

    def start(self) -> None:
        self.dispatcher.start()
        self.thread = self.container.spawn_managed_thread(self.dispatcher.run, identifier="notify.deliveries")

    def stop(self) -> None:
        # the MongoDB client is the container's (MongoConnection): it closes after this
        self.dispatcher.stop()
        self.dispatcher.webhooks.close()

    def kill(self) -> None:
        # attempts in flight are abandoned; their leases make them due again
        self.dispatcher.running = False

    def get_dependency(self, worker_ctx: Any) -> Dispatcher:
        return self.dispatcher
