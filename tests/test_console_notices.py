"""The console's notices (player.console.notices): rules over a real Fleet, with an
injected clock, sent to a real local webhook receiver (http.server) and a real SMTP
server (aiosmtpd), both on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import MISSING, fields
from datetime import datetime, timezone
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from fixtures_broker import make_certs, wait_until
from player.console.fleet import Fleet
from player.console.notices import MailSender, NoticeEngine, WebhookSender, senders_from
from player.console.settings import NoticeSettings, load_console_settings

T0 = 1_800_000_000.0   # 2027-01-15, a round epoch for the injected clocks


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def heartbeat(ts: float, **fields: Any) -> dict[str, Any]:
    hb: dict[str, Any] = {"panel": "p1", "ts": iso(ts), "cpu_temp_c": 48.3, "door_open": False, "screen": "on"}
    hb.update(fields)
    return hb


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 recording each POSTed JSON body.

    ``statuses``: the answers to give, in order (the last one repeats); ``delay``: seconds
    to wait before answering (a slow receiver).
    """

    def __init__(self, statuses: tuple[int, ...] = (204,), delay: float = 0.0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.statuses = list(statuses)
        self.delay = delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                time.sleep(receiver.delay)
                receiver.bodies.append(json.loads(body))
                receiver.headers.append(dict(self.headers))
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


class MailBox:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.envelopes.append(envelope)
        return "250 Message accepted"


class Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login.decode() == self.user \
            and data.password.decode() == self.password
        return AuthResult(success=ok, handled=False)   # not handled: aiosmtpd answers 235 or 535


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, MailBox]]:
    box = MailBox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port(),
                            authenticator=Authenticator("crew", "s3cret"), auth_require_tls=False)
    controller.start()
    yield controller, box
    controller.stop()


def online_fleet(clock: Clock, **fields: Any) -> Fleet:
    fleet = Fleet(interval=30, stale_factor=3, clock=clock)
    fleet.on_online("p1", True)
    fleet.on_heartbeat("p1", heartbeat(clock.now, **fields))
    return fleet


def settings(**kw: Any) -> NoticeSettings:
    kw.setdefault("language", "en")
    return NoticeSettings(**kw)


def test_offline_beyond_the_limit_raises_once_sends_once_and_clears_when_back(receiver: WebhookReceiver) -> None:
    clock = Clock()
    fleet = online_fleet(clock)
    seen: list[dict[str, Any]] = []
    fleet.add_listener(lambda change: seen.append(change) if change["kind"] == "notice" else None)
    engine = NoticeEngine(fleet, settings(offline_minutes=10), [WebhookSender(receiver.url, 5)], clock=clock,
                          backoff=0.05)
    assert engine.evaluate() == []
    fleet.on_online("p1", False)          # Last Will at T0
    went = clock.now
    clock.now += 10 * 60                  # exactly the limit: not yet "more than"
    assert engine.evaluate() == [] and engine.active() == []
    clock.now += 1
    raised = engine.evaluate()
    assert [(n["id"], n["panel"], n["kind"], n["since"], n["raised_at"], n["cleared_at"]) for n in raised] == [
        ("p1:offline", "p1", "offline", went, went + 601, None)]
    assert "Panel p1 has been offline since" in raised[0]["text"] and "more than 10 min" in raised[0]["text"]
    assert [n["id"] for n in engine.active()] == ["p1:offline"]
    for _ in range(5):                    # still offline: nothing new
        clock.now += 30
        assert engine.evaluate() == []
    assert len(engine.active()) == 1

    clock.now += 60
    fleet.on_online("p1", True)
    fleet.on_heartbeat("p1", heartbeat(clock.now))
    cleared = engine.evaluate()
    assert [(n["id"], n["cleared_at"]) for n in cleared] == [("p1:offline", clock.now)]
    assert cleared[0]["text"] == "Resolved: panel p1 is no longer offline (now online), after 13 min."
    assert engine.active() == [] and engine.evaluate() == []

    assert [c["notice"]["cleared_at"] for c in seen] == [None, clock.now]   # the page got both
    wait_until(lambda: len(receiver.bodies) == 2, 10, "the raised and resolved posts")
    engine.close()
    assert [b["event"] for b in receiver.bodies] == ["raised", "resolved"]  # once each
    assert engine.sent == {"webhook": {"ok": 2, "failed": 0, "dropped": 0}}


