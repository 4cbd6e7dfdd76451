"""First boot fits the panel: the bundled content and `provision`'s layout follow the output, size and mounting."""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from player.app import Player, bundled_dir
from player.app_content import BUNDLED_PLAYLISTS
from player.config import config_from_data, load_config
from player.content import ImageSlide, parse_playlist
from player.layout import builtin_layouts
from player.provision import add_provision_parser, cmd_provision, layout_for


@pytest.mark.parametrize(("output", "size", "rotation", "expected"), [
    ("ledmatrix", (128, 64), 0, "led-matrix"),
    ("ledmatrix", (256, 256), 0, "led-matrix"),  # a matrix whatever its size
    ("ledmatrix", None, 0, "led-matrix"),
    ("png", (128, 64), 0, "led-matrix"),
    ("png", (192, 96), 0, "led-matrix"),
    ("png", (64, 128), 0, "led-matrix"),
    ("png", (160, 128), 90, "led-matrix"),
    ("png", (1920, 1080), 0, "landscape"),
    ("png", (800, 480), 0, "landscape"),
    ("png", (320, 240), 0, "landscape"),
    ("png", (129, 129), 0, "landscape"),  # square: not taller than wide
    ("png", (1080, 1920), 0, "portrait"),
    ("png", (1920, 1080), 90, "portrait"),
    ("png", (1920, 1080), 270, "portrait"),
    ("png", (1920, 1080), 180, "landscape"),
    ("sdl", (1080, 1920), 90, "landscape"),
    ("fbdev", None, 0, "landscape"),
    ("fbdev", None, 90, "portrait"),
])
def test_layout_for_each_shape(output: str, size: tuple[int, int] | None, rotation: int, expected: str) -> None:
    assert layout_for(output, size, rotation) == expected


def test_every_bundled_variant_is_valid_complete_small_and_in_its_layout() -> None:
    folder = bundled_dir()
    assert set(BUNDLED_PLAYLISTS) <= set(builtin_layouts())
    total = 0
    for layout, name in BUNDLED_PLAYLISTS.items():
        playlist = parse_playlist((folder / name).read_bytes(), layouts=frozenset(builtin_layouts()))
        assert playlist.layout == layout, name
        assert playlist.id == "demo-mairie"  # the same demo whatever the shape (heartbeats, tests)
        for slide in playlist.slides:
            if isinstance(slide, ImageSlide):
                files = list(folder.glob(f"{slide.asset}.*"))
                assert len(files) == 1, f"{name}: {slide.id}: image {slide.asset} is not bundled"
                with Image.open(files[0]) as img:
                    w, h = img.size
                if layout == "portrait":
                    assert h > w, f"{name}: {slide.id} is not an upright picture"
                if layout == "led-matrix":
                    assert w <= 256 and h <= 128, f"{name}: {slide.id} is {w}x{h}, not a picture for LEDs"
                total += files[0].stat().st_size
    assert total < 200_000  # bundled in every installation


def _cfg(tmp_path: Path, display: dict[str, Any]) -> Any:
    return config_from_data({
        "panel": {"id": "premier", "timezone": "Europe/Paris"},
        "display": {"output": "png", "path": str(tmp_path / "frame.png"), "transition": "cut", **display},
        "mqtt": {"enabled": False}, "state_dir": str(tmp_path / "state"),
        "brightness": {"fallback": {"day": 100, "night": 100}},
    })


@pytest.mark.parametrize(("size", "rotation", "layout"), [
    ((128, 64), 0, "led-matrix"),
    ((64, 128), 0, "led-matrix"),
    ((1080, 1920), 0, "portrait"),
    ((640, 360), 90, "portrait"),
    ((640, 360), 0, "landscape"),
])
def test_a_new_panel_shows_the_bundled_content_made_for_its_shape(tmp_path: Path, size: tuple[int, int],
                                                                  rotation: int, layout: str) -> None:
    # display.layout is left at its default (fullscreen): the bundled playlist brings its own.
    player = Player(_cfg(tmp_path, {"size": list(size), "rotation": rotation}))
    try:
        player.start()
        assert player.content.manager.current is not None
        assert player.content.manager.current.source == "bundled"
        assert player.layout_name == layout
        assert player.renderer.layout.name == layout
        playlist = player.content.playlist
        assert playlist is not None and playlist.layout == layout
        assert player.ops.errors.items() == []  # every bundled image was found and decoded
        assert player.output.wait_idle(5.0)
        with Image.open(tmp_path / "frame.png") as img:
            assert img.size == size  # the physical picture, turned by the rotation
            colours = img.convert("RGB").getcolors(1 << 16)
        assert colours is not None and len(colours) > 1  # something is drawn
    finally:
        player.close()


