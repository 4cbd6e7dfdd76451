"""`panelctl preview`: the panel's own renderer, offline, into one labelled contact sheet; LED dots; PNG LED look."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pygame
import pytest
from PIL import Image

from player.app import bundled_dir
from player.ctl.cli import main as panelctl
from player.ctl.preview import Images, Panel, preview_alert, preview_playlist
from player.alerts import AlertsConfig, alert_from_data
from player.content import parse_playlist
from player.render.colours import PanelColours
from player.render.outputs.png import MAX_DOTS_PX, LedLook, PngOutput, led_dots, open_png
from player.errors import OutputError

AMBER = (255, 176, 0)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = panelctl([*argv, "--broker", "127.0.0.1:9"], out, err)  # nothing listens there: preview never connects
    return code, out.getvalue(), err.getvalue()


def colours_of(image: Image.Image) -> set[tuple[int, int, int]]:
    return {c for _, c in image.convert("RGB").getcolors(1 << 24) or []}


# -- the bundled content ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "argv", "rows"), [
    ("playlist-led.json", ["--size", "128x64", "--led"], 5),
    ("playlist-led.json", ["--size", "128x64", "--led", "--mono", "#ffb000"], 5),
    ("playlist-portrait.json", ["--size", "1080x1920"], 6),
    ("playlist.json", ["--size", "1920x1080"], 6),
])
def test_the_bundled_playlists_give_one_labelled_sheet(tmp_path: Path, name: str, argv: list[str],
                                                      rows: int) -> None:
    out = tmp_path / "sheet.png"
    start = time.monotonic()
    code, stdout, err = run("preview", str(bundled_dir() / name), *argv, "-o", str(out))
    assert code == 0, err
    assert time.monotonic() - start < 30
    assert stdout == ""
    assert f"{rows} rows" in err and "warning" not in err  # every bundled picture was found
    with Image.open(out) as sheet:
        assert sheet.width >= 560 and sheet.height > rows * 64


def test_led_dots_on_the_sheet_are_round_dots_on_black(tmp_path: Path) -> None:
    panel = Panel((128, 64), led=True, colours=PanelColours("mono", AMBER))
    playlist = parse_playlist((bundled_dir() / "playlist-led.json").read_bytes())
    rows = preview_playlist(playlist, panel, Images([bundled_dir()]).path_of, pytest.fail, tmp_path)
    frame = rows[0].shots[0].image
    assert frame.size == (128, 64)
    assert colours_of(frame) == {(0, 0, 0), AMBER}  # mono: off or the panel's colour
    dots = led_dots(frame)
    assert dots.size == (768, 384)
    lit = next((x, y) for y in range(64) for x in range(128) if frame.getpixel((x, y)) == AMBER)
    x, y = lit[0] * 6, lit[1] * 6
    assert dots.getpixel((x + 2, y + 2)) == AMBER  # the dot's middle
    assert dots.getpixel((x + 5, y + 2)) == (0, 0, 0)  # the gap column
    assert dots.getpixel((x + 2, y + 5)) == (0, 0, 0)  # the gap row
    assert dots.getpixel((x, y)) not in (AMBER,)  # a round dot: its corner is not fully lit


# -- hostile playlists ------------------------------------------------------------------------------


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_huge_text_is_paged_or_scrolled_and_each_page_is_on_the_sheet(tmp_path: Path) -> None:
    body = " ".join(f"Mot{i}" for i in range(700))[:3990]
    src = write(tmp_path / "long.json", {"id": "long", "layout": "led-matrix", "slides": [
        {"id": "roman", "type": "text", "title": "T" * 200, "body": body, "duration": 60}]})
    out = tmp_path / "long.png"
    code, _, err = run("preview", str(src), "--size", "128x64", "-o", str(out))
    assert code == 0, err
    playlist = parse_playlist(src.read_bytes().replace(b'"id": "long"', b'"id": "long", "version": 1'))
    rows = preview_playlist(playlist, Panel((128, 64)), lambda sha: None, pytest.fail, tmp_path)
    shots = rows[0].shots
    assert 2 <= len(shots) <= 6  # pages (or a scrolled line), sampled over the minute
    assert len({s.image.tobytes() for s in shots}) == len(shots)
    assert "pages" in rows[0].heading or "scrolls" in rows[0].heading
    assert shots[0].label == "0.0 s" and all(s.label.endswith(" s") for s in shots)


def test_a_missing_picture_is_a_crossed_placeholder_and_a_warning(tmp_path: Path) -> None:
    src = write(tmp_path / "p.json", {"id": "p", "slides": [
        {"id": "affiche", "type": "image", "asset": "sha256:" + "ab" * 32, "duration": 5}]})
    out = tmp_path / "p.png"
    code, _, err = run("preview", str(src), "--size", "320x180", "-o", str(out))
    assert code == 0
    assert "warning: slide affiche: image sha256:" + "ab" * 32 + " not found" in err
    assert out.is_file()
    warnings: list[str] = []
    rows = preview_playlist(parse_playlist(write(tmp_path / "q.json", {"id": "p", "version": 1, "slides": [
        {"id": "affiche", "type": "image", "asset": "sha256:" + "ab" * 32, "duration": 5}]}).read_bytes()),
        Panel((320, 180), layout="fullscreen"), lambda sha: None, warnings.append, tmp_path)
    assert len(warnings) == 1 and "image missing" in rows[0].heading
    assert (255, 60, 60) in colours_of(rows[0].shots[0].image)  # the red cross


def test_a_picture_given_by_file_or_found_by_its_hash_in_an_asset_folder(tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    pics.mkdir()
    Image.new("RGB", (64, 32), (0, 200, 0)).save(pics / "vert.png")
    import hashlib

    sha = hashlib.sha256((pics / "vert.png").read_bytes()).hexdigest()
    by_file = write(tmp_path / "a.json", {"id": "a", "layout": "fullscreen", "slides": [
        {"id": "v", "file": "pics/vert.png", "fit": "stretch", "duration": 3}]})
    by_hash = write(tmp_path / "b.yaml", {"id": "b", "layout": "fullscreen", "slides": [
        {"id": "v", "type": "image", "asset": f"sha256:{sha}", "fit": "stretch", "duration": 3}]})
    for src, extra in ((by_file, []), (by_hash, ["--assets", str(pics)])):
        out = tmp_path / f"{src.stem}.png"
        code, _, err = run("preview", str(src), "--size", "64x32", *extra, "-o", str(out))
        assert code == 0 and "warning" not in err, err
        with Image.open(out) as sheet:
            assert (0, 200, 0) in colours_of(sheet)


@pytest.mark.parametrize(("data", "message"), [
    ({"id": "x", "layout": "mosaique", "slides": [{"id": "a", "type": "text", "title": "A"}]}, "mosaique"),
    ({"id": "x", "slides": [{"id": "a", "file": "absent.png"}]}, "absent.png"),
    ({"id": "x", "slides": []}, "slides"),
    ({"id": "X Y", "slides": [{"id": "a", "type": "text", "title": "A"}]}, "id"),
    ([1, 2, 3], "playlist"),
])
def test_an_invalid_playlist_exits_2_naming_the_problem_and_writes_nothing(tmp_path: Path, data: Any,
                                                                           message: str) -> None:
    src = write(tmp_path / "bad.json", data)
    out = tmp_path / "bad.png"
    code, _, err = run("preview", str(src), "--size", "128x64", "-o", str(out))
    assert code == 2
    assert "panelctl: invalid" in err and message in err
    assert not out.exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--size", "128x64", "--layout", "mosaique"], 'unknown layout "mosaique"'),
    (["--size", "big"], "--size"),
    (["--size", "128x64", "--mono", "orange"], "--mono"),
    (["--size", "1920x1080", "--led"], "--led"),
    (["--size", "128x64", "--timezone", "Mars/Olympus"], "--timezone"),
])
def test_bad_arguments_exit_2(tmp_path: Path, argv: list[str], message: str) -> None:
    src = bundled_dir() / "playlist-led.json"
    code, _, err = run("preview", str(src), *argv, "-o", str(tmp_path / "x.png"))
    assert code == 2 and message in err, err


def test_not_json_and_nothing_to_preview_exit_2(tmp_path: Path) -> None:
    src = tmp_path / "cassé.json"
    src.write_text("{ pas du json", encoding="utf-8")
    assert run("preview", str(src), "--size", "128x64", "-o", str(tmp_path / "x.png"))[0] == 2
    code, _, err = run("preview", "--size", "128x64", "-o", str(tmp_path / "x.png"))
    assert code == 2 and "PLAYLIST" in err


# -- alerts --------------------------------------------------------------------------------------------


def test_an_alert_from_flags_shows_its_flashing_band(tmp_path: Path) -> None:
    out = tmp_path / "alerte.png"
    code, _, err = run("preview", "--size", "128x64", "--led", "--level", "critical", "--title", "CRUE",
                       "--body", "Évacuez les berges", "-o", str(out))
    assert code == 0, err
    assert "1 row" in err
    alert = alert_from_data("crue", "all", "", {"level": "critical", "title": "CRUE"},
                            now=__import__("datetime").datetime.now(__import__("datetime").timezone.utc),
                            config=AlertsConfig())
    row = preview_alert(alert, Panel((128, 64), led=True), None, pytest.fail)
    assert len(row.shots) >= 2  # the band's two states
    assert row.shots[0].image.tobytes() != row.shots[1].image.tobytes()


def test_an_alert_file_and_a_mono_panel(tmp_path: Path) -> None:
    src = write(tmp_path / "crue.json", {"level": "warning", "title": "Vigilance orange", "body": "Crue"})
    out = tmp_path / "crue.png"
    code, _, err = run("preview", "--alert", str(src), "--size", "192x96", "--mono", "#ff2000",
                       "-o", str(out))
    assert code == 0, err
    with Image.open(out) as sheet:
        assert (255, 32, 0) in colours_of(sheet)


def test_an_invalid_alert_exits_2(tmp_path: Path) -> None:
    src = write(tmp_path / "crue.json", {"level": "apocalypse", "title": ""})
    code, _, err = run("preview", "--alert", str(src), "--size", "128x64", "-o", str(tmp_path / "x.png"))
    assert code == 2 and "level" in err
    code, _, err = run("preview", "--level", "info", "--size", "128x64", "-o", str(tmp_path / "x.png"))
    assert code == 2 and "--title" in err


# -- the PNG output's LED look ---------------------------------------------------------------------


def test_png_output_with_the_led_look_writes_dots(tmp_path: Path) -> None:
    path = tmp_path / "panel.png"
    out = PngOutput(path, (32, 16), min_interval=0, colours=PanelColours("mono", AMBER), led_look=LedLook())
    try:
        frame = pygame.Surface((32, 16))
        frame.fill((0, 0, 0))
        frame.fill((255, 255, 255), pygame.Rect(0, 0, 16, 16))
        out.show(frame, None)
        assert out.wait_idle(5)
    finally:
        out.close()
    with Image.open(path) as img:
        assert img.size == (192, 96)
        assert img.getpixel((2, 2)) == AMBER  # white, as the amber panel shows it, in a dot
        assert img.getpixel((5, 2)) == (0, 0, 0)  # the gap
        assert img.getpixel((16 * 6 + 2, 2)) == LedLook().unlit  # an LED that is off, faintly


def test_the_led_look_is_refused_for_a_full_hd_screen(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="LED"):
        open_png(tmp_path / "x.png", (1920, 1080), led_look=LedLook())
    assert max(LedLook().size_of((256, 128))) <= MAX_DOTS_PX
    with pytest.raises(ValueError):
        LedLook(pitch=6, gap=6)


@pytest.mark.parametrize("rotation", [90, 270])
def test_a_rotated_panel_is_shown_upright_as_the_street_sees_it(tmp_path: Path, rotation: int) -> None:
    playlist = parse_playlist(json.dumps({"id": "r", "version": 1, "layout": "portrait", "slides": [
        {"id": "a", "type": "text", "title": "Haut", "body": "Bas", "duration": 2}]}).encode())
    rows = preview_playlist(playlist, Panel((640, 360), rotation=rotation), lambda sha: None, pytest.fail,
                            tmp_path)
    frame = rows[0].shots[0].image
    assert frame.size == (360, 640)  # upright: taller than wide
    assert frame.getpixel((180, 10)) == (0, 0x33, 0x66)  # the portrait layout's title band, at the top