def test_stale_beyond_the_limit_and_back() -> None:
    clock = Clock()
    fleet = online_fleet(clock)
    engine = NoticeEngine(fleet, settings(stale_minutes=5), [], clock=clock)
    clock.now += 91                       # heartbeat older than 3 x 30 s
    fleet.tick()
    assert fleet.row("p1")["state"] == "stale"    # type: ignore[index]
    stale_at = clock.now
    clock.now += 5 * 60
    assert engine.evaluate() == []
    clock.now += 1
    [raised] = engine.evaluate()
    assert (raised["kind"], raised["since"]) == ("stale", stale_at)
    assert "has not sent a heartbeat in time" in raised["text"]
    fleet.on_heartbeat("p1", heartbeat(clock.now))
    [cleared] = engine.evaluate()
    assert cleared["id"] == "p1:stale" and "no longer stale (now online)" in cleared["text"]


def test_stale_then_offline_clears_stale_and_raises_offline_later() -> None:
    clock = Clock()
    fleet = online_fleet(clock)
    engine = NoticeEngine(fleet, settings(stale_minutes=1, offline_minutes=2), [], clock=clock)
    clock.now += 91
    fleet.tick()
    clock.now += 61
    assert [n["id"] for n in engine.evaluate()] == ["p1:stale"]
    fleet.on_online("p1", False)
    [cleared] = engine.evaluate()
    assert cleared["id"] == "p1:stale" and "(now offline)" in cleared["text"]
    clock.now += 121
    assert [(n["id"], n["cleared_at"]) for n in engine.evaluate()] == [("p1:offline", None)]


def test_hot_above_the_limit_clears_below_it_with_a_margin() -> None:
    clock = Clock()
    fleet = online_fleet(clock, cpu_temp_c=75.0)
    engine = NoticeEngine(fleet, settings(temp_c=75.0), [], clock=clock)
    assert engine.evaluate() == []        # at the limit is not above it
    clock.now += 30
    fleet.on_heartbeat("p1", heartbeat(clock.now, cpu_temp_c=76.4))
    [raised] = engine.evaluate()
    assert (raised["id"], raised["since"]) == ("p1:hot", clock.now)
    assert raised["text"] == "Panel p1 is at 76.4 °C, above the 75.0 °C limit."
    clock.now += 30
    fleet.on_heartbeat("p1", heartbeat(clock.now, cpu_temp_c=74.0))   # within the margin: still hot
    assert engine.evaluate() == [] and [n["id"] for n in engine.active()] == ["p1:hot"]
    clock.now += 30
    fleet.on_heartbeat("p1", heartbeat(clock.now, cpu_temp_c=72.5))
    [cleared] = engine.evaluate()
    assert cleared["text"] == "Resolved: panel p1 is back at 72.5 °C, after 1 min above 75.0 °C."
    clock.now += 30
    fleet.on_heartbeat("p1", heartbeat(clock.now, cpu_temp_c=None))   # no reading: never a notice
    assert engine.evaluate() == []


def test_door_open_and_the_setting_that_turns_it_off() -> None:
    clock = Clock()
    fleet = online_fleet(clock, door_open=True)
    quiet = NoticeEngine(fleet, settings(door=False), [], clock=clock)
    engine = NoticeEngine(fleet, settings(door=True), [], clock=clock)
    assert quiet.evaluate() == []
    [raised] = engine.evaluate()
    assert raised["id"] == "p1:door" and raised["text"].startswith("The cabinet door of panel p1 is open")
    clock.now += 120
    fleet.on_heartbeat("p1", heartbeat(clock.now, door_open=False))
    [cleared] = engine.evaluate()
    assert cleared["text"] == "Resolved: the cabinet door of panel p1 is closed, after 2 min."
    fleet.on_heartbeat("p1", heartbeat(clock.now, door_open=True))
    assert [n["kind"] for n in engine.evaluate()] == ["door"]
    fleet.on_heartbeat("p1", heartbeat(clock.now, door_open=None))    # the switch stopped answering
    [unread] = engine.evaluate()
    assert "no longer reports: door open" in unread["text"]


