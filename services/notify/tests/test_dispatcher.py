"""The delivery queue in notify's store, driven by the dispatcher with fake senders (no network): planning, retries
with backoff, dead letters, cancellation, lease recovery, and one slow receiver not holding up the others."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import eventlet
import mongomock
import pytest

from jaklapor.contacts import encrypt_contact, generate_key
from jaklapor.vocabulary import utcnow
from services.notify.channels import DeliveryFailed, OpdChannels, SmtpSettings, WebhookTarget
from services.notify.dependencies import NotifyRepository, report_fields
from services.notify.dispatcher import DeliverySettings, Dispatcher
from services.notify.domain import Notification
from services.notify.settings import NotifySettings

KEY = generate_key()


def clock() -> float:
    return eventlet.hubs.get_hub().clock()


REPORT = "JK-20261128-000001"
SECRET = "a-webhook-secret-of-32-characters"


class FakeSmtp:
    def __init__(self) -> None:
        self.settings = SmtpSettings("smtp.example", sender="JakLapor <noreply@example.org>")
        self.sent: list[Any] = []

    def send(self, message: Any) -> None:
        self.sent.append(message)


class FakeWebhooks:
    """Answers per URL from a script of outcomes (exceptions raised, delays slept), then succeeds."""

    def __init__(self) -> None:
        self.script: dict[str, list[Any]] = {}
        self.delay: dict[str, float] = {}
        self.calls: list[dict[str, Any]] = []

    def post(self, url: str, secret: str, body: bytes, headers: dict[str, str]) -> int:
        self.calls.append({"url": url, "secret": secret, "body": body, "headers": headers, "at": clock()})
        eventlet.sleep(self.delay.get(url, 0))
        outcomes = self.script.get(url) or []
        if outcomes:
            outcome = outcomes.pop(0)
            if isinstance(outcome, BaseException):
                raise outcome
        return 200

    def close(self) -> None:
        pass


@pytest.fixture
def repository() -> NotifyRepository:
    repo = NotifyRepository(mongomock.MongoClient(tz_aware=True)["notify"])
    repo.ensure_indexes()
    return repo


def make(repository: NotifyRepository, **kw: Any) -> tuple[Dispatcher, FakeSmtp, FakeWebhooks]:
    smtp, hooks = FakeSmtp(), FakeWebhooks()
    settings = DeliverySettings.from_settings(
        NotifySettings(
            delivery_backoff_base_seconds=0.02,
            delivery_backoff_max_seconds=0.05,
            delivery_max_attempts=3,
            delivery_poll_seconds=0.01,
            delivery_per_destination=kw.pop("per_destination", 2),
            delivery_attempt_timeout_seconds=kw.pop("attempt_timeout", 2.0),
            public_url="https://lapor.example",
            notify_public_url="https://notify.example",
        )
    )
    channels = kw.pop(
        "channels",
        {
            "opd-a": OpdChannels(WebhookTarget("https://a.example/hook", SECRET), ("posko@a.example",)),
            "opd-b": OpdChannels(WebhookTarget("https://b.example/hook", SECRET)),
        },
    )
    dispatcher = Dispatcher(
        repository,
        settings,
        KEY,
        kw.pop("smtp", smtp),
        hooks,
        kw.pop("relay", WebhookTarget("https://relay.example/", SECRET)),
        channels,
        {"opd-a": "Dinas A", "opd-b": "Dinas B"},
    )
    return dispatcher, smtp, hooks


@pytest.fixture
def running(repository: NotifyRepository) -> Iterator[Any]:
    threads: list[Any] = []

    def start(dispatcher: Dispatcher) -> Dispatcher:
        dispatcher.start()
        threads.append((dispatcher, eventlet.spawn(dispatcher.run)))
        eventlet.sleep(0)
        return dispatcher

    yield start
    for dispatcher, thread in threads:
        dispatcher.stop(1)
        thread.kill()


def submitted(repository: NotifyRepository, has_contact: bool) -> None:
    """The report's submission as notify records it: its first timeline entry, and whether it has a contact."""
    repository.append(REPORT, {"event_id": uuid.uuid4().hex, "kind": "submitted"}, report_fields("h" * 64, has_contact))


