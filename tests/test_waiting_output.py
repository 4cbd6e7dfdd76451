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
