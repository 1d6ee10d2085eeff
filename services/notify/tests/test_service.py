"""NotifyService's entrypoints with nameko's worker_factory and in-memory fakes (tests/fakes.py): the timeline and
notifications of each event, live wake-ups, the contact hand-over, unsubscribing, the retention purge and the live
stream."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from typing import Any

import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from jaklapor.config import load_config
from jaklapor.contacts import decrypt_contact, encrypt_contact, generate_key
from jaklapor.live import LiveHub
from jaklapor.messaging import PermanentFailure, PublishFailed
from jaklapor.settings import InvalidSettings
from jaklapor.tokens import hash_token, new_tracking_token
from jaklapor.vocabulary import utcnow
from jaklapor.web import ApiError
from services.notify import service as notify_service
from services.notify.dependencies import CANCELLED, DEAD, PENDING, SENDING
from services.notify.dispatcher import DeliverySettings
from services.notify.domain import notifications_for, unsubscribe_token_hash
from services.notify.service import NOTIFY_EVENTS, NotifyService
from services.notify.settings import NotifySettings
from services.notify.tests.fakes import FakeDispatcher, FakeNotifyStore, FakePublisher
from services.notify.tests.reports import AT, REPORT, routed, status_changed, submitted

KEY = generate_key()
NAMES = {"kelurahan-melawai": "Kelurahan Melawai"}


class Notify:
    """A notify worker and its fakes."""

    def __init__(self, **settings: Any) -> None:
        self.store = FakeNotifyStore()
        self.live = LiveHub()
        self.publisher = FakePublisher()
        self.deliveries = FakeDispatcher(NAMES)
        self.service = worker_factory(
            NotifyService,
            settings=NotifySettings(contact_key=KEY, **settings),
            store=self.store,
            live=self.live,
            publisher=self.publisher,
            deliveries=self.deliveries,
        )

    def record(self, event: Any) -> None:
        self.service.record_events([event.to_message()])

    def register(self, contact: str = "warga@example.org", token_hash: str = "a" * 64) -> str:
        """The contact hand-over intake sends for the report; returns its unsubscribe token."""
        bundle = json.dumps({"contact": contact, "tracking_url": "https://lapor.example/lacak/TOKEN"})
        self.service.register_contact(
            {
                "message_type": "contact_registered",
                "report_id": REPORT,
                "tracking_token_hash": token_hash,
                "contact_ciphertext": encrypt_contact(KEY, bundle),
            }
        )
        token = decrypt_contact(KEY, self.store.contacts[REPORT]["unsubscribe_ciphertext"])
        assert token is not None
        return token


def request(path: str, method: str = "GET", accept: str = "application/json", **headers: str) -> Request:
    return Request(EnvironBuilder(path=path, method=method, headers={"Accept": accept, **headers}).get_environ())


def answer(response: Response) -> dict[str, Any]:
    return json.loads(response.get_data())


# ---- report events ----------------------------------------------------------------------------------------------


def test_a_submitted_report_is_registered_with_its_first_timeline_entry() -> None:
    notify = Notify()
    notify.record(submitted(token_hash="b" * 64, has_contact=True))
    assert notify.store.report_for_token("b" * 64) == REPORT
    [(seq, entry)] = notify.store.entries_after(REPORT, 0)
    assert seq == 1 and entry["kind"] == "submitted" and entry["status"] == "menunggu"
    assert notify.deliveries.enqueued == [([], True)]  # nobody is told of a submission; the contact is known
    assert notify.publisher.published == []  # nobody follows it live yet


def test_an_event_plans_its_notifications_and_wakes_the_streams_that_follow_the_report() -> None:
    notify = Notify()
    notify.record(submitted())
    notify.store.stream_opened(REPORT)
    event = routed()
    notify.record(event)
    notifications, has_contact = notify.deliveries.enqueued[-1]
    assert notifications == notifications_for(event, NAMES.get) and has_contact is True
    [(exchange, key, message_id, body)] = notify.publisher.published
    assert (exchange, key, message_id) == (NOTIFY_EVENTS.name, "timeline_updated", f"{event.event_id}:wake")
    assert body == {"report_id": REPORT, "seq": 2}


def test_a_redelivered_event_adds_no_entry_and_wakes_nobody() -> None:
    notify = Notify()
    notify.record(submitted())
    notify.store.stream_opened(REPORT)
    event = routed()
    notify.record(event)
    notify.record(event)
    assert [entry["kind"] for _, entry in notify.store.entries_after(REPORT, 0)] == ["submitted", "routed"]
    assert len(notify.publisher.published) == 1
    # planned again (the dispatcher keeps one delivery per event id), the contact looked up as nothing was written
    (first, known), (again, unknown) = notify.deliveries.enqueued[-2:]
    assert again == first and (known, unknown) == (True, None)


def test_a_lost_wake_up_does_not_fail_the_event() -> None:
    notify = Notify()
    notify.record(submitted())
    notify.store.stream_opened(REPORT)
    notify.publisher.failure = PublishFailed("broker gone")
    notify.record(routed())  # streams catch up through their safety poll
    assert len(notify.store.entries_after(REPORT, 0)) == 2


def test_a_final_status_starts_the_contact_retention_clock() -> None:
    notify = Notify()
    notify.record(submitted())
    notify.register()
    notify.record(status_changed("selesai"))
    assert notify.store.is_final(REPORT) and notify.store.contacts[REPORT]["final_at"] == AT


def test_an_event_notify_cannot_read_is_dead_lettered() -> None:
    notify = Notify()
    with pytest.raises(PermanentFailure):
        notify.service.record_events([{"event_type": "intake.report_submitted", "report_id": REPORT}])
    assert notify.store.timeline == {} and notify.deliveries.enqueued == []


# ---- batches of events (jaklapor/batches.py) ---------------------------------------------------------------------


def test_a_batch_numbers_a_reports_entries_in_order_as_one_by_one() -> None:
    notify = Notify()
    batch = [submitted(has_contact=True), routed(), status_changed("dikerjakan")]
    notify.service.record_events([event.to_message() for event in batch])
    assert [(seq, entry["kind"]) for seq, entry in notify.store.entries_after(REPORT, 0)] == [
        (1, "submitted"),
        (2, "routed"),
        (3, "status_changed"),
    ]
    # one timeline write and one delivery write for the batch, each event's notifications planned as alone
    assert notify.store.batches == [3] and notify.deliveries.batches == [3]
    assert notify.deliveries.enqueued == [
        (notifications_for(event, NAMES.get), True) for event in batch
    ]  # the submission told the later events of the batch that the reporter left a contact


def test_a_batch_wakes_the_streams_of_its_watched_entries_in_one_publish() -> None:
    notify = Notify()
    notify.record(submitted())
    notify.store.stream_opened(REPORT)
    first, second = routed(), status_changed("dikerjakan")
    notify.service.record_events([first.to_message(), second.to_message()])
    assert notify.publisher.calls == 1
    assert [(message_id, body) for _, _, message_id, body in notify.publisher.published] == [
        (f"{first.event_id}:wake", {"report_id": REPORT, "seq": 2}),
        (f"{second.event_id}:wake", {"report_id": REPORT, "seq": 3}),
    ]


def test_a_batch_with_a_redelivered_event_applies_the_rest_once() -> None:
    notify = Notify()
    notify.record(submitted())
    notify.store.stream_opened(REPORT)
    again, new = routed(), status_changed("dikerjakan")
    notify.record(again)
    notify.service.record_events([again.to_message(), new.to_message(), new.to_message()])
    assert [entry["kind"] for _, entry in notify.store.entries_after(REPORT, 0)] == [
        "submitted",
        "routed",
        "status_changed",
    ]
    # the redelivered ones wake nobody; their notifications are planned again with the contact looked up (the
    # dispatcher keeps one delivery per event id)
    assert [message_id for _, _, message_id, _ in notify.publisher.published] == [
        f"{again.event_id}:wake",
        f"{new.event_id}:wake",
    ]
    assert [known for _, known in notify.deliveries.enqueued[-3:]] == [None, True, None]


def test_a_batch_holding_an_event_notify_cannot_read_fails_whole_and_writes_nothing() -> None:
    notify = Notify()
    bodies = [submitted().to_message(), {"event_type": "intake.report_submitted", "report_id": REPORT}]
    with pytest.raises(PermanentFailure):  # its messages are handled again one by one: only this one is dead
        notify.service.record_events(bodies)
    assert notify.store.timeline == {} and notify.deliveries.enqueued == [] and notify.store.batches == []


def test_final_marks_in_a_batch_follow_the_batch_order() -> None:
    notify = Notify()
    notify.record(submitted())
    notify.register()
    done = status_changed("selesai")
    reopened = status_changed("dikerjakan", from_status="selesai")
    notify.service.record_events([done.to_message(), reopened.to_message()])  # in batch order: marked, unmarked
    assert not notify.store.is_final(REPORT) and notify.store.contacts[REPORT]["final_at"] is None
    notify.service.record_events([status_changed("ditolak", from_status="dikerjakan").to_message()])
    assert notify.store.is_final(REPORT)


def test_a_wake_up_reaches_this_process_streams_of_the_report() -> None:
    notify = Notify()
    wakeups = notify.live.subscribe(REPORT)
    notify.service.wake_streams({"report_id": "JK-other"})
    notify.service.wake_streams(["not", "a", "dict"])  # type: ignore[arg-type]
    assert wakeups.qsize() == 0
    notify.service.wake_streams({"report_id": REPORT, "seq": 3})
    assert wakeups.get_nowait() is True


# ---- contacts -----------------------------------------------------------------------------------------------------


def test_a_contact_is_kept_encrypted_once_with_its_own_unsubscribe_token() -> None:
    notify = Notify()
    token = notify.register("warga@example.org")
    contact = notify.store.contacts[REPORT]
    assert contact["kind"] == "email" and contact["unsubscribe_hash"] == unsubscribe_token_hash(token)
    assert "warga@example.org" in (decrypt_contact(KEY, contact["ciphertext"]) or "")
    notify.register("0812000000")  # a redelivered hand-over replaces nothing
    assert notify.store.contacts[REPORT]["kind"] == "email"


@pytest.mark.parametrize(
    "body",
    [
        {"report_id": REPORT, "tracking_token_hash": "a" * 64},
        {
            "report_id": REPORT,
            "tracking_token_hash": "a" * 64,
            "contact_ciphertext": encrypt_contact(generate_key(), "x"),
        },
    ],
)
def test_a_hand_over_without_a_readable_contact_is_dead_lettered(body: dict[str, Any]) -> None:
    notify = Notify()
    with pytest.raises(PermanentFailure):
        notify.service.register_contact(body)
    assert notify.store.contacts == {}


def test_unsubscribing_deletes_the_contact_and_cancels_what_was_not_sent() -> None:
    notify = Notify()
    token = notify.register()
    notify.store.citizen_deliveries[REPORT] = [PENDING, SENDING, DEAD]
    response = notify.service.unsubscribe(request(f"/api/v1/unsubscribe/{token}"), token)
    assert response.status_code == 200 and answer(response)["status"] == "unsubscribed"
    assert response.headers["Cache-Control"] == "no-store"
    contact = notify.store.contacts[REPORT]
    assert contact["state"] == "unsubscribed" and "ciphertext" not in contact
    assert notify.store.citizen_deliveries[REPORT] == [CANCELLED, SENDING, DEAD]
    # the link still answers (a mail client may follow it twice), and the one-click POST the same
    again = notify.service.unsubscribe_one_click(request(f"/api/v1/unsubscribe/{token}", "POST"), token)
    assert again.status_code == 200 and answer(again)["status"] == "unsubscribed"


def test_an_unsubscribe_link_after_the_retention_purge_says_the_contact_is_gone() -> None:
    notify = Notify()
    token = notify.register()
    notify.store.remove_contact(REPORT, "retention")
    response = notify.service.unsubscribe(request(f"/api/v1/unsubscribe/{token}"), token)
    assert response.status_code == 200 and answer(response)["status"] == "removed"


@pytest.mark.parametrize("token", ["U" * 43, "not a token"])
def test_an_unknown_unsubscribe_link_is_404(token: str) -> None:
    notify = Notify()
    notify.register()
    response = notify.service.unsubscribe(request("/api/v1/unsubscribe/x"), token)
    assert response.status_code == 404 and answer(response)["error"]["code"] == "unsubscribe_link_not_found"


def test_a_browser_gets_the_unsubscribe_answer_as_a_page() -> None:
    notify = Notify()
    token = notify.register()
    response = notify.service.unsubscribe(request(f"/api/v1/unsubscribe/{token}", accept="text/html"), token)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert f"JakLapor: {REPORT}" in response.get_data(as_text=True)


def test_contacts_are_purged_after_the_retention_period_once_nothing_waits_for_them() -> None:
    notify = Notify(contact_retention_days=30)
    notify.register()
    notify.store.mark_final(REPORT, utcnow() - timedelta(days=31))
    notify.store.citizen_deliveries[REPORT] = [PENDING]  # the message telling the citizen it is done goes out first
    notify.service.purge_contacts()
    assert notify.store.contacts[REPORT]["state"] == "active"
    notify.store.citizen_deliveries[REPORT] = [CANCELLED]
    notify.service.purge_contacts()
    assert notify.store.contacts[REPORT]["state"] == "retention"


def test_a_contact_within_its_retention_period_is_kept() -> None:
    notify = Notify(contact_retention_days=30)
    notify.register()
    notify.store.mark_final(REPORT, utcnow() - timedelta(days=29))
    notify.service.purge_contacts()
    assert notify.store.contacts[REPORT]["state"] == "active"


# ---- the live stream ----------------------------------------------------------------------------------------------


def test_a_stream_sends_the_timeline_and_ends_after_the_final_entry() -> None:
    notify = Notify()
    token = new_tracking_token()
    notify.record(submitted(token_hash=hash_token(token)))
    notify.record(routed())
    notify.record(status_changed("selesai"))
    response = notify.service.stream(request(f"/api/v1/reports/{token}/stream", accept="text/event-stream"), token)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    frames = list(itertools.islice(response.response, 10))
    assert frames[0] == b"retry: 3000\n\n"
    assert [frame.split(b"\n")[0] for frame in frames[1:]] == [b"id: 1", b"id: 2", b"id: 3"]
    assert notify.store.reports[REPORT]["streams"] == 0  # closed when it ended


def test_a_stream_resumes_after_the_last_event_id() -> None:
    notify = Notify()
    token = new_tracking_token()
    notify.record(submitted(token_hash=hash_token(token)))
    notify.record(status_changed("ditolak"))
    resumed = request(f"/api/v1/reports/{token}/stream", **{"Last-Event-ID": "1"})
    frames = list(itertools.islice(notify.service.stream(resumed, token).response, 10))
    assert [frame.split(b"\n")[0] for frame in frames[1:]] == [b"id: 2"]


def test_a_finished_report_whose_entries_the_client_has_answers_204() -> None:
    notify = Notify()
    token = new_tracking_token()
    notify.record(submitted(token_hash=hash_token(token)))
    notify.record(status_changed("selesai"))
    done = request(f"/api/v1/reports/{token}/stream", **{"Last-Event-ID": "2"})
    assert notify.service.stream(done, token).status_code == 204


def test_a_stream_for_an_unknown_token_is_404(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify_service, "REGISTRATION_WAIT_SECONDS", 0.0)
    notify = Notify()
    for token in (new_tracking_token(), "short"):
        with pytest.raises(ApiError) as caught:
            notify.service.stream(request("/api/v1/reports/x/stream"), token)
        assert caught.value.status == 404 and caught.value.code == "report_not_found"


def test_the_stream_is_readable_by_the_citizen_app_origin_only() -> None:
    notify = Notify(public_url="https://lapor.example:443/")
    token = new_tracking_token()
    notify.record(submitted(token_hash=hash_token(token)))
    cors = {"Access-Control-Allow-Origin": "https://lapor.example", "Vary": "Origin"}
    live = notify.service.stream(request(f"/api/v1/reports/{token}/stream", Origin="https://lapor.example"), token)
    assert {key: live.headers[key] for key in cors} == cors
    notify.record(status_changed("selesai"))
    done = notify.service.stream(request("/", **{"Last-Event-ID": "2"}), token)
    assert done.status_code == 204 and {key: done.headers[key] for key in cors} == cors
    preflight = notify.service.stream_preflight(request("/", "OPTIONS"), token)
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == "https://lapor.example"
    assert "Last-Event-ID" in preflight.headers["Access-Control-Allow-Headers"]
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET"


def test_an_unknown_stream_is_answered_to_the_citizen_app_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify_service, "REGISTRATION_WAIT_SECONDS", 0.0)
    with pytest.raises(ApiError) as caught:
        Notify().service.stream(request("/"), new_tracking_token())
    assert caught.value.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8000"


# ---- settings -----------------------------------------------------------------------------------------------------


def test_the_packaged_configuration_is_valid_and_gives_the_documented_defaults() -> None:
    settings = NotifySettings.from_config(load_config())
    delivery = DeliverySettings.from_settings(settings)
    assert (delivery.retry.max_attempts, delivery.poll_seconds, delivery.concurrency) == (10, 1.0, 20)
    assert delivery.lease_seconds == 125 and settings.notify_english is True


def test_settings_are_checked_at_start_and_counts_are_at_least_one() -> None:
    with pytest.raises(InvalidSettings, match="DELIVERY_CONCURRENCY"):
        NotifySettings.from_config({"DELIVERY_CONCURRENCY": "many"})
    clamped = DeliverySettings.from_settings(NotifySettings(delivery_concurrency=0, delivery_max_attempts=0))
    assert clamped.concurrency == 1 and clamped.retry.max_attempts == 1
    assert NotifySettings.from_config({"SMTP_PASSWORD": 1234}).smtp_password == "1234"  # digits stay text


def test_a_public_url_that_is_no_web_address_stops_notify_at_start() -> None:
    with pytest.raises(InvalidSettings, match="PUBLIC_URL"):
        NotifySettings.from_config({"PUBLIC_URL": "lapor.example"})
