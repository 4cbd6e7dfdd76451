"""display.led.driver: the ledmatrix output on rpi-rgb-led-matrix (Pi 1-4) and Piomatter (Pi 5).

The output code runs against working stand-ins with each library's API
(``tests/fakes/rgbmatrix``, ``tests/fakes/adafruit_blinka_raspberry_pi5_piomatter``):
each receives the very frames, and the brightness, that the PNG output writes, in every
colour mode; ``auto`` picks Piomatter on a Raspberry Pi 5 (detection injected: a fake
``/proc``, or the model given); the real player on a Pi 5 config drives Piomatter; a
missing driver's message names the selected driver's module and how to install it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pygame
import pytest
import yaml
from PIL import Image

from player.boot_errors import config_problems
from player.config import config_from_data
from player.errors import MissingDependency, OutputError
from player.render.colours import PanelColours
from player.render.outputs import PngOutput, init_display, open_configured, open_output, resolve_driver
from player.render.outputs.ledmatrix import (MODEL_ENV, LedMatrixOutput, LedOptions, board_model, is_pi5,
                                             missing_driver, open_ledmatrix)
from player.render.outputs.piomatter import PiomatterOutput, lane_map

ROOT = Path(__file__).resolve().parents[1]
FAKES = Path(__file__).resolve().parent / "fakes"
PIOMATTER = "adafruit_blinka_raspberry_pi5_piomatter"
PI5 = "Raspberry Pi 5 Model B Rev 1.0"
PI4 = "Raspberry Pi 4 Model B Rev 1.5"


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Both stand-ins importable, freshly imported; no board model forced from outside."""
    monkeypatch.syspath_prepend(str(FAKES))
    for name in ("rgbmatrix", PIOMATTER):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.delenv("PIOMATTER_STANDIN_NO_PIO", raising=False)
    init_display("ledmatrix")
    return importlib.import_module(PIOMATTER)


# -- which driver -------------------------------------------------------------------------


@pytest.mark.parametrize("model, driver", [
    (PI5, "piomatter"), ("Raspberry Pi 500 Rev 1.0", "piomatter"),
    ("Raspberry Pi Compute Module 5 Rev 1.0", "piomatter"), (PI4, "rgbmatrix"),
    ("Raspberry Pi 3 Model B Plus Rev 1.3", "rgbmatrix"), ("Raspberry Pi Zero 2 W Rev 1.0", "rgbmatrix"),
    ("Raspberry Pi Compute Module 4 Rev 1.0", "rgbmatrix"), ("", "rgbmatrix"),
])
def test_auto_takes_piomatter_on_a_pi5_only(model, driver):
    assert resolve_driver("auto", model) == driver
    assert resolve_driver("rgbmatrix", PI5) == "rgbmatrix" and resolve_driver("piomatter", PI4) == "piomatter"


