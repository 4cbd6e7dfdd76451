"""MqttLink against a real mosquitto: online/will, persistent sessions, reconnects, guards, caps."""

from __future__ import annotations

import hashlib
import json
import queue
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures_broker import Broker, LinkChild

from player.errors import ConfigError
from player.config import TlsConfig
from player.net.link import LinkSettings, MqttLink
from player.net.protocol import Inbound, LinkError, LinkState, Rejected

P = "signage"
# mosquitto 2.0 checks keep-alives on a coarse timer (measured: a silent client with
# keep-alive 2 s is dropped after ~6 s, 10 s after ~18 s), so a frozen panel's will
# comes at 1.5 keep-alive rounded up to that tick. A killed panel's socket closes at once.
BROKER_KEEPALIVE_TICK = 6.5


def take(inbox: queue.Queue[object], where: Callable[[object], bool], timeout: float = 5.0,
         what: str = "an inbox item") -> Any:
    """Consume inbox items until one matches ``where``; fail at the deadline."""
    deadline = time.monotonic() + timeout
    seen: list[object] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {what} within {timeout} s; saw {seen}")
        try:
            item = inbox.get(timeout=left)
        except queue.Empty:
            continue
        if where(item):
            return item
        seen.append(item)


def up(item: object) -> bool:
    return isinstance(item, LinkState) and item.connected


def down(item: object) -> bool:
    return isinstance(item, LinkState) and not item.connected


def inbound(kind: str, payload: bytes | None = None) -> Callable[[object], bool]:
    return lambda i: isinstance(i, Inbound) and i.route.kind == kind and (payload is None or i.payload == payload)


@pytest.fixture
def make_link(broker: Broker) -> Iterator[Callable[..., tuple[MqttLink, queue.Queue[object]]]]:
    links: list[MqttLink] = []

    def make(panel: str = "mairie-entree", groups: tuple[str, ...] = ("centre-ville",),
             inbox: queue.Queue[object] | None = None, **settings: Any) -> tuple[MqttLink, queue.Queue[object]]:
        box: queue.Queue[object] = inbox if inbox is not None else queue.Queue()
        base: dict[str, Any] = {"host": broker.host, "port": broker.port, "reconnect_min": 0.1,
                                "reconnect_max": 1.0}
        link = MqttLink(LinkSettings(**{**base, **settings}), panel, list(groups), box)
        links.append(link)
        link.start()
        return link, box

    yield make
    for link in links:
        link.stop()


def test_connect_publishes_retained_online_true_and_subscribes(broker: Broker, make_link: Any) -> None:
    link, inbox = make_link()
    state = take(inbox, up, what="connection")
    assert "new session" in state.reason
    assert link.connected
    with broker.sub(f"{P}/panels/mairie-entree/online") as sub:  # subscribing after: must be retained
        msg = sub.wait_for(f"{P}/panels/mairie-entree/online", b"true")
        assert msg.retain
    broker.publish(f"{P}/panels/mairie-entree/cmd", b'{"id": "r1", "cmd": "reload"}')
    item = take(inbox, inbound("cmd"))
    assert item.payload == b'{"id": "r1", "cmd": "reload"}' and not item.retained
    broker.publish(f"{P}/groups/centre-ville/playlist", b"{}", retain=True)
    assert take(inbox, inbound("playlist")).route.scope == "group"
    broker.publish(f"{P}/all/alerts/crue-1", b"{}", retain=True)
    assert take(inbox, inbound("alert")).route.alert == "crue-1"
    assert link.reconnects == 0


def test_retained_messages_arrive_at_connect(broker: Broker, make_link: Any) -> None:
    broker.publish(f"{P}/panels/mairie-entree/playlist", b'{"id": "p"}', retain=True)
    _, inbox = make_link()
    item = take(inbox, inbound("playlist"))
    assert item.retained and item.payload == b'{"id": "p"}'


def test_start_never_blocks_and_connects_once_the_broker_appears(tmp_path: Path) -> None:
    late = Broker(tmp_path / "late")
    inbox: queue.Queue[object] = queue.Queue()
    link = MqttLink(LinkSettings(port=late.port, reconnect_min=0.1, reconnect_max=0.5), "p1", [], inbox)
    try:
        t0 = time.monotonic()
        link.start()
        assert time.monotonic() - t0 < 0.5
        assert "cannot connect" in take(inbox, down, what="a failed connection").reason
        assert not link.connected
        late.start()
        take(inbox, up, what="connection to the late broker")
        assert link.connected and link.reconnects == 0
    finally:
        link.stop()
        late.stop()