def test_texts_in_french() -> None:
    clock = Clock()
    fleet = online_fleet(clock, cpu_temp_c=81.25)
    engine = NoticeEngine(fleet, NoticeSettings(language="fr", offline_minutes=10), [], clock=clock)
    [hot] = engine.evaluate()
    assert hot["text"] == "Le panneau p1 est à 81,2 °C, au-dessus de la limite de 75,0 °C."
    fleet.on_online("p1", False)
    clock.now += 11 * 60
    texts = {n["kind"]: n["text"] for n in engine.evaluate()}
    assert texts["offline"].startswith("Le panneau p1 est hors ligne depuis ")
    assert texts["offline"].endswith("(plus de 10 min).")


def test_webhook_receiver_gets_the_json_body(receiver: WebhookReceiver) -> None:
    clock = Clock()
    fleet = online_fleet(clock, cpu_temp_c=80.0)
    engine = NoticeEngine(fleet, settings(), senders_from(settings(webhook_url=receiver.url)), clock=clock)
    [raised] = engine.evaluate()
    wait_until(lambda: len(receiver.bodies) == 1, 10, "the webhook post")
    body = receiver.bodies[0]
    assert body == {"text": raised["text"], "event": "raised", "notice": raised}
    assert receiver.headers[0]["Content-Type"] == "application/json; charset=utf-8"
    fleet.on_heartbeat("p1", heartbeat(clock.now, cpu_temp_c=50.0))
    clock.now += 5
    [cleared] = engine.evaluate()
    wait_until(lambda: len(receiver.bodies) == 2, 10, "the raised and resolved posts")
    assert receiver.bodies[1]["event"] == "resolved"
    assert receiver.bodies[1]["notice"]["cleared_at"] == T0 + 5 == cleared["cleared_at"]
    engine.close()


def test_webhook_errors_are_retried_with_backoff() -> None:
    flaky = WebhookReceiver(statuses=(500, 503, 204))
    try:
        clock = Clock()
        fleet = online_fleet(clock, door_open=True)
        engine = NoticeEngine(fleet, settings(), [WebhookSender(flaky.url, 5)], clock=clock, retries=3,
                              backoff=0.05)
        engine.evaluate()
        wait_until(lambda: engine.sent["webhook"]["ok"] == 1, 10, "a delivery after two errors")
        assert len(flaky.bodies) == 3
        assert engine.sent == {"webhook": {"ok": 1, "failed": 0, "dropped": 0}}
        engine.close()
    finally:
        flaky.close()


def test_mail_reaches_a_real_smtp_server(smtp: tuple[Controller, MailBox], tmp_path: Path) -> None:
    controller, box = smtp
    password = tmp_path / "smtp-password"
    password.write_text("s3cret\n")
    ns = NoticeSettings(language="fr", smtp_host="127.0.0.1", smtp_port=controller.port, smtp_user="crew",
                        smtp_password_file=password, mail_from="console@mairie.example",
                        mail_to=["equipe@mairie.example", "astreinte@mairie.example"])
    [sender] = senders_from(ns)
    assert isinstance(sender, MailSender)
    clock = Clock()
    fleet = online_fleet(clock, door_open=True)
    engine = NoticeEngine(fleet, ns, [sender], clock=clock, backoff=0.05)
    [raised] = engine.evaluate()
    wait_until(lambda: len(box.envelopes) == 1, 10, "the mail")
    envelope = box.envelopes[0]
    assert envelope.mail_from == "console@mairie.example"
    assert envelope.rcpt_tos == ["equipe@mairie.example", "astreinte@mairie.example"]
    mail = message_from_bytes(envelope.original_content)
    assert str(make_header(decode_header(mail["Subject"]))) == "[panneaux] p1 : porte ouverte"
    text = mail.get_payload(decode=True).decode(mail.get_content_charset()).replace("\r\n", "\n")
    assert text.startswith(raised["text"] + "\n")
    assert "Panneau: p1" in text and "id: p1:door" in text

    fleet.on_heartbeat("p1", heartbeat(clock.now, door_open=False))
    engine.evaluate()
    wait_until(lambda: len(box.envelopes) == 2, 10, "the resolved mail")
    mail = message_from_bytes(box.envelopes[1].original_content)
    assert str(make_header(decode_header(mail["Subject"]))) == "[panneaux] résolu : p1 : porte ouverte"
    engine.close()
    assert engine.sent == {"mail": {"ok": 2, "failed": 0, "dropped": 0}}