def register(repository: NotifyRepository, contact: str, token: str = "U" * 43) -> None:
    submitted(repository, has_contact=True)
    bundle = json.dumps({"contact": contact, "tracking_url": "https://lapor.example/api/v1/reports/TOKEN"})
    repository.store_contact(
        REPORT,
        "h" * 64,
        encrypt_contact(KEY, bundle),
        kind="email" if "@" in contact else "phone",
        unsubscribe_hash="x" + token,
        unsubscribe_ciphertext=encrypt_contact(KEY, token),
    )


def notification(audience: str = "citizen", opd: str | None = None, event_id: str = "e1", **facts: Any) -> Notification:
    return Notification(
        audience,  # type: ignore[arg-type]
        "status_changed" if audience == "citizen" else "report_assigned",
        REPORT,
        event_id,
        "2026-11-28T01:02:03Z",
        opd=opd,
        facts={"status": "dikerjakan", "note": "Petugas menuju lokasi", **facts},
    )


def wait_until(condition: Any, timeout: float = 3.0) -> Any:
    deadline = clock() + timeout
    while clock() < deadline:
        result = condition()
        if result:
            return result
        eventlet.sleep(0.01)
    raise AssertionError(f"timed out waiting for {condition}")


def states(repository: NotifyRepository) -> dict[str, str]:
    return {d["_id"]: d["state"] for d in repository.deliveries.find()}


# ---- planning ------------------------------------------------------------------------------------------------------


def test_planning_is_idempotent_per_event(repository: NotifyRepository) -> None:
    dispatcher, _smtp, _hooks = make(repository)
    register(repository, "warga@example.org")
    batch = [notification(), notification("opd", "opd-a"), notification("opd", "opd-b")]
    assert dispatcher.enqueue(batch) == 4  # citizen e-mail, opd-a webhook + e-mail, opd-b webhook
    assert dispatcher.enqueue(batch) == 0
    documents = list(repository.deliveries.find())
    assert sorted((d["audience"], d["opd"], d["channel"]) for d in documents) == [
        ("citizen", None, "email"),
        ("opd", "opd-a", "email"),
        ("opd", "opd-a", "webhook"),
        ("opd", "opd-b", "webhook"),
    ]
    assert "warga" not in json.dumps(documents, default=str), "a delivery never holds the contact"


def test_who_gets_nothing(repository: NotifyRepository) -> None:
    dispatcher, _smtp, _hooks = make(repository, smtp=None, relay=None)
    submitted(repository, has_contact=False)
    assert dispatcher.enqueue([notification(), notification("opd", "opd-unconfigured")]) == 0
    # e-mail contact but no SMTP server; phone contact but no relay: counted, not an error
    repository.reports.delete_many({})
    register(repository, "warga@example.org")
    assert dispatcher.enqueue([notification(event_id="e2")]) == 0
    repository.contacts.delete_many({})
    register(repository, "+6281234567890")
    assert dispatcher.enqueue([notification(event_id="e3")]) == 0
    repository.remove_contact(REPORT, "unsubscribed")
    dispatcher, _smtp, _hooks = make(repository)
    assert dispatcher.enqueue([notification(event_id="e4")]) == 0


def test_a_contact_still_on_its_way_is_waited_for(repository: NotifyRepository, running: Any) -> None:
    dispatcher, smtp, _hooks = make(repository)
    assert dispatcher.enqueue([notification()]) == 1  # the report is not even known yet
    running(dispatcher)
    wait_until(lambda: list(repository.deliveries.find({"attempts": {"$gte": 1}, "state": "pending"})))
    assert smtp.sent == []
    register(repository, "warga@example.org")
    wait_until(lambda: smtp.sent)
    (document,) = repository.deliveries.find()
    assert document["state"] == "sent" and document["channel"] == "email"


# ---- sending -------------------------------------------------------------------------------------------------------