@pytest.mark.parametrize("persistence", [True, False], ids=["persistent-broker", "amnesic-broker"])
def test_subscriptions_survive_broker_restarts_and_reconnects_are_counted(
        tmp_path: Path, persistence: bool) -> None:
    b = Broker(tmp_path / "b", persistence=persistence)
    b.start()
    inbox: queue.Queue[object] = queue.Queue()
    link = MqttLink(LinkSettings(port=b.port, reconnect_min=0.1, reconnect_max=0.5), "p1", ["g1"], inbox)
    try:
        link.start()
        take(inbox, up)
        for n in (1, 2):
            b.stop()
            take(inbox, down, what="the disconnection")
            assert not link.connected
            b.start()
            take(inbox, up, what="the reconnection")
            assert link.reconnects == n
            with b.sub(f"{P}/panels/p1/online") as sub:
                sub.wait_for(f"{P}/panels/p1/online", b"true")
            b.publish(f"{P}/groups/g1/playlist", f'{{"n": {n}}}'.encode(), retain=True)
            take(inbox, inbound("playlist", f'{{"n": {n}}}'.encode()), what=f"the playlist after restart {n}")
    finally:
        link.stop()
        b.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_command_sent_while_panel_is_frozen_arrives_after_it_resumes(
        broker: Broker, link_child: Callable[..., LinkChild], protocol: str) -> None:
    keepalive = 2
    online = f"{P}/panels/frozen-{protocol.replace('.', '')}/online"
    panel = online.split("/")[2]
    with broker.sub(online) as sub:
        child = link_child(panel, keepalive=keepalive, protocol=protocol)
        child.wait_connected()
        sub.wait_for(online, b"true")
        mark = sub.mark()
        child.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        limit = 1.5 * keepalive + BROKER_KEEPALIVE_TICK
        sub.wait_for(online, b"false", after=mark, timeout=limit + 1)
        assert time.monotonic() - t0 <= limit
        after = child.mark()
        broker.publish(f"{P}/panels/{panel}/cmd", b'{"id": "req-7", "cmd": "identify"}', qos=1)
        child.signal(signal.SIGCONT)
        got = child.wait_for(lambda i: i["item"] == "Inbound" and i["kind"] == "cmd", timeout=10,
                             what="the queued command", after=after)
        assert json.loads(got["text"]) == {"id": "req-7", "cmd": "identify"}
        state = child.wait_connected(after=after)
        assert "resumed session" in state["reason"]
        sub.wait_for(online, b"true", after=mark)


def test_sigkill_publishes_the_will_within_one_and_a_half_keepalives(
        broker: Broker, link_child: Callable[..., LinkChild]) -> None:
    keepalive = 2
    online = f"{P}/panels/killed/online"
    with broker.sub(online) as sub:
        child = link_child("killed", keepalive=keepalive)
        child.wait_connected()
        sub.wait_for(online, b"true")
        mark = sub.mark()
        t0 = time.monotonic()
        child.kill()
        sub.wait_for(online, b"false", after=mark, timeout=1.5 * keepalive)
        assert time.monotonic() - t0 <= 1.5 * keepalive
    with broker.sub(online) as later:
        assert later.wait_for(online).payload == b"false"  # retained


def test_clean_stop_publishes_online_false_and_is_safe_twice(
        broker: Broker, make_link: Any, link_child: Callable[..., LinkChild]) -> None:
    link, inbox = make_link(panel="quitter")
    take(inbox, up)
    link.stop()
    link.stop()
    assert not link.connected
    with broker.sub(f"{P}/panels/quitter/online") as sub:
        msg = sub.wait_for(f"{P}/panels/quitter/online")
        assert msg.payload == b"false" and msg.retain
    child = link_child("child-quitter")
    child.wait_connected()
    assert child.stop() == 0
    with broker.sub(f"{P}/panels/child-quitter/online") as sub:
        assert sub.wait_for(f"{P}/panels/child-quitter/online").payload == b"false"


class FragileInbox(queue.Queue[object]):
    """An inbox whose consumer side blows up on one payload, as a buggy main loop might."""

    def put_nowait(self, item: object) -> None:
        if isinstance(item, Inbound) and b"boom" in item.payload:
            raise RuntimeError("consumer exploded")
        super().put_nowait(item)


def test_exception_in_the_inbox_path_does_not_kill_the_network_thread(
        broker: Broker, make_link: Any) -> None:
    link, inbox = make_link(inbox=FragileInbox())
    take(inbox, up)
    cmd = f"{P}/panels/mairie-entree/cmd"
    broker.publish(cmd, b"boom")
    broker.publish(cmd, b"\xff\xfe not json \x00")
    broker.publish(cmd, b"after")
    take(inbox, inbound("cmd", b"\xff\xfe not json \x00"))
    take(inbox, inbound("cmd", b"after"), what="the message after the failure")
    assert link.connected