def test_mail_over_starttls_checks_the_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    certs = make_certs(tmp_path / "certs")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certs.server_cert, certs.server_key)
    box = MailBox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port(), tls_context=tls, require_starttls=True,
                            authenticator=Authenticator("crew", "s3cret"), auth_require_tls=True)
    controller.start()
    try:
        password = tmp_path / "smtp-password"
        password.write_text("s3cret")
        ns = NoticeSettings(language="en", smtp_host="127.0.0.1", smtp_port=controller.port, smtp_starttls=True,
                            smtp_user="crew", smtp_password_file=password, mail_from="console@mairie.example",
                            mail_to=["equipe@mairie.example"])
        clock = Clock()
        fleet = online_fleet(clock, door_open=True)
        # The test CA is not among the system's: the server is not trusted, nothing is sent.
        untrusted = NoticeEngine(fleet, ns, senders_from(ns), clock=clock, retries=0)
        with caplog.at_level(logging.WARNING, logger="player.console.notices"):
            untrusted.evaluate()
            wait_until(lambda: untrusted.sent["mail"]["failed"] == 1, 10, "the untrusted server refused")
        assert box.envelopes == [] and "CERTIFICATE_VERIFY_FAILED" in caplog.text
        # Trusted (OpenSSL reads SSL_CERT_FILE when the context is made): the mail goes out over TLS.
        monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
        trusted = NoticeEngine(fleet, ns, senders_from(ns), clock=clock, retries=0)
        trusted.evaluate()
        wait_until(lambda: len(box.envelopes) == 1, 10, "the mail over STARTTLS")
        mail = message_from_bytes(box.envelopes[0].original_content)
        assert mail["Subject"] == "[panels] p1: door open"
        assert trusted.sent["mail"] == {"ok": 1, "failed": 0, "dropped": 0}
        untrusted.close()
        trusted.close()
    finally:
        controller.stop()