def test_a_small_panel_first_shows_crisp_pixels_and_its_amber_ticker(tmp_path: Path) -> None:
    player = Player(_cfg(tmp_path, {"size": [128, 64]}))
    try:
        player.start()
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            player.step()
        assert player.output.wait_idle(5.0)
        with Image.open(tmp_path / "frame.png") as img:
            frame = img.convert("RGB")
        ticker = frame.crop((0, 49, 128, 63))  # the led-matrix layout's bottom quarter, inside its padding
        inks = {c for _, c in ticker.getcolors(1 << 16) or []}
        assert inks == {(0, 0, 0), (255, 176, 0)}  # amber on black, no anti-aliased greys
    finally:
        player.close()


def test_a_stored_playlist_still_wins_over_the_bundled_one(tmp_path: Path) -> None:
    player = Player(_cfg(tmp_path, {"size": [128, 64]}))
    raw = (b'{"id":"ville","version":3,"layout":"fullscreen","slides":[{"id":"a","type":"text",'
           b'"title":"Bonjour","duration":5}]}')
    player.store.save_playlist(raw, {"source": "panel"})
    first = player.content.initial()
    assert first.source == "stored" and first.playlist.id == "ville"


def test_a_ledmatrix_output_picks_the_led_content_before_any_display_is_open(tmp_path: Path) -> None:
    cfg = config_from_data({"panel": {"id": "quai"}, "display": {"output": "ledmatrix"},
                            "mqtt": {"enabled": False}, "state_dir": str(tmp_path / "state")})
    player = Player(cfg)
    assert player.renderer is None
    assert player.content.bundled_playlist().name == "playlist-led.json"
    assert player.content.initial().playlist.layout == "led-matrix"


def test_an_installation_without_the_variant_falls_back_to_the_landscape_playlist(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "playlist.json").write_bytes((bundled_dir() / "playlist.json").read_bytes())
    player = Player(_cfg(tmp_path, {"size": [1080, 1920]}))
    player.content.bundled = folder
    assert player.content.bundled_playlist() == folder / "playlist.json"


# -- provision -------------------------------------------------------------------------------


def provision(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="panel-player")
    add_provision_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["provision", *argv])
    return int(args.handler(args, io.StringIO("")))


@pytest.mark.parametrize(("flags", "layout"), [
    (["--output", "ledmatrix"], "led-matrix"),
    (["--output", "png", "--size", "128x64"], "led-matrix"),
    (["--output", "png", "--size", "1080x1920"], "portrait"),
    (["--output", "sdl", "--size", "1920x1080", "--rotation", "90"], "portrait"),
    (["--output", "png", "--size", "1920x1080"], "landscape"),
    (["--output", "fbdev"], "landscape"),
    ([], "landscape"),  # fbdev by default
    (["--output", "fbdev", "--rotation", "270"], "portrait"),
    (["--output", "ledmatrix", "--layout", "fullscreen"], "fullscreen"),  # the installer's choice wins
    (["--output", "png", "--size", "128x64", "--layout", "landscape"], "landscape"),
])
def test_provision_writes_the_layout_that_fits(tmp_path: Path, flags: list[str], layout: str) -> None:
    target = tmp_path / "etc" / "config.yaml"
    extra = ["--png-path", str(tmp_path / "f.png")] if "png" in flags else []
    assert provision(["--config", str(target), "--id", "quai", "--no-broker", *flags, *extra]) == 0
    data = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert data["display"]["layout"] == layout
    assert load_config(target).display.layout == layout


def test_provision_with_a_bad_size_reports_the_size_not_the_layout(tmp_path: Path, capsys) -> None:
    target = tmp_path / "config.yaml"
    assert provision(["--config", str(target), "--id", "quai", "--no-broker", "--output", "png",
                      "--size", "big"]) == 2
    err = capsys.readouterr().err
    assert "--size" in err and "--layout" not in err
    assert not target.exists()