class TouchyLink(MqttLink):
    """A link whose message check fails on one payload, standing for any bug in a callback."""

    def check(self, topic: str | None, payload: bytes, retained: bool) -> Inbound | Rejected:
        if payload == b"explode":
            raise ValueError("hostile payload")
        return super().check(topic, payload, retained)


def test_exception_in_a_callback_is_reported_and_the_thread_survives(broker: Broker) -> None:
    inbox: queue.Queue[object] = queue.Queue()
    link = TouchyLink(LinkSettings(port=broker.port), "touchy", [], inbox)
    try:
        link.start()
        take(inbox, up)
        cmd = f"{P}/panels/touchy/cmd"
        broker.publish(cmd, b"explode")
        err = take(inbox, lambda i: isinstance(i, LinkError), what="the error report")
        assert "hostile payload" in err.reason and "on_message" in err.reason
        broker.publish(cmd, b"still alive")
        take(inbox, inbound("cmd", b"still alive"))
        assert link.connected
    finally:
        link.stop()


def test_oversize_payloads_and_forged_assets_are_rejected_with_reasons(broker: Broker, make_link: Any) -> None:
    link, inbox = make_link(max_message_bytes=1000, max_asset_bytes=2000)
    take(inbox, up)
    playlist = f"{P}/panels/mairie-entree/playlist"
    broker.publish(playlist, b"x" * 1001)
    bad = take(inbox, lambda i: isinstance(i, Rejected))
    assert bad.reason == "payload too large (1001 bytes, at most 1000)"
    assert bad.topic == playlist and bad.subject.kind == "playlist"
    broker.publish(playlist, b"x" * 1000)
    take(inbox, inbound("playlist", b"x" * 1000))

    blob = bytes(range(256)) * 7  # 1792 bytes
    sha = hashlib.sha256(blob).hexdigest()
    big = b"y" * 2001
    link.want_assets({sha, hashlib.sha256(big).hexdigest(), "0" * 64})
    broker.publish(f"{P}/assets/{sha}", blob, retain=True)
    assert take(inbox, inbound("asset")).route.sha == sha
    broker.publish(f"{P}/assets/{hashlib.sha256(big).hexdigest()}", big)
    assert "payload too large (2001 bytes" in take(inbox, lambda i: isinstance(i, Rejected)).reason
    broker.publish(f"{P}/assets/{'0' * 64}", b"forged")
    assert "sha256" in take(inbox, lambda i: isinstance(i, Rejected)).reason


@pytest.mark.parametrize(("level", "reason"), [
    ("has space", "alert id \"has space\" is not valid"),
    ("a" * 200, "is not valid"),
    ("é-accent", "is not valid"),
    (".hidden", '".hidden": "." is not allowed: brokers that map MQTT topics to AMQP routing keys'),
    ("crue.1", '"crue.1": "." is not allowed'),
])
def test_bad_alert_topic_levels_are_rejected_with_reasons(
        broker: Broker, make_link: Any, level: str, reason: str) -> None:
    _, inbox = make_link()
    take(inbox, up)
    topic = f"{P}/all/alerts/{level}"
    broker.publish(topic, b"{}")
    bad = take(inbox, lambda i: isinstance(i, Rejected))
    assert bad.subject == topic and reason in bad.reason


def test_bad_asset_topic_is_rejected(broker: Broker, make_link: Any) -> None:
    link, inbox = make_link()
    take(inbox, up)
    bad = link.check(f"{P}/assets/NOT-A-HASH", b"x", True)
    assert isinstance(bad, Rejected) and "64 lowercase hex" in bad.reason


def test_only_wanted_assets_are_received_and_wants_survive_a_broker_restart(broker: Broker, make_link: Any) -> None:
    wanted, other = b"wanted image bytes", b"another panel's image"
    sha_w, sha_o = hashlib.sha256(wanted).hexdigest(), hashlib.sha256(other).hexdigest()
    broker.publish(f"{P}/assets/{sha_o}", other, retain=True)
    link, inbox = make_link()
    take(inbox, up)
    link.want_assets({f"sha256:{sha_w}"})
    broker.publish(f"{P}/assets/{sha_w}", wanted, retain=True)
    assert take(inbox, inbound("asset")).route.sha == sha_w
    broker.restart()
    take(inbox, up)
    # After the restart the wanted asset comes again (retained, re-subscribed);
    # the other panel's never does. The command marks the end of what to look at.
    broker.publish(f"{P}/panels/mairie-entree/cmd", b"{}")
    seen = []
    while True:
        item = take(inbox, lambda i: isinstance(i, Inbound))
        if item.route.kind == "cmd":
            break
        seen.append(item.route.sha)
    assert seen and set(seen) == {sha_w}


