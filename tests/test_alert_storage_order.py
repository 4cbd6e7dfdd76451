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