def test_citizen_email_is_rendered_with_both_links(repository: NotifyRepository, running: Any) -> None:
    dispatcher, smtp, _hooks = make(repository)
    register(repository, "warga@example.org", token="T" * 43)
    dispatcher.enqueue([notification()])
    running(dispatcher)
    (message,) = wait_until(lambda: smtp.sent)
    text = message.get_content()
    assert message["To"] == "warga@example.org" and "https://lapor.example/api/v1/reports/TOKEN" in text
    assert f"https://notify.example/api/v1/unsubscribe/{'T' * 43}" in text


def test_phone_contact_goes_to_the_relay_signed(repository: NotifyRepository, running: Any) -> None:
    dispatcher, _smtp, hooks = make(repository)
    register(repository, "+6281234567890")
    dispatcher.enqueue([notification()])
    running(dispatcher)
    (call,) = wait_until(lambda: hooks.calls)
    assert call["url"] == "https://relay.example/" and json.loads(call["body"])["to"] == "+6281234567890"
    assert call["headers"]["X-Jaklapor-Attempt"] == "1"


def test_failures_are_retried_with_backoff_then_sent_once(repository: NotifyRepository, running: Any) -> None:
    dispatcher, _smtp, hooks = make(repository)
    hooks.script["https://b.example/hook"] = [DeliveryFailed("http 503"), DeliveryFailed("webhook timeout")]
    dispatcher.enqueue([notification("opd", "opd-b")])
    running(dispatcher)
    wait_until(lambda: "sent" in states(repository).values())
    assert [c["headers"]["X-Jaklapor-Attempt"] for c in hooks.calls] == ["1", "2", "3"]
    assert (
        len({c["body"] for c in hooks.calls}) == 1
        and len({c["headers"]["X-Jaklapor-Delivery"] for c in hooks.calls}) == 1
    )
    gaps = [b["at"] - a["at"] for a, b in zip(hooks.calls, hooks.calls[1:], strict=False)]
    assert gaps[0] >= 0.01 and gaps[1] >= 0.02, gaps
    (document,) = repository.deliveries.find()
    assert (document["attempts"], document["last_error"]) == (3, None)


def test_dead_lettered_after_the_last_attempt_with_the_last_error(repository: NotifyRepository, running: Any) -> None:
    dispatcher, _smtp, hooks = make(repository)
    hooks.script["https://b.example/hook"] = [DeliveryFailed(f"http 50{i}") for i in range(10)]
    dispatcher.enqueue([notification("opd", "opd-b")])
    running(dispatcher)
    wait_until(lambda: "dead" in states(repository).values())
    eventlet.sleep(0.1)
    (document,) = repository.deliveries.find()
    assert (document["attempts"], document["last_error"], len(hooks.calls)) == (3, "http 502", 3)


def test_a_permanent_refusal_is_dead_lettered_at_once(repository: NotifyRepository, running: Any) -> None:
    dispatcher, _smtp, hooks = make(repository)
    hooks.script["https://b.example/hook"] = [DeliveryFailed("smtp 550 recipient refused", retryable=False)]
    dispatcher.enqueue([notification("opd", "opd-b")])
    running(dispatcher)
    wait_until(lambda: "dead" in states(repository).values())
    assert len(hooks.calls) == 1


def test_a_hung_receiver_is_cut_off_by_the_attempt_timeout(repository: NotifyRepository, running: Any) -> None:
    dispatcher, _smtp, hooks = make(repository, attempt_timeout=0.05)
    hooks.delay["https://b.example/hook"] = 10
    dispatcher.enqueue([notification("opd", "opd-b")])
    running(dispatcher)
    wait_until(lambda: "dead" in states(repository).values())
    (document,) = repository.deliveries.find()
    assert document["last_error"] == "attempt timeout" and document["attempts"] == 3


def test_pending_messages_to_a_removed_contact_are_cancelled(repository: NotifyRepository, running: Any) -> None:
    dispatcher, smtp, _hooks = make(repository)
    register(repository, "warga@example.org")
    dispatcher.enqueue([notification()])
    repository.remove_contact(REPORT, "retention")
    running(dispatcher)
    wait_until(lambda: "cancelled" in states(repository).values())
    assert smtp.sent == []


