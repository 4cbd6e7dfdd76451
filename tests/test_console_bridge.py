"""The console's MQTT bridge (player.console.bridge) against a real mosquitto: retained
state of simulated panels into the fleet and the history, alerts / cancels / playlists /
screenshot requests out, signed when a key is given, and a reconnection after the broker
restarts. One test drives a real player."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fixtures_broker import Broker, wait_until
from fixtures_player import PREFIX, PanelProcess

from player.console.bridge import Bridge, new_alert_id
from player.console.fleet import Fleet
from player.console.history import History
from player.ctl.client import CtlError
from player.ctl.settings import CtlSettings
from player.ctl.signing import Signer
from player.errors import ContentError
from player.trust import open_envelope

KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"console bridge test key").digest())


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def heartbeat(panel: str, **fields: Any) -> bytes:
    data: dict[str, Any] = {"panel": panel, "ts": iso(time.time()), "screen": "on", "groups": [],
                            "uptime_s": 100, "cpu_temp_c": 50.0}
    data.update(fields)
    return json.dumps(data).encode()


def png_bytes(colour: str = "#ff0000") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 4), colour).save(out, "PNG")
    return out.getvalue()


class Console:
    """A fleet, a history and a bridge on the test broker."""

    def __init__(self, broker: Any, folder: Path, signer: Signer | None = None, index_every: float = 5.0) -> None:
        self.settings = CtlSettings(port=broker.port, prefix=PREFIX, username=broker.username,
                                    password_file=broker.password_file if broker.username else None)
        self.fleet = Fleet(interval=30, stale_factor=3)
        self.history = History(str(folder / "console.db"))
        self.shots = folder / "screens"
        self.bridge = Bridge(self.settings, self.fleet, self.history, self.shots, signer=signer)
        self.bridge.index_every = index_every
        self.bridge.start()
        wait_until(lambda: self.bridge.connected, 10, "the bridge to connect")

    def row(self, panel: str) -> dict[str, Any]:
        return wait_until(lambda: self.fleet.row(panel), 5, f"panel {panel} in the fleet")

    def close(self) -> None:
        self.bridge.stop()
        self.history.close()


@pytest.fixture
def console(broker: Broker, tmp_path: Path) -> Iterator[Console]:
    c = Console(broker, tmp_path)
    yield c
    c.close()


def test_retained_state_of_panels_reaches_fleet_and_history(broker: Broker, tmp_path: Path) -> None:
    broker.publish(f"{PREFIX}/panels/p1/online", b"true", retain=True)
    broker.publish(f"{PREFIX}/panels/p1/heartbeat", heartbeat("p1", groups=["centre"], cpu_temp_c=61.5,
                                                                brightness=None), retain=True)
    broker.publish(f"{PREFIX}/panels/p2/online", b"false", retain=True)
    broker.publish(f"{PREFIX}/panels/p2/heartbeat", heartbeat("p2", screen="asleep"), retain=True)
    broker.publish(f"{PREFIX}/panels/Bad_Id/online", b"true", retain=True)  # not a valid panel id: ignored
    c = Console(broker, tmp_path)
    try:
        wait_until(lambda: len(c.fleet.rows()) == 2 and c.fleet.row("p2")["heartbeat"], 5, "both panels")
        p1, p2 = c.fleet.row("p1"), c.fleet.row("p2")
        assert (p1["state"], p1["cpu_temp_c"], p1["brightness"], p1["groups"]) == ("online", 61.5, None, ["centre"])
        assert p2["state"] == "offline"
        assert c.fleet.groups() == ["centre"]
        # live: p2 comes back, asleep
        broker.publish(f"{PREFIX}/panels/p2/online", b"true", retain=True)
        wait_until(lambda: c.fleet.row("p2")["state"] == "asleep", 5, "p2 asleep")
        broker.publish(f"{PREFIX}/panels/p1/heartbeat", heartbeat("p1", cpu_temp_c=70.0, uptime_s=5), retain=True)
        wait_until(lambda: c.fleet.row("p1")["cpu_temp_c"] == 70.0, 5, "the new heartbeat")
        broker.publish(f"{PREFIX}/panels/p1/heartbeat", b"not json", retain=True)   # ignored
        broker.publish(f"{PREFIX}/panels/p1/events", json.dumps(
            {"type": "error", "ts": iso(time.time()), "reason": "sensor light: no answer"}).encode())
        time.sleep(0.3)
        assert c.fleet.row("p1")["cpu_temp_c"] == 70.0
        c.history.flush()
        series = c.history.series("p1", "24h")
        temps = [v for _, v in series["metrics"]["cpu_temp_c"] if v is not None]
        assert temps and temps[-1] in (70.0, (61.5 + 70.0) / 2)   # same or neighbouring 5-minute bucket
        assert series["restarts"], "uptime 100 -> 5 is a restart"
        assert [s[2] for s in c.history.series("p2", "24h")["states"]] == ["offline", "asleep"]
        assert [e["kind"] for e in c.history.events("p1", since=0)][0] == "error"
    finally:
        c.close()


def test_send_alert_publishes_retained_json_and_events_update_the_report(console: Console, broker: Broker) -> None:
    broker.publish(f"{PREFIX}/panels/p1/online", b"true", retain=True)
    broker.publish(f"{PREFIX}/panels/p1/heartbeat", heartbeat("p1", groups=["berges"]), retain=True)
    broker.publish(f"{PREFIX}/panels/p2/heartbeat", heartbeat("p2", groups=["centre"]), retain=True)
    wait_until(lambda: len(console.fleet.rows()) == 2, 5, "two panels")
    with broker.sub(f"{PREFIX}/+/alerts/#", f"{PREFIX}/+/+/alerts/#") as sub:
        report = console.bridge.send_alert(alert_id="crue-1", level="critical", title="Crue", body="Quais fermés",
                                           minutes=90, panels=["p2"], groups=["berges"], everyone=True,
                                           user="marie")
        topics = [f"{PREFIX}/panels/p2/alerts/crue-1", f"{PREFIX}/groups/berges/alerts/crue-1",
                  f"{PREFIX}/all/alerts/crue-1"]
        for topic in topics:
            m = sub.wait_for(topic)
            assert json.loads(m.payload) == {"level": "critical", "title": "Crue", "body": "Quais fermés",
                                             "ttl": 5400}
            assert 5390 <= m.properties.MessageExpiryInterval <= 5401
    assert report["expected"] == ["p1", "p2"] and (report["reached"], report["total"]) == (0, 2)
    assert report["targets"] == [{"scope": "panel", "name": "p2"}, {"scope": "group", "name": "berges"},
                                 {"scope": "all", "name": None}]
    with broker.sub(f"{PREFIX}/#") as later:   # retained: a subscriber that comes later gets them
        for topic in topics:
            assert later.wait_for(topic).retain
    broker.publish(f"{PREFIX}/panels/p1/events", json.dumps(
        {"type": "alert.displayed", "ts": iso(time.time()), "alert": "crue-1",
         "displayed_at": "2026-12-03T10:00:00.100Z", "brightness": 80}).encode())
    broker.publish(f"{PREFIX}/panels/p2/events", json.dumps(
        {"type": "alert.rejected", "ts": iso(time.time()), "alert": "crue-1", "reason": "no room"}).encode())
    wait_until(lambda: console.fleet.alert_report("crue-1")["panels"]["p2"]["status"] == "rejected", 5,
               "the rejection")
    r = console.fleet.alert_report("crue-1")
    assert r["panels"]["p1"] == dict(r["panels"]["p1"], status="displayed", at="2026-12-03T10:00:00.100Z")
    assert (r["reached"], r["total"]) == (1, 2)


def test_alert_ids_generated_and_bad_alerts_refused(console: Console, broker: Broker) -> None:
    with broker.sub(f"{PREFIX}/all/alerts/+") as sub:
        report = console.bridge.send_alert(alert_id=None, level="info", title="Fête de l'Été à Saint-Étienne !",
                                           body=None, minutes=None, panels=[], groups=[], everyone=True, user="m")
        assert re.fullmatch(r"[a-z0-9-]+", report["id"]) and report["id"].startswith("fete-de-l-ete-a-saint")
        m = sub.wait_for(f"{PREFIX}/all/alerts/{report['id']}")
        assert json.loads(m.payload) == {"level": "info", "title": "Fête de l'Été à Saint-Étienne !"}
        assert getattr(m.properties, "MessageExpiryInterval", None) is None   # until cancelled
    assert report["expires_at"] is None and report["expected"] == []
    assert re.fullmatch(r"alert-\d{8}-\d{4}-[0-9a-f]{4}", new_alert_id("!!!"))
    with pytest.raises(ValueError, match="level"):
        console.bridge.send_alert(alert_id="x1", level="urgent", title="T", body=None, minutes=None, panels=[],
                                  groups=[], everyone=True, user="m")
    with pytest.raises(ContentError, match="choose at least one"):
        console.bridge.send_alert(alert_id="x1", level="info", title="T", body=None, minutes=None, panels=[],
                                  groups=[], everyone=False, user="m")
    with pytest.raises(ValueError, match="alert id"):
        console.bridge.send_alert(alert_id="a/b", level="info", title="T", body=None, minutes=None, panels=[],
                                  groups=[], everyone=True, user="m")
    with pytest.raises(ValueError, match="minutes"):
        console.bridge.send_alert(alert_id="x1", level="info", title="T", body=None, minutes=0, panels=[],
                                  groups=[], everyone=True, user="m")
    assert console.fleet.alert_report("x1") is None


def test_cancel_publishes_the_retained_empty_payload(console: Console, broker: Broker) -> None:
    console.bridge.send_alert(alert_id="vent-2", level="warning", title="Vent", body=None, minutes=10,
                              panels=[], groups=["centre"], everyone=False, user="marie")
    # an alert sent by panelctl, which the console does not track: still found on the broker
    broker.publish(f"{PREFIX}/panels/p9/alerts/vent-2", b'{"level":"info","title":"x"}', retain=True)
    with broker.sub(f"{PREFIX}/+/+/alerts/vent-2") as sub:
        mark = sub.mark()
        report = console.bridge.cancel_alert("vent-2", "paul")
        for topic in (f"{PREFIX}/groups/centre/alerts/vent-2", f"{PREFIX}/panels/p9/alerts/vent-2"):
            assert sub.wait_for(topic, b"", after=mark).payload == b""
    assert report is not None and report["cancelled_at"] is not None and report["cancelled_by"] == "paul"
    with broker.sub(f"{PREFIX}/#") as later:    # an unsigned cancel clears the retained alert
        broker.publish(f"{PREFIX}/marker", b"1")
        later.wait_for(f"{PREFIX}/marker")
        assert later.payloads(f"{PREFIX}/+/+/alerts/vent-2") == []
    assert console.bridge.cancel_alert("never-sent", "paul") is None


def test_signed_alert_cancel_and_command(broker: Broker, tmp_path: Path) -> None:
    signer = Signer(KEY, "console-2026")
    keys = {"console-2026": KEY.public_key()}
    c = Console(broker, tmp_path, signer=signer)
    try:
        with broker.sub(f"{PREFIX}/#") as sub:
            c.bridge.send_alert(alert_id="crue-9", level="warning", title="Crue", body=None, minutes=5,
                                panels=["p1"], groups=[], everyone=False, user="marie")
            topic = f"{PREFIX}/panels/p1/alerts/crue-9"
            signed = open_envelope(sub.wait_for(topic).payload, keys, topic)
            assert signed.kid == "console-2026"
            assert json.loads(signed.payload) == {"level": "warning", "title": "Crue", "ttl": 300}
            mark = sub.mark()
            c.bridge.cancel_alert("crue-9", "marie")
            assert open_envelope(sub.wait_for(topic, after=mark).payload, keys, topic).payload == b""
            c.bridge.request_screenshot("p1")
            cmd_topic = f"{PREFIX}/panels/p1/cmd"
            command = json.loads(open_envelope(sub.wait_for(cmd_topic).payload, keys, cmd_topic).payload)
            assert command["cmd"] == "screenshot" and re.fullmatch(r"console-[0-9a-f]{12}", command["id"])
    finally:
        c.close()


def test_push_playlist_uploads_images_and_tracks_answers(console: Console, broker: Broker) -> None:
    broker.publish(f"{PREFIX}/panels/p1/heartbeat", heartbeat("p1", groups=["centre"]), retain=True)
    console.row("p1")
    image = png_bytes("#00ff00")
    sha = hashlib.sha256(image).hexdigest()
    data = {"id": "hiver", "version": 7, "slides": [
        {"id": "affiche", "type": "image", "file": "affiche.png", "duration": 10},
        {"id": "mot", "type": "text", "title": "Bonjour", "duration": 5}]}
    with broker.sub(f"{PREFIX}/#") as sub:
        report = console.bridge.push_playlist(data, {"affiche.png": image}, panels=[], groups=["centre"],
                                              user="marie")
        assert sub.wait_for(f"{PREFIX}/assets/{sha}").payload == image
        sent = json.loads(sub.wait_for(f"{PREFIX}/groups/centre/playlist").payload)
        assert sent["slides"][0]["asset"] == f"sha256:{sha}" and "file" not in sent["slides"][0]
    assert report["key"] == "hiver@7" and report["expected"] == ["p1"] and report["applied"] == 0
    with broker.sub(f"{PREFIX}/groups/+/playlist") as later:   # retained
        assert json.loads(later.wait_for(f"{PREFIX}/groups/centre/playlist").payload) == sent
    broker.publish(f"{PREFIX}/panels/p1/events", json.dumps(
        {"type": "playlist.applied", "ts": iso(time.time()), "playlist": "hiver", "version": 7}).encode())
    wait_until(lambda: console.fleet.push_report("hiver@7")["applied"] == 1, 5, "playlist.applied tracked")
    with pytest.raises(ValueError, match=r"slides\[0\]"):
        console.bridge.push_playlist(data, {}, panels=["p1"], groups=[], user="marie")   # file missing
    with pytest.raises(ValueError, match="plain file name"):
        console.bridge.push_playlist(data, {"../affiche.png": image}, panels=["p1"], groups=[], user="marie")
    with pytest.raises(ValueError, match="at least one"):
        console.bridge.push_playlist(data, {"affiche.png": image}, panels=[], groups=[], user="marie")


def test_screenshot_requested_and_stored(console: Console, broker: Broker) -> None:
    broker.publish(f"{PREFIX}/panels/p1/online", b"true", retain=True)
    console.row("p1")
    with broker.sub(f"{PREFIX}/panels/p1/cmd") as sub:
        request = console.bridge.request_screenshot("p1")
        command = json.loads(sub.wait_for(f"{PREFIX}/panels/p1/cmd").payload)
    assert command == {"id": request, "cmd": "screenshot"}
    broker.publish(f"{PREFIX}/panels/p1/screenshot", b"GIF89a not a png")   # ignored
    image = png_bytes("#0000ff")
    broker.publish(f"{PREFIX}/panels/p1/screenshot", image)
    wait_until(lambda: console.fleet.row("p1")["screenshot_ts"], 5, "the screenshot")
    assert (console.shots / "p1.png").read_bytes() == image
    assert [p.name for p in console.shots.iterdir()] == ["p1.png"]   # no temporary file left
    with pytest.raises(ValueError, match="panel id"):
        console.bridge.request_screenshot("Bad Id")


def test_reconnects_after_the_broker_restarts(console: Console, broker: Broker) -> None:
    broker.publish(f"{PREFIX}/panels/p1/online", b"true", retain=True)
    console.row("p1")
    assert console.bridge.connects == 1
    broker.stop()
    wait_until(lambda: not console.bridge.connected, 5, "the bridge to notice the loss")
    with pytest.raises(CtlError, match="not connected"):
        console.bridge.send_alert(alert_id="a1", level="info", title="T", body=None, minutes=None, panels=[],
                                  groups=[], everyone=True, user="m")
    assert console.fleet.alert_report("a1") is None
    broker.start()
    wait_until(lambda: console.bridge.connected, 10, "the bridge to reconnect")
    assert console.bridge.connects == 2
    broker.publish(f"{PREFIX}/panels/p3/heartbeat", heartbeat("p3", cpu_temp_c=44.0), retain=True)
    wait_until(lambda: console.fleet.row("p3"), 5, "a message after the reconnection (subscribed again)")
    broker.restart()   # again, while connected
    wait_until(lambda: console.bridge.connects == 3 and console.bridge.connected, 10, "a second reconnection")
    broker.publish(f"{PREFIX}/panels/p1/online", b"false", retain=True)
    wait_until(lambda: console.fleet.row("p1")["state"] == "offline", 5, "p1 offline after the restart")


def test_without_a_broker_it_keeps_trying_and_stops_at_once(tmp_path: Path) -> None:
    from fixtures_broker import free_port

    fleet = Fleet()
    bridge = Bridge(CtlSettings(port=free_port(), prefix=PREFIX), fleet, None, tmp_path / "screens")
    bridge.start()
    time.sleep(1.5)   # refused, then 1 s later refused again
    assert not bridge.connected and bridge.connects == 0
    with pytest.raises(CtlError, match="not connected to the broker at 127.0.0.1:"):
        bridge.request_screenshot("p1")
    started = time.monotonic()
    bridge.stop()
    assert time.monotonic() - started < 2


def test_a_real_player_shows_an_alert_sent_by_the_console(console: Console, broker: Broker,
                                                         tmp_path: Path) -> None:
    folder = tmp_path / "p1"
    folder.mkdir()
    player = PanelProcess(broker, folder, "p1", groups=["centre"])
    try:
        row = wait_until(lambda: (console.fleet.row("p1") or {}).get("firmware") and console.fleet.row("p1"),
                         20, "the player's heartbeat")
        assert row["state"] == "online" and row["groups"] == ["centre"]
        report = console.bridge.send_alert(alert_id=None, level="critical", title="Évacuation", body="Place",
                                           minutes=5, panels=[], groups=["centre"], everyone=False, user="m")
        assert report["expected"] == ["p1"]
        wait_until(lambda: console.fleet.alert_report(report["id"])["reached"] == 1, 15,
                   f"alert.displayed from the player\n{player.log_text()[-2000:]}")
        assert console.fleet.alert_report(report["id"])["panels"]["p1"]["status"] == "displayed"
        wait_until(lambda: report["id"] in console.fleet.row("p1")["alerts"], 10, "the alert in the heartbeat")
        assert console.fleet.row("p1")["showing"]["kind"] == "alert"
        console.bridge.cancel_alert(report["id"], "m")
        wait_until(lambda: console.fleet.alert_report(report["id"])["panels"]["p1"]["status"] == "ended", 10,
                   "alert.ended after the cancel")
    finally:
        player.close()


def test_on_rabbitmq_the_fleet_comes_from_the_index_and_the_indexes_are_kept(rabbit: Any, tmp_path: Path) -> None:
    """RabbitMQ 3.10: MQTT 3.1.1 only, and no retained message for a wildcard subscription."""
    rabbit.publish(f"{PREFIX}/panels/p1/online", b"true", retain=True)
    rabbit.publish(f"{PREFIX}/panels/p1/heartbeat", heartbeat("p1", groups=["centre"]), retain=True)
    rabbit.publish(f"{PREFIX}/fleet", b'{"panels": ["p1"], "ts": "2026-12-03T10:00:00+00:00"}', retain=True)
    c = Console(rabbit, tmp_path, index_every=0.3)
    try:
        row = c.row("p1")
        wait_until(lambda: c.fleet.row("p1")["groups"] == ["centre"], 5, "p1's retained heartbeat")
        assert c.fleet.row("p1")["state"] == "online" and row["panel"] == "p1"
        # a panel heard live that the index does not list is added to it
        rabbit.publish(f"{PREFIX}/panels/p2/heartbeat", heartbeat("p2"), retain=True)
        c.row("p2")

        def listed() -> list[str]:
            with rabbit.sub(f"{PREFIX}/fleet") as sub:
                return list(json.loads(sub.wait_for(f"{PREFIX}/fleet").payload)["panels"])
        wait_until(lambda: listed() == ["p1", "p2"], 10, "p2 in the fleet index", step=0.3)

        with pytest.raises(ValueError, match=r'"\." is not allowed: brokers that map MQTT topics to AMQP'):
            c.bridge.send_alert(alert_id="crue.1", level="info", title="T", body=None, minutes=None, panels=[],
                                groups=[], everyone=True, user="m")
        before = time.time()
        c.bridge.send_alert(alert_id="crue-1", level="critical", title="Crue", body=None, minutes=10,
                            panels=[], groups=["centre"], everyone=False, user="marie")
        with rabbit.sub(f"{PREFIX}/groups/centre/alerts/crue-1", f"{PREFIX}/groups/centre/alert-index") as sub:
            sent = json.loads(sub.wait_for(f"{PREFIX}/groups/centre/alerts/crue-1").payload)
            index = json.loads(sub.wait_for(f"{PREFIX}/groups/centre/alert-index").payload)
        assert "ttl" not in sent and 599 <= datetime.fromisoformat(sent["expires"]).timestamp() - before <= 603
        assert index["alerts"] == ["crue-1"]
        assert c.bridge.cancel_alert("crue-1", "paul") is not None
        with rabbit.sub(f"{PREFIX}/groups/centre/alert-index") as sub:
            assert json.loads(sub.wait_for(f"{PREFIX}/groups/centre/alert-index").payload)["alerts"] == []
    finally:
        c.close()
