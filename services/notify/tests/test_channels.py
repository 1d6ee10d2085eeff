"""The channels against real servers on loopback (aiosmtpd, http.server), and the agencies' channel file."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from services.notify.channels import (
    ChannelConfigError,
    DeliveryFailed,
    OpdChannels,
    SmtpSender,
    SmtpSettings,
    WebhookSender,
    WebhookTarget,
    load_opd_channels,
    parse_opd_channels,
)
from services.notify.settings import NotifySettings
from services.notify.signing import verify_signature

KNOWN = {"kelurahan-melawai", "sudin-perhubungan-jakarta-selatan"}
SECRET = "a-webhook-secret-of-32-characters"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- the agencies' channel file ------------------------------------------------------------------------------------


def test_channels_are_parsed_and_addresses_normalized() -> None:
    channels = parse_opd_channels(
        {
            "kelurahan-melawai": {"webhook": {"url": "https://opd.example/hook", "secret": SECRET}},
            "sudin-perhubungan-jakarta-selatan": {"email": ["Posko@Example.ORG", "kepala@example.org"]},
        },
        KNOWN,
    )
    assert channels["kelurahan-melawai"] == OpdChannels(WebhookTarget("https://opd.example/hook", SECRET), ())
    assert channels["sudin-perhubungan-jakarta-selatan"].emails == ("Posko@example.org", "kepala@example.org")
    assert SECRET not in repr(channels), "secrets never printed"


def test_a_secret_can_come_from_the_environment() -> None:
    data = {"kelurahan-melawai": {"webhook": {"url": "http://10.0.0.1:8080/x", "secret_env": "MELAWAI_SECRET"}}}
    channels = parse_opd_channels(data, KNOWN, environ={"MELAWAI_SECRET": SECRET})
    assert channels["kelurahan-melawai"].webhook == WebhookTarget("http://10.0.0.1:8080/x", SECRET)
    with pytest.raises(ChannelConfigError, match="MELAWAI_SECRET"):
        parse_opd_channels(data, KNOWN, environ={})


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(ChannelConfigError) as caught:
        parse_opd_channels(
            {
                "dinas-khayalan": {"email": "a@example.org"},
                "kelurahan-melawai": {"webhook": {"url": "ftp://opd.example/", "secret": "short"}, "sms": "x"},
                "sudin-perhubungan-jakarta-selatan": {"email": "bukan alamat"},
            },
            KNOWN,
            "opd-channels.yaml",
        )
    problems = caught.value.problems
    assert str(caught.value).startswith("opd-channels.yaml: ")
    assert any(p.startswith("dinas-khayalan: unknown OPD code") for p in problems)
    assert any("kelurahan-melawai: unknown keys ['sms']" in p for p in problems)
    assert any("kelurahan-melawai.webhook: url must be http(s)" in p for p in problems)
    assert any("kelurahan-melawai.webhook: secret must be" in p for p in problems)
    assert any(p.startswith("sudin-perhubungan-jakarta-selatan.email: 'bukan alamat'") for p in problems)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([1, 2], "must be a mapping of OPD code"),
        ({"kelurahan-melawai": "https://x"}, "must be a mapping with `webhook` and/or `email`"),
        ({"kelurahan-melawai": {}}, "configure a webhook and/or an email"),
        ({"kelurahan-melawai": {"webhook": "https://x"}}, "must be a mapping with url and secret"),
        ({"kelurahan-melawai": {"webhook": {"secret": SECRET}}}, "url is missing"),
    ],
)
def test_malformed_entries(data: Any, problem: str) -> None:
    with pytest.raises(ChannelConfigError, match=problem):
        parse_opd_channels(data, KNOWN)


def test_no_file_means_no_agency_channels(tmp_path: Any) -> None:
    assert load_opd_channels(None, KNOWN) == {} and load_opd_channels("", KNOWN) == {}
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_opd_channels(empty, KNOWN) == {}
    with pytest.raises(ChannelConfigError, match="cannot be read"):
        load_opd_channels(tmp_path / "missing.yaml", KNOWN)
    broken = tmp_path / "broken.yaml"
    broken.write_text("kelurahan-melawai: {webhook: [")
    with pytest.raises(ChannelConfigError, match="not valid YAML"):
        load_opd_channels(broken, KNOWN)


def test_the_real_directory_validates_codes(tmp_path: Any) -> None:
    from jaklapor.reference import load_directory

    good = tmp_path / "channels.yaml"
    good.write_text("sudin-perhubungan-jakarta-selatan:\n  email: posko@example.org\n")
    assert load_opd_channels(good, load_directory())["sudin-perhubungan-jakarta-selatan"].emails
    good.write_text("sudin-perhubungan-jakarta-tengah-raya:\n  email: posko@example.org\n")
    with pytest.raises(ChannelConfigError, match="unknown OPD code"):
        load_opd_channels(good, load_directory())


# ---- SMTP ----------------------------------------------------------------------------------------------------------


class Handler:
    def __init__(self) -> None:
        self.received: list[Any] = []
        self.refuse: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((session.authenticated, envelope))
        return "250 OK"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"jaklapor", b"rahasia")
    return AuthResult(success=ok)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Handler, int]]:
    handler = Handler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
        auth_required=False,
    )
    controller.start()
    yield handler, port
    controller.stop()


def message(to: str = "warga@example.org") -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "noreply@example.org"
    mail["To"] = to
    mail["Subject"] = "Laporan"
    mail.set_content("Halo")
    return mail


def test_smtp_sends_with_auth(smtp_server: tuple[Handler, int]) -> None:
    handler, port = smtp_server
    settings = SmtpSettings("127.0.0.1", port, starttls=False, user="jaklapor", password="rahasia", timeout=5)
    SmtpSender(settings).send(message())
    ((authenticated, envelope),) = handler.received
    assert authenticated and envelope.rcpt_tos == ["warga@example.org"]


def test_smtp_wrong_password_is_retried_not_dropped(smtp_server: tuple[Handler, int]) -> None:
    _handler, port = smtp_server
    settings = SmtpSettings("127.0.0.1", port, starttls=False, user="jaklapor", password="salah", timeout=1)
    with pytest.raises(DeliveryFailed) as caught:
        SmtpSender(settings).send(message())
    assert caught.value.retryable and caught.value.reason.startswith("smtp ")  # 535, or a hang-up after it


def test_smtp_refuses_to_send_in_clear_when_starttls_is_required(smtp_server: tuple[Handler, int]) -> None:
    handler, port = smtp_server  # this server offers no STARTTLS
    with pytest.raises(DeliveryFailed, match="SMTPNotSupportedError"):
        SmtpSender(SmtpSettings("127.0.0.1", port, starttls=True, timeout=5)).send(message())
    assert handler.received == []


@pytest.mark.parametrize(
    ("reply", "retryable"), [("550 5.1.1 <warga@example.org>: no such user", False), ("451 4.3.0 try later", True)]
)
def test_smtp_refusals_say_if_a_retry_can_help_without_the_address(
    smtp_server: tuple[Handler, int], reply: str, retryable: bool
) -> None:
    handler, port = smtp_server
    handler.refuse = reply
    with pytest.raises(DeliveryFailed) as caught:
        SmtpSender(SmtpSettings("127.0.0.1", port, starttls=False, timeout=5)).send(message())
    assert caught.value.retryable is retryable
    assert caught.value.reason == f"smtp {reply[:3]} recipient refused"
    assert "warga" not in str(caught.value)


def test_smtp_server_down_is_a_retryable_failure() -> None:
    with pytest.raises(DeliveryFailed) as caught:
        SmtpSender(SmtpSettings("127.0.0.1", free_port(), starttls=False, timeout=2)).send(message())
    assert caught.value.retryable and caught.value.reason == "smtp ConnectionRefusedError"


def smtp_settings(config: dict[str, Any]) -> SmtpSettings | None:
    return SmtpSettings.from_settings(NotifySettings.from_config(config))


def test_smtp_settings_from_config() -> None:
    assert smtp_settings({"SMTP_HOST": None}) is None
    settings = smtp_settings({"SMTP_HOST": "mail.example", "SMTP_SSL": "true", "SMTP_PASSWORD": 123})
    assert settings is not None
    assert (settings.port, settings.implicit_tls, settings.starttls, settings.password) == (465, True, False, "123")


# ---- webhooks ------------------------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if self.path == "/slow":
                time.sleep(2)
            status = {"/ok": 204, "/fail": 500, "/moved": 302}.get(self.path, 200)
            try:
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "/ok")
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_webhook_is_signed(receiver: tuple[str, list[dict[str, Any]]]) -> None:
    base, seen = receiver
    assert WebhookSender(timeout=2).post(base + "/ok", SECRET, b'{"a":1}', {"X-Jaklapor-Delivery": "d1"}) == 204
    (request,) = seen
    assert request["body"] == b'{"a":1}' and request["headers"]["X-Jaklapor-Delivery"] == "d1"
    assert request["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert verify_signature(SECRET, request["headers"]["X-Jaklapor-Signature"], request["body"])


@pytest.mark.parametrize(
    ("path", "reason"), [("/fail", "http 500"), ("/moved", "http 302"), ("/slow", "webhook timeout")]
)
def test_webhook_failures_are_retryable(receiver: tuple[str, list[dict[str, Any]]], path: str, reason: str) -> None:
    base, seen = receiver
    with pytest.raises(DeliveryFailed) as caught:
        WebhookSender(timeout=0.5).post(base + path, SECRET, b"{}")
    assert caught.value.reason == reason and caught.value.retryable
    assert [r["path"] for r in seen] == [path], "a redirect is not followed"


def test_webhook_receiver_down() -> None:
    with pytest.raises(DeliveryFailed) as caught:
        WebhookSender(timeout=1).post(f"http://127.0.0.1:{free_port()}/x?token=secret", SECRET, b"{}")
    assert caught.value.reason == "webhook ConnectionError" and "secret" not in str(caught.value)


def test_smtp_settings_defaults_and_a_plain_connection() -> None:
    settings = smtp_settings({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": "2525", "SMTP_STARTTLS": "false"})
    assert settings == SmtpSettings("127.0.0.1", 2525, starttls=False)
    assert smtp_settings({"SMTP_HOST": "mail.example"}) == SmtpSettings("mail.example", 587)