def test_mail_with_a_wrong_password_fails_and_is_counted(smtp: tuple[Controller, MailBox], tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    controller, box = smtp
    password = tmp_path / "smtp-password"
    password.write_text("wrong")
    sender = MailSender("127.0.0.1", controller.port, False, "crew", password, "console@mairie.example",
                        ["equipe@mairie.example"], "en")
    clock = Clock()
    engine = NoticeEngine(online_fleet(clock, door_open=True), settings(), [sender], clock=clock,
                          retries=1, backoff=0.05)
    with caplog.at_level(logging.WARNING, logger="player.console.notices"):
        engine.evaluate()
        wait_until(lambda: engine.sent["mail"]["failed"] == 1, 10, "the mail given up")
    assert box.envelopes == []
    assert "attempt 1 of 2" in caplog.text and "attempt 2 of 2" in caplog.text


def test_a_receiver_down_or_slow_never_blocks_evaluate() -> None:
    slow = WebhookReceiver(delay=1.5)
    try:
        down = f"http://127.0.0.1:{free_port()}/hook"       # nothing listens there
        clock = Clock()
        fleet = Fleet(interval=30, stale_factor=3, clock=clock)
        for i in range(20):
            fleet.on_online(f"p{i:02d}", True)
            fleet.on_heartbeat(f"p{i:02d}", heartbeat(clock.now, panel=f"p{i:02d}", cpu_temp_c=90.0))
        engine = NoticeEngine(fleet, settings(), [WebhookSender(slow.url, 10), WebhookSender(down, 10)],
                              clock=clock, retries=1, backoff=0.05)
        started = time.monotonic()
        raised = engine.evaluate()
        took = time.monotonic() - started
        assert len(raised) == 20
        assert took < 0.5, f"evaluate() took {took:.2f} s with a slow and a dead receiver"
        for i in range(20):                                  # all cooled down: 20 more to send
            fleet.on_heartbeat(f"p{i:02d}", heartbeat(clock.now, panel=f"p{i:02d}", cpu_temp_c=50.0))
        started = time.monotonic()
        assert len(engine.evaluate()) == 20
        assert time.monotonic() - started < 0.5
        wait_until(lambda: engine.sent["webhook"]["failed"] == 40, 10, "the dead receiver given up")
        assert len(slow.bodies) < 40                         # the slow one is still at it
        engine.close(timeout=0.5)
    finally:
        slow.close()


def test_senders_from_settings() -> None:
    assert senders_from(NoticeSettings()) == []
    assert senders_from(NoticeSettings(smtp_host="127.0.0.1")) == []       # no recipient: no mail
    [hook, mail] = senders_from(NoticeSettings(webhook_url="http://127.0.0.1:9/x", smtp_host="127.0.0.1",
                                               mail_to=["a@b.example"]))
    assert isinstance(hook, WebhookSender) and hook.url == "http://127.0.0.1:9/x"
    assert isinstance(mail, MailSender) and mail.mail_from.startswith("panel-player@")


# -- docs/console-monitoring.md stays true to the code --------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "console-monitoring.md"


def doc_section(heading: str) -> str:
    """The text under ``heading`` (a whole heading line) up to the next heading of any level."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    following = re.search(r"\n#{1,6} ", text[start:])
    return text[start:start + following.start()] if following else text[start:]


def first_column(section: str) -> list[str]:
    return re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE)


def code_blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


def test_doc_settings_table_and_example() -> None:
    section = doc_section("### Settings")
    assert first_column(section) == [f.name for f in fields(NoticeSettings)]
    defaults = {f.name: f.default for f in fields(NoticeSettings) if f.default is not MISSING}
    for key, default in re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|", section, re.MULTILINE):
        if defaults.get(key) is not None:      # mail_from's documented default is worked out at start
            assert yaml.safe_load(default) == defaults[key], key
    [example] = code_blocks(section, "yaml")
    loaded = load_console_settings(yaml.safe_load(example)["console"], Path("/home/crew")).notices
    assert (loaded.offline_minutes, loaded.smtp_port, loaded.smtp_starttls, loaded.language) == (15, 587, True, "fr")
    assert loaded.mail_to == ["astreinte@ville.example", "services-techniques@ville.example"]
    assert [type(s).__name__ for s in senders_from(loaded)] == ["WebhookSender", "MailSender"]


def test_doc_webhook_body_matches_what_is_sent(receiver: WebhookReceiver) -> None:
    section = doc_section("### Webhook")
    [example] = code_blocks(section, "json")
    documented = json.loads(example)
    clock = Clock()
    fleet = online_fleet(clock)
    engine = NoticeEngine(fleet, settings(), [WebhookSender(receiver.url, 5)], clock=clock)
    fleet.on_online("p1", False)
    clock.now += 11 * 60
    engine.evaluate()
    wait_until(lambda: receiver.bodies, 10, "the webhook post")
    engine.close()
    sent = receiver.bodies[0]
    assert set(sent) == set(documented) and set(sent["notice"]) == set(documented["notice"])
    table = first_column(section)
    assert table == ["text", "event"] + [f"notice.{k}" for k in documented["notice"]]
