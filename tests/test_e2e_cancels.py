"""Cancels never lost: an alert cancelled while its panel was offline ends at the reconnect,
whatever happened to the panel's MQTT session; when the broker itself lost its retained
messages, the panel keeps the alert and says it cannot confirm it.

A real player, a real mosquitto; the panel's session lasts 0 s (``session_expiry: 0``), so
nothing queued for it survives its absence: only what the broker retains tells it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_broker import Broker
from fixtures_player import PanelProcess, rgb, text_playlist
from test_e2e_alerts import ALERT_AT, CRITICAL, SIZE, Publisher, for_alert

PLAYLIST_COLOUR = "#12ab34"
WITHIN = 5.0  # seconds after the reconnect


@pytest.fixture
def made() -> Iterator[list[PanelProcess]]:
    """The players a test starts, killed at its end whatever happens."""
    players: list[PanelProcess] = []
    yield players
    for p in players:
        p.close()


def showing_alert(broker: Broker, folder: Path, pub: Publisher, made: list[PanelProcess]) -> PanelProcess:
    folder.mkdir(exist_ok=True)
    p = PanelProcess(broker, folder, "p1", size=SIZE, extra={"mqtt": {"session_expiry": 0}}, start=False)
    made.append(p)
    p.start()
    pub.send("panels/p1/playlist", text_playlist("base", 1, PLAYLIST_COLOUR))
    p.wait_colour(rgb(PLAYLIST_COLOUR))
    mark = p.sub.mark()
    pub.send("all/alerts/crue-1", {"level": "critical", "title": "ALERTE CRUE"})
    p.wait_event("alert.displayed", after=mark, where=for_alert("crue-1"))
    p.wait_colour(CRITICAL, at=ALERT_AT)
    return p


def test_a_cancel_sent_while_the_panel_was_offline_ends_the_alert_at_the_reconnect(broker, tmp_path, made):
    pub = Publisher(broker)
    try:
        p = showing_alert(broker, tmp_path / "p1", pub, made)
        p.stop()
        pub.send("all/alerts/crue-1", b"")  # cancelled while the panel is off: the broker drops the alert
        mark = p.sub.mark()
        p.start(wait_online=False)
        online = p.sub.wait_for(f"{p.topic}/online", b"true", after=mark, timeout=20)
        ended = p.wait_event("alert.ended", after=mark, where=for_alert("crue-1"), timeout=10)
        assert ended["reason"] == "cancelled"
        ended_at = next(m.timestamp for m in p.sub.messages[mark:]
                        if m.topic == f"{p.topic}/events" and json.loads(m.payload) == ended)
        assert ended_at - online.timestamp <= WITHIN  # paho stamps each message on receipt (monotonic)
        p.wait_colour(rgb(PLAYLIST_COLOUR))
        assert p.pixel(*ALERT_AT) != CRITICAL
    finally:
        pub.close()


@pytest.fixture
def forgetful_broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", persistence=False)
    b.start()
    yield b
    b.stop()


def test_a_broker_that_lost_everything_leaves_the_alert_on_screen_marked_unconfirmed(forgetful_broker, tmp_path,
                                                                                   made):
    pub = Publisher(forgetful_broker)
    try:
        p = showing_alert(forgetful_broker, tmp_path / "p1", pub, made)
        p.stop()
    finally:
        pub.close()
    forgetful_broker.restart()  # without persistence: every retained message is gone
    p.sub.close()  # its subscription went with the broker's memory
    p.sub = forgetful_broker.sub(f"{p.topic}/#")
    mark = p.sub.mark()
    p.start()
    error = p.wait_event("error", after=mark, timeout=15, where=lambda e: "crue-1" in e["reason"])
    assert "not confirmed by the broker" in error["reason"]
    hb = p.sub.wait_for(f"{p.topic}/heartbeat", after=mark, timeout=15,
                        where=lambda m: json.loads(m.payload).get("alerts_unconfirmed") == ["crue-1"])
    assert json.loads(hb.payload)["alerts"] == ["crue-1"]
    p.wait_colour(CRITICAL, at=ALERT_AT)
    assert not [e for e in p.events(mark) if e["type"] == "alert.ended"]
    time.sleep(0.5)
    assert p.pixel(*ALERT_AT) == CRITICAL
    # panelctl shows the difference between what the broker holds and what the panel shows.
    from test_panelctl import ctl

    code, out, err = ctl(forgetful_broker, "alert", "list", "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert (row["alert"], row["state"], row["shown_by"], row["unconfirmed_on"]) == \
        ("crue-1", "not on the broker", ["p1"], ["p1"])
    code, out, err = ctl(forgetful_broker, "status")
    assert code == 0 and "crue-1?" in out.splitlines()[1].split(), out + err

    # The server sends it again: confirmed.
    pub = Publisher(forgetful_broker)
    try:
        mark = p.sub.mark()
        pub.send("all/alerts/crue-1", {"level": "critical", "title": "ALERTE CRUE"})
        hb = p.sub.wait_for(f"{p.topic}/heartbeat", after=mark, timeout=15,
                            where=lambda m: json.loads(m.payload).get("alerts_unconfirmed") == [])
        assert json.loads(hb.payload)["alerts"] == ["crue-1"]
    finally:
        pub.close()


def test_a_reconnect_with_the_alert_still_on_the_broker_keeps_it(broker, tmp_path, made):
    pub = Publisher(broker)
    try:
        p = showing_alert(broker, tmp_path / "p1", pub, made)
        p.stop()
        mark = p.sub.mark()
        p.start()
        hb = p.sub.wait_for(f"{p.topic}/heartbeat", after=mark, timeout=15,
                            where=lambda m: json.loads(m.payload).get("mqtt_connected") is True)
        time.sleep(1.0)  # the marker is back well before this
        assert not [e for e in p.events(mark) if e["type"] in ("alert.ended", "error")]
        assert json.loads(hb.payload)["alerts"] == ["crue-1"]
        assert p.pixel(*ALERT_AT) == CRITICAL
    finally:
        pub.close()