def test_the_board_model_comes_from_the_device_tree_then_cpuinfo(tmp_path, monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    proc = tmp_path / "proc"
    (proc / "device-tree").mkdir(parents=True)
    (proc / "cpuinfo").write_text("processor\t: 0\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n")
    assert board_model(proc) == "Raspberry Pi 4 Model B Rev 1.4"  # no model file: cpuinfo's line
    (proc / "device-tree" / "model").write_bytes(PI5.encode() + b"\0")  # NUL-terminated, as the kernel has it
    assert board_model(proc) == PI5 and is_pi5(board_model(proc))
    assert board_model(tmp_path / "nothing") == ""
    monkeypatch.setenv(MODEL_ENV, PI4)  # development: pretend to be another board
    assert board_model(proc) == PI4


def test_a_pi5_config_selects_piomatter(fakes, monkeypatch):
    cfg = config_from_data({"panel": {"id": "quai"}, "display": {
        "output": "ledmatrix", "led": {"rows": 32, "cols": 64, "chain_length": 2, "hardware_mapping": "adafruit-hat",
                                       "pwm_bits": 11, "brightness": 70}}})
    monkeypatch.setenv(MODEL_ENV, PI5)
    with open_configured(cfg.display) as out:
        assert isinstance(out, PiomatterOutput) and out.size == (128, 32)
        m = out.matrix
        assert isinstance(m, fakes.PioMatter)
        assert m.pinout is fakes.Pinout.AdafruitMatrixBonnet and m.colorspace is fakes.Colorspace.RGB888Packed
        g = m.geometry
        assert (g.width, g.height, g.n_addr_lines, g.n_lanes) == (128, 32, 4, 2)
        assert (g.n_planes, g.n_temporal_planes) == (10, 0)  # 11 bits asked, 10 the most; no shimmer
        assert out.brightness == 70 and "Piomatter" in out.status
    monkeypatch.setenv(MODEL_ENV, PI4)
    with open_configured(cfg.display) as out:
        assert isinstance(out, LedMatrixOutput) and out.matrix.brightness == 70
    cfg = config_from_data({"panel": {"id": "quai"}, "display": {"output": "ledmatrix", "led": {"driver": "rgbmatrix"}}})
    monkeypatch.setenv(MODEL_ENV, PI5)
    with open_configured(cfg.display) as out:
        assert isinstance(out, LedMatrixOutput)  # named in the config: the board does not decide


def test_the_real_player_on_a_pi5_drives_piomatter(fakes, tmp_path, monkeypatch):
    from player.app import Player

    monkeypatch.setenv(MODEL_ENV, PI5)
    cfg = config_from_data({
        "panel": {"id": "quai"},
        "display": {"output": "ledmatrix", "layout": "led-matrix", "transition": "cut",
                    "led": {"rows": 32, "cols": 64, "chain_length": 2, "hardware_mapping": "adafruit-hat",
                            "colors": "mono"}},
        "mqtt": {"enabled": False}, "state_dir": str(tmp_path / "state"),
        "brightness": {"fallback": {"day": 100, "night": 100}},
    })
    player = Player(cfg)
    try:
        player.start()
        end = time.monotonic() + 3
        while time.monotonic() < end:
            player.step()
        out = player.output
        assert isinstance(out, PiomatterOutput) and out.healthy
        hb = player.ops.heartbeat(time.monotonic())
        assert "Piomatter" in hb["display"]["status"]
        matrix = out.matrix
        shown = {p for row in matrix.panel_rows() for p in row}
        assert shown == {(0, 0, 0), (255, 176, 0)}  # the bundled content, in the panel's one colour
    finally:
        player.close()
    assert out.closed and all(p == (0, 0, 0) for row in matrix.panel_rows() for p in row)


# -- the same frames, the same brightness, as the PNG output -----------------------------------


def frames(size: tuple[int, int]) -> list[pygame.Surface]:
    """What panels show: a photo, the test card, an alert, a gradient with pure colours."""
    from datetime import datetime, timezone

    from player.alerts import Alert
    from player.render.alert_view import AlertView
    from player.render.identify import PanelInfo
    from player.render.testcard import TestCard

    w, h = size
    out = []
    photo = sorted((ROOT / "content" / "demo").glob("*.png"))[0]
    with Image.open(photo) as img:
        picture = img.convert("RGB").resize(size)
    out.append(pygame.image.frombytes(picture.tobytes(), size, "RGB"))
    card = pygame.Surface(size)
    TestCard(PanelInfo(panel_id="quai", name="Quai 2"), led=True, start=0.0).draw(
        card, 0.5, datetime.now(timezone.utc))
    out.append(card)
    screen = pygame.Surface(size)
    view = AlertView(None, led=True)
    view.set_alerts(Alert("a1", "all", "", "warning", "Crue", "Evacuez"), now=0.0)  # type: ignore[arg-type]
    for t in (0.0, 0.1):
        view.draw(screen, t, datetime.now(timezone.utc))
    out.append(screen)
    ramp = pygame.Surface(size)
    for x in range(w):
        v = x * 255 // max(1, w - 1)
        ramp.fill((v, 255 - v, (v * 3) % 256), pygame.Rect(x, 0, 1, h // 2))
    for i, c in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]):
        ramp.fill(c, pygame.Rect(i * w // 4, h // 2, w // 4, h - h // 2))
    out.append(ramp)
    return out


def png_picture(out: PngOutput) -> list[list[tuple[int, int, int]]]:
    assert out.wait_idle(5)
    with Image.open(out.path) as img:
        rgb = img.convert("RGB")
        return [[rgb.getpixel((x, y)) for x in range(rgb.width)] for y in range(rgb.height)]  # type: ignore[misc]


@pytest.mark.parametrize("colors", ["rgb", "mono", "rgb111", "rgb333"])
def test_each_driver_shows_the_frames_the_png_output_writes(fakes, tmp_path, monkeypatch, colors):
    led = LedOptions(rows=16, cols=32, chain_length=2, hardware_mapping="regular", colors=colors,
                     mono_color="#ff2000")
    size = led.size
    png = open_output("png", size=size, path=tmp_path / "frame.png", led=led)
    assert isinstance(png, PngOutput)
    png.min_interval = 0.0
    rgbm = open_ledmatrix(led, model=PI4)
    pio = open_ledmatrix(led, model=PI5)
    assert isinstance(rgbm, LedMatrixOutput) and isinstance(pio, PiomatterOutput)
    colours = PanelColours.from_settings(colors, "#ff2000")
    try:
        for frame in frames(size):
            for out in (png, rgbm, pio):
                out.show(frame, None)
            expected = png_picture(png)
            assert all(colours.allows(p) for row in expected for p in row)
            assert rgbm.matrix.shown_rows() == expected
            assert pio.matrix.panel_rows() == expected
        # Brightness: the PNG output dims in software; rpi-rgb-led-matrix is told the level
        # (and bakes it into what it draws); Piomatter, which has none, gets the picture scaled.
        for percent in (40, 100, 7):
            png.set_dim(percent / 100)
            for out in (rgbm, pio):
                assert out.set_brightness(percent) is True
            png.show(frame, None)
            expected = png_picture(png)
            assert rgbm.matrix.brightness == percent
            assert pio.matrix.panel_rows() == expected
            # Its scaling is value * percent / 100 rounded down; the PNG's, value * level / 255:
            # at most 2 apart.
            assert all(abs(a - b) <= 2 for row_a, row_b in zip(rgbm.matrix.shown_rows(), expected)
                       for pa, pb in zip(row_a, row_b) for a, b in zip(pa, pb))
    finally:
        for out in (png, rgbm, pio):
            out.close()


# -- Piomatter specifics ------------------------------------------------------------------------


def test_parallel_chains_are_lanes_with_chain_one_on_top(fakes):
    led = LedOptions(rows=16, cols=32, parallel=3, hardware_mapping="regular")
    with open_ledmatrix(led, model=PI5) as out:
        assert isinstance(out, PiomatterOutput) and out.size == (32, 48)
        m = out.matrix
        assert m.pinout is fakes.Pinout.Active3BGR and m.geometry.n_lanes == 6
        frame = pygame.Surface(out.size)
        for chain, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
            frame.fill(colour, pygame.Rect(0, chain * 16, 32, 16))
        frame.fill((255, 255, 255), pygame.Rect(5, 20, 3, 2))
        out.show(frame, None)
        rows = m.panel_rows()
        assert rows[0][0] == (255, 0, 0) and rows[16][0] == (0, 255, 0) and rows[47][31] == (0, 0, 255)
        assert rows[21][6] == (255, 255, 255) and rows[19][6] == (0, 255, 0)
    assert sorted(lane_map(4, 8, 1, 4)) == list(range(32))


@pytest.mark.parametrize("options, key", [
    ({"hardware_mapping": "classic"}, "display.led.hardware_mapping"),
    ({"hardware_mapping": "adafruit-hat", "parallel": 2}, "display.led.parallel"),
    ({"rows": 24}, "display.led.rows"),
    ({"rows": 128}, "display.led.rows"),
])
def test_a_wiring_piomatter_does_not_have_is_refused_by_name(fakes, options, key):
    with pytest.raises(OutputError, match=key):
        open_ledmatrix(LedOptions(**options), model=PI5)


def test_pwm_bits_are_its_planes(fakes):
    with open_ledmatrix(LedOptions(pwm_bits=3, colors="rgb333"), model=PI5) as out:
        assert (out.matrix.geometry.n_planes, out.matrix.geometry.n_temporal_planes) == (3, 0)
    with open_ledmatrix(LedOptions(pwm_bits=1, colors="rgb111"), model=PI5) as out:
        assert out.matrix.geometry.n_planes == 1  # no temporal planes: the real library refuses them here


def test_piomatter_sleeps_dark_wakes_with_its_picture_and_closes_dark(fakes):
    with open_ledmatrix(LedOptions(rows=16, cols=32), model=PI5) as out:
        m = out.matrix
        frame = pygame.Surface(out.size)
        frame.fill((200, 100, 50))
        out.show(frame, None)
        shows = m.shows
        out.show(frame, [])  # nothing changed: nothing sent
        assert m.shows == shows
        assert out.set_power(False).startswith("LED matrix blanked")
        assert {p for row in m.panel_rows() for p in row} == {(0, 0, 0)}
        out.set_brightness(50)  # asleep: waits
        out.show(frame, None)
        assert {p for row in m.panel_rows() for p in row} == {(0, 0, 0)}
        out.set_power(True)
        assert {p for row in m.panel_rows() for p in row} == {(100, 50, 25)}
    assert out.closed and {p for row in m.panel_rows() for p in row} == {(0, 0, 0)}
    out.close()  # twice is fine


def test_a_driver_error_is_reported_and_the_loop_goes_on(fakes):
    with open_ledmatrix(LedOptions(rows=16, cols=32), model=PI5) as out:
        frame = pygame.Surface(out.size)
        out.matrix.fail_next_show()
        out.show(frame, None)
        assert not out.healthy and out.status.startswith("error: Piomatter: [Errno 5]")
        out.show(frame, None)
        assert out.healthy and out.status.startswith("ok")


def test_no_pio_device_is_an_output_error_that_says_what_is_needed(fakes, monkeypatch):
    monkeypatch.setenv("PIOMATTER_STANDIN_NO_PIO", "1")
    with pytest.raises(OutputError, match="/dev/pio0"):
        open_ledmatrix(LedOptions(), model=PI5)


def test_the_stand_in_refuses_what_the_real_library_refuses(fakes):
    pm = fakes
    with pytest.raises(RuntimeError, match="must be a multiple of 32"):
        pm.Geometry(width=10, height=10, n_addr_lines=4)
    with pytest.raises(ValueError, match="n_planes out of range"):
        pm.Geometry(width=64, height=32, n_addr_lines=4, n_planes=11)
    with pytest.raises(ValueError, match="can't exceed"):
        pm.Geometry(width=64, height=32, n_addr_lines=4, n_planes=2)  # default temporal planes: 2
    g = pm.Geometry(width=64, height=32, n_addr_lines=4)
    with pytest.raises(RuntimeError, match="Framebuffer size must be 6144 bytes"):
        pm.PioMatter(colorspace=pm.Colorspace.RGB888Packed, pinout=pm.Pinout.AdafruitMatrixHat,
                     framebuffer=bytearray(100), geometry=g)
    lanes = pm.Geometry(width=32, height=32, n_addr_lines=3, map=lane_map(32, 32, 3, 4), n_lanes=4)
    with pytest.raises(RuntimeError, match="exceeds the pinout"):
        pm.PioMatter(colorspace=pm.Colorspace.RGB888Packed, pinout=pm.Pinout.AdafruitMatrixBonnet,
                     framebuffer=bytearray(32 * 32 * 3), geometry=lanes)
    assert pm.Pinout.AdafruitMatrixHat is pm.Pinout.AdafruitMatrixBonnet


# -- a missing driver -----------------------------------------------------------------------------


def test_the_message_names_the_selected_drivers_module_and_its_install(monkeypatch):
    monkeypatch.setitem(sys.modules, PIOMATTER, None)  # "import ..." fails
    monkeypatch.setitem(sys.modules, "rgbmatrix", None)
    msg = missing_driver("auto", model=PI5)
    assert msg is not None
    first, *rest = msg.splitlines()
    assert first == (f"display.output: ledmatrix: the Python module '{PIOMATTER}' of Adafruit's Piomatter "
                     f"(the Raspberry Pi 5 driver) is not installed for {sys.executable}.")
    assert f"  sudo {sys.executable} -m pip install adafruit-blinka-raspberry-pi5-piomatter" in rest
    assert "display.led.driver: rgbmatrix" in msg and "fbdev, sdl or png" in msg
    assert missing_driver("piomatter", model=PI4) == msg  # named: whatever the board
    other = missing_driver("auto", model=PI4)
    assert other is not None and "'rgbmatrix' of rpi-rgb-led-matrix" in other and "not on PyPI" in other
    with pytest.raises(MissingDependency, match="pip install adafruit-blinka-raspberry-pi5-piomatter"):
        open_ledmatrix(LedOptions(driver="piomatter"))


def test_a_piomatter_that_does_not_load_is_named_as_broken(tmp_path, monkeypatch):
    package = tmp_path / PIOMATTER
    package.mkdir()
    (package / "__init__.py").write_text("from ._piomatter import PioMatter\n")  # the compiled part absent
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, PIOMATTER, raising=False)
    msg = missing_driver("piomatter")
    assert msg is not None
    assert f"is installed for {sys.executable} but does not load" in msg and "install it again" in msg


def test_check_and_the_error_screen_ask_for_the_configured_driver(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "panel": {"id": "quai"}, "display": {"output": "ledmatrix", "led": {"driver": "piomatter"}},
        "mqtt": {"enabled": False}, "state_dir": str(tmp_path / "state")}), encoding="utf-8")
    monkeypatch.setitem(sys.modules, PIOMATTER, None)
    cfg, problems = config_problems(config)
    assert cfg is not None and len(problems) == 1 and f"'{PIOMATTER}'" in problems[0]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", MODEL_ENV)}
    result = subprocess.run([sys.executable, "-m", "player.cli", "check", "--config", str(config)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    if importlib.util.find_spec(PIOMATTER) is None:
        assert result.returncode == 2, result.stderr
        assert f"'{PIOMATTER}' of Adafruit's Piomatter" in result.stderr
        assert "-m pip install adafruit-blinka-raspberry-pi5-piomatter" in result.stderr
    env["PYTHONPATH"] = str(FAKES)
    result = subprocess.run([sys.executable, "-m", "player.cli", "check", "--config", str(config), "--preflight",
                             "--timeout", "1"], cwd=ROOT, env=dict(env, **{MODEL_ENV: PI4}),
                            capture_output=True, text=True, timeout=60)
    display = next(line for line in result.stdout.splitlines() if "display" in line.split()[:3])
    assert "driver piomatter" in display and f"this board is a {PI4}" in display, result.stdout
