"""The player's own screens on a small panel whatever the playlist's layout: the alert
screen, the identify screen and the test card use the bundled pixel fonts and the LED
look on any panel whose smaller side is at most 128 pixels (a png preview of an LED
panel, a matrix driven through another output), as slides do; ``display.font: pixel``
names them everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from player.config import config_from_data
from player.errors import ConfigError
from player.render.fonts import FONTS_DIR, PIXEL_FONT, screen_style
from player.render.outputs import init_display

from test_led_colours import Driven


@pytest.fixture(autouse=True)
def display() -> None:
    init_display("png")


def small_config(tmp_path: Path, size: tuple[int, int] = (128, 32), **display: Any) -> Any:
    return config_from_data({
        "panel": {"id": "entree"},
        "display": {"output": "png", "size": list(size), "path": str(tmp_path / "frame.png"), **display},
        "mqtt": {"enabled": False}, "state_dir": str(tmp_path / "state"),
        "brightness": {"fallback": {"day": 100, "night": 100}},
    })


def test_screen_style_follows_the_panel() -> None:
    assert screen_style((128, 64), None, ledmatrix=False) == (PIXEL_FONT, True)
    assert screen_style((64, 128), None, ledmatrix=False) == (PIXEL_FONT, True)  # portrait
    assert screen_style((1920, 1080), None, ledmatrix=False) == (None, False)
    assert screen_style((1920, 1080), "/f.ttf", ledmatrix=True) == ("/f.ttf", True)
    assert screen_style((640, 360), None, ledmatrix=False, layout_antialias=False) == (None, True)
    assert screen_style((128, 64), "/f.ttf", ledmatrix=False) == ("/f.ttf", True)  # a font named is kept


def test_display_font_pixel_and_font_folders_are_accepted(tmp_path: Path) -> None:
    assert small_config(tmp_path, font="pixel").display.font == "pixel"
    assert small_config(tmp_path, font=str(FONTS_DIR)).display.font == str(FONTS_DIR)
    missing = tmp_path / "none.ttf"
    with pytest.raises(ConfigError) as info:
        small_config(tmp_path, font=str(missing))
    assert info.value.errors == [f'display.font: no such font file or folder "{missing}" '
                                 '(or "pixel": the bundled pixel fonts)']


def test_identify_on_a_small_panel_playing_a_large_screen_layout(tmp_path: Path) -> None:
    panel = Driven(small_config(tmp_path))
    try:
        panel.player.start()
        panel.send("panels/entree/playlist", {"id": "mairie", "version": 1, "layout": "fullscreen", "slides": [
            {"id": "t", "type": "text", "duration": 60, "title": "Mairie", "body": "Ouverte"}]})
        panel.run(10, lambda: panel.seen("playlist.applied"))
        assert panel.player.layout.name == "fullscreen" and panel.player.layout.font is None
        panel.send("panels/entree/cmd", {"id": "r1", "cmd": "identify", "seconds": 2}, retained=False)
        panel.run(10, lambda: panel.seen("command.done", request="r1"))
        view = panel.player.ops.identify_view
        assert view is not None and view.led and view.painter.face.spec == PIXEL_FONT
        assert not view.painter.antialias
    finally:
        panel.player.close()


def test_the_test_card_on_a_small_panel(tmp_path: Path) -> None:
    from player.testcard_cmd import TestCardRunner

    runner = TestCardRunner(small_config(tmp_path, layout="fullscreen"), probe_interval=30)
    runner.run(seconds=0.5)
    assert runner.card is not None and runner.card.painter.face.spec == PIXEL_FONT


def test_a_large_panel_keeps_its_font(tmp_path: Path) -> None:
    from player.testcard_cmd import TestCardRunner

    runner = TestCardRunner(small_config(tmp_path, size=(640, 360), layout="fullscreen"), probe_interval=30)
    runner.run(seconds=0.5)
    assert runner.card is not None and runner.card.painter.face.spec is None
