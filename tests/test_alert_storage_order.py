"""An alert is on disk before the server is told it is displayed.

The player runs in this process (real renderer, SDL's dummy driver, png output,
real state store); MQTT is off, so the alert message is put on the player's inbox
as the link would. The player's ``event`` is wrapped to read the stored alerts at
the moment each ``alert.displayed`` goes out.
"""

from __future__ import annotations

import json
import time
from typing import Any

from player.app import Player
from player.config import config_from_data
from player.net.protocol import Inbound
from player.net.topics import PanelTopics


class WatchedPlayer(Player):
    """The real player; notes what is stored when it publishes ``alert.displayed``."""

    stored_at_displayed: list[list[str]]

    def event(self, event: dict[str, Any], limit: bool = True) -> None:
        if event["type"] == "alert.displayed":
            self.stored_at_displayed.append([r.get("id") for r in self.store.load_alerts()])
        super().event(event, limit)


def test_alert_is_stored_before_its_alert_displayed_is_sent(tmp_path):
    cfg = config_from_data({
        "panel": {"id": "quai-nord"},
        "display": {"output": "png", "path": str(tmp_path / "screen.png"), "size": [320, 180]},
        "mqtt": {"enabled": False},
        "state_dir": str(tmp_path / "state"),
    })
    player = WatchedPlayer(cfg)
    player.stored_at_displayed = []
    try:
        player.start()
        player.step()
        assert player.store.load_alerts() == []
        route = PanelTopics(cfg.mqtt.prefix, "quai-nord").parse_inbound(f"{cfg.mqtt.prefix}/panels/quai-nord/alerts/crue")
        payload = json.dumps({"level": "critical", "title": "CRUE", "body": "Restez chez vous."}).encode()
        player.inbox.put(Inbound(route, payload, False, time.monotonic()))
        deadline = time.monotonic() + 10
        while not player.stored_at_displayed and time.monotonic() < deadline:
            player.step()
        assert player.stored_at_displayed == [["crue"]]
    finally:
        player.close()


def test_an_alert_screen_that_fails_to_build_shows_the_minimal_one_and_tells_the_crews(tmp_path, monkeypatch):
    """Fault injection: our own alert screen builder raises; the player stays up, the alert
    is acknowledged from the minimal screen, and an ``error`` event says what failed."""
    from player.render.alert_view import AlertView

    def broken(self, size):  # type: ignore[no-untyped-def]
        raise ValueError("no font size fits")

    monkeypatch.setattr(AlertView, "_build", broken)
    sent: list[dict[str, Any]] = []

    class Watched(Player):
        def event(self, event: dict[str, Any], limit: bool = True) -> None:
            sent.append(event)
            super().event(event, limit)

    cfg = config_from_data({
        "panel": {"id": "quai-nord"},
        "display": {"output": "png", "path": str(tmp_path / "screen.png"), "size": [320, 180]},
        "mqtt": {"enabled": False},
        "state_dir": str(tmp_path / "state"),
        "brightness": {"fallback": {"day": 100, "night": 100}},  # colours whatever the hour
    })
    player = Watched(cfg)
    try:
        player.start()
        route = PanelTopics(cfg.mqtt.prefix, "quai-nord").parse_inbound(f"{cfg.mqtt.prefix}/all/alerts/crue")
        payload = json.dumps({"level": "critical", "title": "CRUE"}).encode()
        player.inbox.put(Inbound(route, payload, False, time.monotonic()))
        deadline = time.monotonic() + 10
        while not any(e["type"] == "alert.displayed" for e in sent) and time.monotonic() < deadline:
            player.step()
        kinds = [e["type"] for e in sent]
        assert "alert.displayed" in kinds
        errors = [e["reason"] for e in sent if e["type"] == "error"]
        assert any("no font size fits" in r and "minimal alert screen" in r for r in errors), errors
        shot = player.renderer.snapshot()
        reds = sum(1 for x in range(0, 320, 8) for y in range(0, 180, 8) if tuple(shot.get_at((x, y)))[:3] == (160, 0, 0))
        assert reds > 100  # the minimal screen: the critical colour over most of the panel
    finally:
        player.close()


def test_the_replay_guard_is_stored_before_the_alerts(tmp_path):
    """A power cut between the two saves must leave the guard newer than the alerts, never
    older (else a cancelled alert's signed message would be accepted again)."""
    import hashlib

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from player.trust import b64url, sign

    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"order").digest())
    cfg = config_from_data({
        "panel": {"id": "quai-nord"},
        "display": {"output": "png", "path": str(tmp_path / "screen.png"), "size": [320, 180]},
        "mqtt": {"enabled": False},
        "state_dir": str(tmp_path / "state"),
        "trust": {"keys": [{"kid": "k", "key": b64url(key.public_key().public_bytes_raw())}]},
    })
    player = Player(cfg)
    writes: list[str] = []
    save_alerts, save_json = player.store.save_alerts, player.store.save_json
    player.store.save_alerts = lambda records: (writes.append("alerts"), save_alerts(records))[1]  # type: ignore[method-assign]
    player.store.save_json = lambda name, data: (writes.append(name), save_json(name, data))[1]  # type: ignore[method-assign]
    topic = f"{cfg.mqtt.prefix}/all/alerts/crue"
    route = PanelTopics(cfg.mqtt.prefix, "quai-nord").parse_inbound(topic)
    try:
        player.start()
        for iat, payload in ((100.0, b'{"level": "critical", "title": "CRUE"}'), (200.0, b"")):
            writes.clear()
            sealed = sign(payload, key=key, kid="k", topic=topic, iat=iat)
            player.inbox.put(Inbound(route, sealed, False, time.monotonic()))
            deadline = time.monotonic() + 10
            while "alerts" not in writes and time.monotonic() < deadline:
                player.step()
            assert writes[:2] == ["trust-seen", "alerts"], writes
        assert player.alerts.ids() == []
    finally:
        player.close()