def test_an_interrupted_attempt_is_due_again_when_its_lease_runs_out(repository: NotifyRepository) -> None:
    dispatcher, _smtp, _hooks = make(repository)
    dispatcher.enqueue([notification("opd", "opd-b")])
    now = utcnow()
    claimed = repository.claim_delivery(now, [], now + timedelta(seconds=30), "a-process-that-died")
    assert claimed is not None and claimed["attempts"] == 1
    assert repository.claim_delivery(now, [], now, "me") is None
    assert repository.release_expired_leases(now + timedelta(seconds=29)) == 0
    assert repository.release_expired_leases(now + timedelta(seconds=31)) == 1
    again = repository.claim_delivery(now + timedelta(seconds=31), [], now + timedelta(seconds=60), "me")
    assert again is not None and again["attempts"] == 2
    # the dead process's late answer is not recorded over the new attempt
    assert not repository.settle_delivery(again["_id"], "a-process-that-died", {"state": "sent"})
    assert repository.settle_delivery(again["_id"], "me", {"state": "sent"})


def test_a_slow_receiver_does_not_hold_up_the_others(repository: NotifyRepository, running: Any) -> None:
    dispatcher, _smtp, hooks = make(repository, per_destination=2)
    hooks.delay["https://a.example/hook"] = 0.5
    dispatcher.enqueue([notification("opd", "opd-a", event_id=f"slow{i}") for i in range(6)])
    running(dispatcher)
    eventlet.sleep(0.05)
    started = clock()
    dispatcher.enqueue([notification("opd", "opd-b", event_id="fast")])
    wait_until(lambda: any(c["url"] == "https://b.example/hook" for c in hooks.calls))
    assert clock() - started < 0.2
    in_flight_a = [c for c in hooks.calls if c["url"] == "https://a.example/hook"]
    assert len(in_flight_a) == 2, "never more than DELIVERY_PER_DESTINATION attempts at once for one receiver"


def test_a_contact_stored_by_an_older_notify_still_gets_messages_and_a_link(
    repository: NotifyRepository, running: Any
) -> None:
    """Before this version notify kept only the ciphertext of the bare contact: no state, kind or unsubscribe token."""
    submitted(repository, has_contact=True)
    repository.contacts.insert_one(
        {"_id": REPORT, "ciphertext": encrypt_contact(KEY, "lama@example.org"), "token_hash": "h" * 64}
    )
    dispatcher, smtp, _hooks = make(repository)
    assert dispatcher.enqueue([notification()]) == 1
    running(dispatcher)
    (message,) = wait_until(lambda: smtp.sent)
    assert message["To"] == "lama@example.org" and "api/v1/reports/" not in message.get_content()
    token = message["List-Unsubscribe"].strip("<>").rsplit("/", 1)[1]
    from services.notify.domain import unsubscribe_token_hash

    assert repository.contact_by_unsubscribe_hash(unsubscribe_token_hash(token))["_id"] == REPORT
    repository.mark_final(REPORT, utcnow() - timedelta(days=40))
    assert [c["_id"] for c in repository.contacts_final_before(utcnow() - timedelta(days=30))] == [REPORT]
    assert repository.remove_contact(REPORT, "retention")
    assert "ciphertext" not in repository.contact(REPORT)


def test_a_report_seen_without_a_contact_gets_no_citizen_delivery(repository: NotifyRepository) -> None:
    dispatcher, _smtp, _hooks = make(repository)
    repository.append(REPORT, {"event_id": "earlier", "kind": "routed"})  # known, but its submission never said so
    assert dispatcher.enqueue([notification()]) == 0
    repository.reports.delete_many({})
    assert dispatcher.enqueue([notification(event_id="e9")]) == 1, "not seen at all yet: wait for the hand-over"


def test_a_caller_that_knows_there_is_no_contact_saves_the_lookups(
    repository: NotifyRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher, _smtp, _hooks = make(repository)
    lookups: list[str] = []
    monkeypatch.setattr(repository, "contact", lambda report_id: lookups.append(report_id))
    assert dispatcher.enqueue([notification()], has_contact=False) == 0
    assert lookups == []
    assert dispatcher.enqueue([notification(event_id="e9")], has_contact=None) == 1  # not known: looked up
    assert lookups == [REPORT]
