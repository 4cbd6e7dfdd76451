"""A display absent at start: the player runs without it, says so, and uses it once it appears."""

import time
from pathlib import Path

import pygame

from player.config import config_from_data
from player.errors import DisplayUnavailable
from player.render.outputs.png import open_png
from player.render.outputs.waiting import WaitingOutput


def test_waiting_output_retries_until_the_device_opens(tmp_path):
    attempts = []
    target = tmp_path / "late.png"

    def opener():
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise DisplayUnavailable(f"waiting for /dev/fb0 (attempt {len(attempts)})")
        return open_png(target, (32, 16))

    out = WaitingOutput((32, 16), opener, "waiting for /dev/fb0", retry_s=0.01)
    assert not out.healthy and out.status == "waiting for /dev/fb0"
    frame = pygame.Surface((32, 16))
    assert out.show(frame, None) > 0  # nothing to show it on, and no error
    while out.ready is None:
        deadline = out.next_deadline()
        assert deadline is not None
        time.sleep(max(0.0, deadline - time.monotonic()))
        out.flush(time.monotonic())
        if out.ready is None:
            assert out.status.startswith("waiting for /dev/fb0 (attempt")
    assert len(attempts) == 3 and out.next_deadline() is None
    out.ready.close()


def test_player_starts_without_its_framebuffer_and_reports_it(tmp_path):
    from player.app import Player

    cfg = config_from_data({
        "panel": {"id": "sans-ecran"},
        "display": {"output": "fbdev", "device": str(tmp_path / "fb7")},
        "mqtt": {"enabled": False},
        "state_dir": str(tmp_path / "state"),
    })
    player = Player(cfg)
    try:
        player.start()  # must not raise: the panel keeps receiving alerts and playlists
        assert isinstance(player.output, WaitingOutput)
        hb = player.ops.heartbeat(time.monotonic())
        assert hb["display"]["healthy"] is False
        assert "waiting for" in hb["display"]["status"] and "fb7" in hb["display"]["status"]
        assert player.content.playlist is not None  # content is chosen and rotating all the same
        player.step()
    finally:
        player.close()


def test_an_alert_is_not_reported_displayed_until_the_display_is_there(tmp_path):
    import json

    from fake_framebuffer import make_fb

    from player.app import Player
    from player.net.protocol import Inbound
    from player.net.topics import PanelTopics

    sent: list[dict] = []

    class Watched(Player):
        def event(self, event, limit=True):
            sent.append(event)
            super().event(event, limit)

    device = tmp_path / "dev" / "fb0"
    cfg = config_from_data({
        "panel": {"id": "sans-ecran"},
        "display": {"output": "fbdev", "device": str(device)},
        "mqtt": {"enabled": False},
        "state_dir": str(tmp_path / "state"),
    })
    import os

    os.environ["PANEL_PLAYER_SYSFS_ROOT"] = str(tmp_path / "sys")
    player = Watched(cfg)
    try:
        player.start()
        assert isinstance(player.output, WaitingOutput)
        route = PanelTopics(cfg.mqtt.prefix, "sans-ecran").parse_inbound("signage/panels/sans-ecran/alerts/crue")
        payload = json.dumps({"level": "critical", "title": "CRUE"}).encode()
        player.inbox.put(Inbound(route, payload, False, time.monotonic()))
        for _ in range(3):
            player.step()
        assert player.alerts.ids() == ["crue"]
        assert not [e for e in sent if e["type"] == "alert.displayed"]  # nobody could see it

        make_fb(tmp_path, 64, 32, 32)  # the screen is plugged in
        player.output._next_try = 0.0  # retry at the next pass rather than in a few seconds
        deadline = time.monotonic() + 10
        while not [e for e in sent if e["type"] == "alert.displayed"] and time.monotonic() < deadline:
            player.step()
        assert [e["alert"] for e in sent if e["type"] == "alert.displayed"] == ["crue"]
        assert not isinstance(player.output, WaitingOutput)
    finally:
        os.environ.pop("PANEL_PLAYER_SYSFS_ROOT", None)
        player.close()
