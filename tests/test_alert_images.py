"""An alert's picture is decoded off the main loop: the alert is on screen at once, with
its level, title and body, and its picture joins it once decoded. A real player in this
process (png output, no broker), alerts put on its inbox as the MQTT link would."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import pygame
import pytest
from PIL import Image

from player.config import config_from_data
from player.render import images

from test_led_colours import Driven

SIZE = (480, 270)
MAGENTA = (250, 0, 250)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The thread of every picture decoded."""
    seen: list[str] = []
    real = images.decode_image

    def recorded(*args: Any, **kw: Any) -> images.DecodedImage:
        time.sleep(0.3)  # a slow card, a large picture: the alert must not wait for it
        seen.append(threading.current_thread().name)
        return real(*args, **kw)

    monkeypatch.setattr(images, "decode_image", recorded)
    return seen


def panel(tmp_path: Path, picture: bytes) -> tuple[Driven, str]:
    cfg = config_from_data({
        "panel": {"id": "gare"},
        "display": {"output": "png", "size": list(SIZE), "path": str(tmp_path / "frame.png"), "transition": "cut"},
        "mqtt": {"enabled": False}, "state_dir": str(tmp_path / "state"),
        "brightness": {"fallback": {"day": 100, "night": 100}},
    })
    driven = Driven(cfg)
    sha = hashlib.sha256(picture).hexdigest()
    driven.player.store.assets.put(sha, picture)
    return driven, sha


def magenta_share(surface: pygame.Surface) -> float:
    img = Image.frombytes("RGB", surface.get_size(), pygame.image.tobytes(surface, "RGB"))
    found = img.getcolors(img.width * img.height) or []
    return sum(n for n, c in found if c == MAGENTA) / (img.width * img.height)


def test_the_alert_is_shown_at_once_and_its_picture_joins_it_decoded_in_the_background(
        tmp_path: Path, decodes: list[str]) -> None:
    path = tmp_path / "crue.png"
    Image.new("RGB", (3000, 2000), MAGENTA).save(path)
    driven, sha = panel(tmp_path, path.read_bytes())
    player = driven.player
    try:
        player.start()
        sent = time.monotonic()
        driven.send("all/alerts/crue", {"level": "critical", "title": "Crue de la Loire",
                                        "body": "Évacuez les berges", "asset": f"sha256:{sha}"})
        driven.run(5, lambda: driven.seen("alert.displayed", alert="crue"))
        assert time.monotonic() - sent < 0.3  # not held up by the 0.3 s decode
        assert magenta_share(player.renderer.snapshot()) == 0.0  # without its picture yet
        driven.run(5, lambda: magenta_share(player.renderer.snapshot()) > 0.02)
        assert decodes and all(name != threading.main_thread().name for name in decodes), decodes
        assert sum(e["type"] == "alert.displayed" for e in driven.events) == 1
        assert not driven.seen("error")
    finally:
        player.close()


def test_a_picture_that_cannot_be_decoded_leaves_the_alert_on_screen_and_is_reported(
        tmp_path: Path, decodes: list[str]) -> None:
    driven, sha = panel(tmp_path, b"not a picture at all")
    player = driven.player
    try:
        player.start()
        driven.send("all/alerts/crue", {"level": "warning", "title": "Orages", "body": "Restez à l'abri",
                                        "asset": f"sha256:{sha}"})
        driven.run(5, lambda: driven.seen("alert.displayed", alert="crue"))
        driven.run(5, lambda: any(e["type"] == "error" and sha in e.get("reason", "") for e in driven.events))
        assert player.alerts.shown is not None and player.alerts.shown.id == "crue"
        assert all(name != threading.main_thread().name for name in decodes)
    finally:
        player.close()