def test_events_heartbeat_and_screenshot_are_published(broker: Broker, make_link: Any) -> None:
    link, inbox = make_link(panel="talker")
    base = f"{P}/panels/talker"
    with broker.sub(f"{base}/+") as sub:
        take(inbox, up)
        link.publish_event({"type": "error", "reason": "x"})
        event = json.loads(sub.wait_for(f"{base}/events").payload)
        assert event["type"] == "error" and event["ts"].endswith("Z")
        link.publish_event({"type": "error", "reason": "y", "ts": "2026-01-01T00:00:00Z"})
        assert json.loads(sub.wait_for(f"{base}/events", where=lambda m: b'"y"' in m.payload).payload)["ts"] \
            == "2026-01-01T00:00:00Z"
        link.publish_heartbeat({"panel": "talker", "uptime_s": 1})
        link.publish_screenshot(b"\x89PNG fake")
        assert sub.wait_for(f"{base}/screenshot").payload == b"\x89PNG fake"
    with broker.sub(f"{base}/heartbeat") as later:
        hb = later.wait_for(f"{base}/heartbeat")
        assert hb.retain and json.loads(hb.payload) == {"panel": "talker", "uptime_s": 1}


def test_tls_with_client_certificate(tls_broker: Broker) -> None:
    certs = tls_broker.certs
    assert certs is not None and tls_broker.tls_port is not None
    inbox: queue.Queue[object] = queue.Queue()
    tls = TlsConfig(ca_file=certs.ca, cert_file=certs.client_cert, key_file=certs.client_key)
    link = MqttLink(LinkSettings(port=tls_broker.tls_port, tls=tls, reconnect_min=0.1), "secure", [], inbox)
    try:
        link.start()
        take(inbox, up, what="a TLS connection")
        with tls_broker.sub(f"{P}/panels/secure/online") as sub:
            sub.wait_for(f"{P}/panels/secure/online", b"true")
    finally:
        link.stop()
    # Without the client certificate the broker refuses the handshake.
    inbox2: queue.Queue[object] = queue.Queue()
    anon = MqttLink(LinkSettings(port=tls_broker.tls_port, tls=TlsConfig(ca_file=certs.ca),
                                 reconnect_min=0.1), "anon", [], inbox2)
    try:
        anon.start()
        take(inbox2, down, what="a refused handshake")
        assert not anon.connected
    finally:
        anon.stop()


def test_tls_settings_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mqtt.tls.ca_file: no such file"):
        MqttLink(LinkSettings(tls=TlsConfig(ca_file=tmp_path / "nope.crt")), "p", [], queue.Queue())
    with pytest.raises(ConfigError, match="cert_file and key_file go together"):
        MqttLink(LinkSettings(tls=TlsConfig(cert_file=tmp_path / "c")), "p", [], queue.Queue())


def test_username_and_password_file(auth_broker: Broker, tmp_path: Path) -> None:
    assert auth_broker.password_file is not None
    inbox: queue.Queue[object] = queue.Queue()
    settings = LinkSettings(port=auth_broker.port, username="panel", password_file=auth_broker.password_file,
                            reconnect_min=0.1)
    link = MqttLink(settings, "authed", [], inbox)
    try:
        link.start()
        take(inbox, up, what="an authenticated connection")
    finally:
        link.stop()
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    inbox2: queue.Queue[object] = queue.Queue()
    denied = MqttLink(LinkSettings(port=auth_broker.port, username="panel", password_file=wrong,
                                   reconnect_min=0.1), "denied", [], inbox2)
    try:
        denied.start()
        state = take(inbox2, down, what="a refusal")
        assert "refused" in state.reason and not denied.connected
    finally:
        denied.stop()


def test_unreadable_password_file_is_a_clear_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"mqtt.password_file: cannot read .*missing"):
        MqttLink(LinkSettings(username="u", password_file=tmp_path / "missing"), "p", [], queue.Queue())
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        MqttLink(LinkSettings(username="u", password_file=empty), "p", [], queue.Queue())


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="mqtt.protocol"):
        MqttLink(LinkSettings(protocol="4"), "p", [], queue.Queue())
    with pytest.raises(ConfigError, match="prefix"):
        MqttLink(LinkSettings(prefix="a/+/b"), "p", [], queue.Queue())
    with pytest.raises(ConfigError, match="panel id"):
        MqttLink(LinkSettings(), "Bad/Id", [], queue.Queue())
