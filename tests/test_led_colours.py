"""display.led.colors: single-colour and low-colour LED panels.

The reduction itself (every mode, on generated pictures), the PNG output that shows what
the panel shows, the config keys, the alert screen whose levels stay apart without colour,
and the real player (in this process, png output, ``colors: mono``) through slides with
photos and transitions, every alert level, the identify screen, the test card and the
error screen: every pixel of every PNG it writes is off or the panel's colour.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pygame
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from player.alerts import Alert
from player.config import config_from_data
from player.errors import ConfigError, OutputError
from player.render import outputs
from player.render.alert_view import MONO_PALETTES, AlertView, MinimalAlertScreen, frame_width
from player.render.colours import MODES, PanelColours, parse_hex, reduce_image, reduce_rows
from player.render.outputs import init_display, open_output
from player.render.outputs import png as png_module
from player.render.outputs.ledmatrix import LedOptions, frame_to_image

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "content" / "demo"
BLACK = (0, 0, 0)
AMBER = (255, 176, 0)
RED = (255, 32, 0)


@pytest.fixture(autouse=True)
def display() -> None:
    init_display("png")


def colours_of(image: Image.Image) -> set[tuple[int, int, int]]:
    found = image.convert("RGB").getcolors(image.width * image.height)
    assert found is not None
    return {c for _, c in found}


def luminance(c: tuple[int, int, int]) -> int:
    """Pillow's convert("L"): ITU-R 601 weights, rounded as it rounds them."""
    return Image.new("RGB", (1, 1), c).convert("L").getpixel((0, 0))  # type: ignore[return-value]


# -- the reduction ------------------------------------------------------------------------


def test_mono_lights_a_pixel_from_the_threshold_on():
    colours = PanelColours("mono", AMBER)
    greys = Image.new("RGB", (256, 1))
    greys.putdata([(v, v, v) for v in range(256)])
    out = reduce_image(greys, colours)
    assert [out.getpixel((v, 0)) for v in (0, 127, 128, 255)] == [BLACK, BLACK, AMBER, AMBER]
    # Saturated red and blue are dark at the default threshold; a lower one lights them.
    sample = Image.new("RGB", (2, 1))
    sample.putdata([(255, 0, 0), (0, 0, 255)])
    assert colours_of(reduce_image(sample, colours)) == {BLACK}
    assert colours_of(reduce_image(sample, PanelColours("mono", AMBER, threshold=29))) == {AMBER}


def test_rgb111_and_rgb333_keep_the_levels_of_their_bits():
    ramp = Image.new("RGB", (256, 1))
    ramp.putdata([(v, 255 - v, v // 2) for v in range(256)])
    one = reduce_image(ramp, PanelColours("rgb111"))
    assert {c for pixel in colours_of(one) for c in pixel} == {0, 255}
    three = reduce_image(ramp, PanelColours("rgb333"))
    levels = {c for pixel in colours_of(three) for c in pixel}
    assert levels == {0, 36, 73, 109, 146, 182, 219, 255}
    # Each channel goes to the nearest level.
    assert all(abs(a - b) <= 18 for x in range(256)
               for a, b in zip(ramp.getpixel((x, 0)), three.getpixel((x, 0))))  # type: ignore[arg-type]


def test_rgb_changes_nothing():
    image = Image.new("RGB", (4, 4), (12, 34, 56))
    assert reduce_image(image, PanelColours()) is image


pixels = st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)), min_size=1, max_size=64)


@settings(max_examples=200, deadline=None)
@given(pixels, st.sampled_from(MODES), st.integers(1, 255),
       st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
def test_every_reduced_pixel_is_one_the_panel_shows(data, mode, threshold, mono):
    image = Image.new("RGB", (len(data), 1))
    image.putdata(data)
    colours = PanelColours(mode, mono, threshold)
    out = reduce_image(image, colours)
    assert out.size == image.size and out.mode == "RGB"
    for before, after in zip(data, [out.getpixel((x, 0)) for x in range(len(data))]):
        assert colours.allows(after)
        if mode == "mono":
            assert after == (mono if luminance(before) >= threshold else BLACK)
        elif mode == "rgb111":
            assert after == tuple(255 if c >= 128 else 0 for c in before)
        elif mode == "rgb333":
            assert all(abs(a - b) <= 18 for a, b in zip(before, after))
        else:
            assert after == before


def test_reduce_rows_changes_only_those_rows():
    image = Image.new("RGB", (8, 4), (200, 200, 200))
    buffer = bytearray(image.tobytes())
    reduce_rows(buffer, 8, 1, 3, PanelColours("mono", RED))
    out = Image.frombytes("RGB", (8, 4), bytes(buffer))
    assert [out.getpixel((0, y)) for y in range(4)] == [(200, 200, 200), RED, RED, (200, 200, 200)]


def test_settings_are_checked():
    assert parse_hex("#FFb000") == AMBER
    for bad in ("ffb000", "#ffb00", "#ggb000", "amber"):
        with pytest.raises(ValueError):
            parse_hex(bad)
    with pytest.raises(ValueError):
        PanelColours("grey")
    with pytest.raises(ValueError):
        PanelColours("mono", threshold=0)
    assert PanelColours.from_settings("mono", "#ff2000", 100) == PanelColours("mono", RED, 100)
    with pytest.raises(OutputError, match="display.led"):
        _ = LedOptions(colors="mono", mono_color="orange").colours


# -- config -------------------------------------------------------------------------------


def led_config(**led: Any) -> Any:
    return config_from_data({"panel": {"id": "quai"}, "display": {"output": "ledmatrix", "led": led}})


def led_errors(**led: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        led_config(**led)
    return info.value.errors


def test_config_keys_and_their_defaults():
    d = led_config().display.led
    assert (d.driver, d.colors, d.mono_color, d.mono_threshold) == ("auto", "rgb", "#ffb000", 128)
    d = led_config(colors="mono", mono_color="#FF2000", mono_threshold=90, driver="rgbmatrix").display.led
    assert (d.driver, d.colors, d.mono_color, d.mono_threshold) == ("rgbmatrix", "mono", "#ff2000", 90)


def test_config_errors_name_the_keys():
    errors = led_errors(colors="monochrome", mono_color="amber", mono_threshold=0, driver="pi5")
    assert len(errors) == 4
    assert errors[0].startswith("display.led.driver: expected one of auto, rgbmatrix, piomatter")
    assert any(e.startswith('display.led.mono_color: expected a colour as "#rrggbb"') for e in errors)
    assert any(e.startswith("display.led.colors: expected one of rgb, mono, rgb111, rgb333") for e in errors)
    assert any(e.startswith("display.led.mono_threshold:") for e in errors)


def test_a_config_naming_piomatter_must_have_a_wiring_piomatter_has():
    errors = led_errors(driver="piomatter", hardware_mapping="classic", rows=40)
    assert [e.split(":")[0] for e in errors] == ["display.led.hardware_mapping", "display.led.rows"]
    errors = led_errors(driver="piomatter", hardware_mapping="adafruit-hat", parallel=2)
    assert errors and errors[0].startswith("display.led.parallel: 2 chains need hardware_mapping regular")
    assert led_config(driver="piomatter", hardware_mapping="regular", parallel=3, rows=64).display.size == (64, 192)
    # Left to auto, the same settings are fine on the Pi 1-4 driver.
    assert led_config(hardware_mapping="classic", rows=40).display.led.driver == "auto"


# -- the PNG output shows what the panel shows ----------------------------------------------


def test_png_output_reduces_then_dims(tmp_path):
    path = tmp_path / "frame.png"
    led = LedOptions(colors="mono", mono_color="#ff2000")
    with open_output("png", size=(32, 16), path=path, led=led) as out:
        assert isinstance(out, outputs.PngOutput) and out.colours == led.colours
        out.min_interval = 0.0
        frame = pygame.Surface((32, 16))
        frame.fill((40, 40, 200))  # dark: off
        frame.fill((250, 250, 120), pygame.Rect(0, 0, 10, 16))  # light: lit
        out.show(frame, None)
        assert out.wait_idle(5)
        with Image.open(path) as img:
            assert colours_of(img) == {BLACK, RED}
            assert img.convert("RGB").getpixel((2, 2)) == RED and img.convert("RGB").getpixel((20, 2)) == BLACK
        out.set_dim(0.5)  # the panel's colour at half brightness, never a dimmed input thresholded
        out.show(frame, None)
        assert out.wait_idle(5)
        with Image.open(path) as img:
            assert colours_of(img) == {BLACK, (128, 16, 0)}
        # Only the rows handed over are reduced again; the others keep their reduced colours.
        frame.fill((255, 255, 255), pygame.Rect(20, 4, 4, 2))
        out.set_dim(1.0)
        out.show(frame, None)
        out.show(frame, [pygame.Rect(20, 4, 4, 2)])
        assert out.wait_idle(5)
        with Image.open(path) as img:
            assert colours_of(img) == {BLACK, RED} and img.convert("RGB").getpixel((21, 5)) == RED


def test_png_output_without_led_colours_is_unchanged(tmp_path):
    with open_output("png", size=(8, 8), path=tmp_path / "f.png", led=LedOptions()) as out:
        assert isinstance(out, outputs.PngOutput) and out.colours is None


# -- the alert screen on a single-colour panel ------------------------------------------------


def alert(level: str, **kw: Any) -> Alert:
    return Alert("a1", "all", "", level, "Crue de la Loire", "Evacuez les berges", **kw)  # type: ignore[arg-type]


def mono_screen(level: str, size: tuple[int, int], mode: str = "fullscreen", now: float = 0.1,
                **kw: Any) -> tuple[Image.Image, AlertView]:
    view = AlertView(None, led=True, mono=True, mode=mode)
    view.set_alerts(alert(level, **kw), now=0.0)
    surface = pygame.Surface(size)
    for t in (0.0, now):  # the body comes with the second frame
        view.draw(surface, t, datetime.now(timezone.utc))
    return reduce_image(frame_to_image(surface), PanelColours("mono", AMBER)), view


def lit_share(image: Image.Image, box: pygame.Rect) -> float:
    region = image.crop((box.x, box.y, box.right, box.bottom))
    lit = sum(1 for p in region.get_flattened_data() if p != BLACK)
    return lit / (box.w * box.h)


@pytest.mark.parametrize("size", [(64, 32), (128, 64), (192, 96)])
def test_alert_levels_differ_without_colour(size):
    """Critical: inverse video; warning: a lit frame and a lit band; info: neither."""
    w, h = size
    seen = {}
    for level in ("critical", "warning", "info"):
        image, view = mono_screen(level, size)
        assert colours_of(image) <= {BLACK, AMBER}
        lay = view.layout(size)
        f = frame_width(size)
        below = pygame.Rect(0, lay.band.bottom, w, h - lay.band.bottom)
        edges = [pygame.Rect(0, below.y, f, below.h), pygame.Rect(w - f, below.y, f, below.h),
                 pygame.Rect(0, h - f, w, f)]
        seen[level] = (lit_share(image, lay.title.union(lay.body or lay.title)),
                       min(lit_share(image, e) for e in edges), lit_share(image, lay.band))
    (c_body, _, c_band), (w_body, w_edge, w_band), (i_body, i_edge, i_band) = (
        seen["critical"], seen["warning"], seen["info"])
    assert c_body > 0.5 > w_body and c_body > 0.5 > i_body  # inverse video
    assert w_edge == 1.0 and i_edge < 0.5  # the frame
    assert w_band > 0.5 > i_band and w_band > 0.5 > c_band  # the band
    assert MONO_PALETTES["warning"].frame is not None


def test_banner_levels_differ_without_colour():
    size = (128, 64)
    shares = {}
    for level in ("critical", "warning", "info"):
        image, view = mono_screen(level, size, mode="banner")
        band = view.layout(size).band
        right = pygame.Rect(band.right - 1, band.y + 2, 1, band.h - 4)
        shares[level] = (lit_share(image, band), lit_share(image, right))
    assert shares["critical"][0] > 0.5 > shares["warning"][0] and shares["critical"][0] > 0.5 > shares["info"][0]
    assert shares["warning"][1] == 1.0 and shares["info"][1] == 0.0  # the frame's right edge


def test_the_mono_attention_animation_stays_under_3_hz():
    view = AlertView(None, led=True, mono=True)
    view.set_alerts(alert("critical"), now=0.0)
    states = []
    t = 0.0
    while t < 3.0:
        nxt = view.next_frame(t)
        assert nxt is not None
        states.append((nxt, view.inverted(nxt)))
        t = nxt
    changes = [at for (at, s), (_, before) in zip(states[1:], states) if s != before]
    assert len(changes) >= 4
    # Changes of luminance at least 0.5 s apart: 2 a second, 1 flash a second, under 3 Hz.
    assert all(b - a >= 0.5 - 1e-6 for a, b in zip(changes, changes[1:]))
    first, _ = mono_screen("critical", (64, 32), now=0.1)
    second, _ = mono_screen("critical", (64, 32), now=0.6)
    assert first.tobytes() != second.tobytes()  # the band does invert
    assert colours_of(second) <= {BLACK, AMBER}


def test_the_minimal_alert_screen_keeps_the_levels_apart_too():
    shots = {}
    for level in ("critical", "warning", "info"):
        surface = pygame.Surface((64, 32))
        MinimalAlertScreen(mono=True).draw(surface, level, "Crue")
        shots[level] = reduce_image(frame_to_image(surface), PanelColours("mono", AMBER))
    full = pygame.Rect(0, 0, 64, 32)
    assert lit_share(shots["critical"], full) > 0.5 > lit_share(shots["info"], full)
    edge = pygame.Rect(0, 0, 1, 32)
    assert lit_share(shots["warning"], edge) == 1.0 and lit_share(shots["info"], edge) == 0.0


# -- the real player: every written frame is off or the panel's colour -------------------------


class Recorder:
    """Every picture the PNG output writes, tagged with the phase of the test it came in."""

    def __init__(self) -> None:
        self.phase = "start"
        self.frames: list[tuple[str, bytes]] = []


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    recorder = Recorder()
    original = png_module.write_png

    def recording(f: Any, rgb: Any, size: tuple[int, int]) -> None:  # on the output's worker thread
        recorder.frames.append((recorder.phase, bytes(rgb)))
        original(f, rgb, size)

    monkeypatch.setattr(png_module, "write_png", recording)
    yield recorder


MONO_SIZE = (128, 64)


def mono_config(tmp_path: Path, **display: Any) -> dict[str, Any]:
    return {
        "panel": {"id": "quai-2", "name": "Quai 2"},
        "display": {"output": "png", "size": list(MONO_SIZE), "path": str(tmp_path / "frame.png"),
                    "layout": "led-matrix", "transition": "fade", "transition_s": 0.3,
                    "led": {"colors": "mono", "mono_color": "#ff2000"}, **display},
        "mqtt": {"enabled": False},
        "state_dir": str(tmp_path / "state"),
        "brightness": {"fallback": {"day": 100, "night": 100}},
        "alerts": {"allow_exercise": True},
    }


def demo_asset(index: int) -> str:
    return "sha256:" + sorted(DEMO.glob("*.png"))[index].stem


PLAYLIST = {
    "id": "mono", "version": 1, "layout": "led-matrix",
    "ticker": ["Travaux rue de la Gare : déviation par le quai", "Marché jeudi matin"],
    "slides": [
        {"id": "t1", "type": "text", "duration": 0.7, "title": "Bus 12", "body": "Prochain passage 4 min",
         "style": {"background": "#003366", "color": "#ffffff"}},
        {"id": "i1", "type": "image", "duration": 0.7, "asset": demo_asset(0), "fit": "cover"},
        {"id": "t2", "type": "text", "duration": 0.7, "title": "Mairie", "body": "Fermée lundi",
         "style": {"background": "#ffcc00", "color": "#000000"}},
        {"id": "i2", "type": "image", "duration": 0.7, "asset": demo_asset(1), "fit": "contain"},
        {"id": "t3", "type": "text", "duration": 0.7, "title": "Rouge sur noir", "body": "et bleu",
         "style": {"background": "#000000", "color": "#ff0000"}},
        {"id": "i3", "type": "image", "duration": 0.7, "asset": demo_asset(2), "fit": "cover"},
    ],
}


class Driven:
    """The real Player in this process: messages put on its inbox, its loop stepped."""

    def __init__(self, cfg: Any) -> None:
        from player.app import Player
        from player.net.topics import PanelTopics

        events = self.events = []

        class Watched(Player):
            def event(self, event: dict[str, Any], limit: bool = True) -> None:
                events.append(event)
                super().event(event, limit)

        self.player = Watched(cfg)
        self.topics = PanelTopics(cfg.mqtt.prefix, cfg.panel.id)
        self.prefix = cfg.mqtt.prefix

    def send(self, leaf: str, payload: Any, retained: bool = True) -> None:
        from player.net.protocol import Inbound

        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        route = self.topics.parse_inbound(f"{self.prefix}/{leaf}")
        self.player.inbox.put(Inbound(route, data, retained, time.monotonic()))

    def run(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.player.step()
            if until is not None and until():
                return
        assert until is None, f"not within {seconds} s: {until}"

    def seen(self, kind: str, **where: Any) -> bool:
        return any(e["type"] == kind and all(e.get(k) == v for k, v in where.items()) for e in self.events)


def test_every_frame_of_a_mono_panel_is_off_or_its_colour(tmp_path, written):
    from player.boot_errors import config_problems, output_hint_from_file, show_config_errors
    from player.testcard_cmd import TestCardRunner

    cfg = config_from_data(mono_config(tmp_path))
    panel = Driven(cfg)
    counts: dict[str, int] = {}
    try:
        panel.player.start()
        panel.player.output.min_interval = 0.0  # every frame written, not two a second
        written.phase = "slides"
        panel.send("panels/quai-2/playlist", PLAYLIST)
        panel.run(10, lambda: panel.seen("playlist.applied"))
        panel.run(4.8)  # each slide, the fades between them, the ticker
        for i, (level, extra) in enumerate((("critical", {}), ("warning", {}), ("info", {}),
                                            ("critical", {"exercise": True}))):
            written.phase = f"alert {level}"
            panel.send(f"all/alerts/a{i}", {"level": level, "title": "Crue de la Loire",
                                            "body": "Evacuez les berges", **extra})
            panel.run(10, lambda i=i: panel.seen("alert.displayed", alert=f"a{i}"))
            panel.run(1.2)  # both states of the band
            panel.send(f"all/alerts/a{i}", b"")
            panel.run(10, lambda i=i: panel.seen("alert.ended", alert=f"a{i}"))
        written.phase = "identify"
        panel.send("panels/quai-2/cmd", {"id": "r1", "cmd": "identify", "seconds": 2}, retained=False)
        panel.run(10, lambda: panel.seen("command.done", request="r1"))
        assert panel.player.ops.identify_view is not None
        panel.run(1.5)
    finally:
        panel.player.close()

    written.phase = "test card"
    TestCardRunner(cfg, probe_interval=30).run(seconds=2)

    written.phase = "error screen"
    broken = mono_config(tmp_path)
    broken["mqtt"] = {"enabled": False, "port": "abc"}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    _, errors = config_problems(path)
    assert errors and errors[0].startswith("mqtt.port")
    assert show_config_errors(errors, hint=output_hint_from_file(path), seconds=1.5,
                              fb_device=str(tmp_path / "no-fb0"), png_path=tmp_path / "errors.png") == 0

    allowed = {BLACK, RED}
    for name, rgb in written.frames:
        counts[name] = counts.get(name, 0) + 1
        image = Image.frombytes("RGB", MONO_SIZE, rgb)
        found = colours_of(image)
        assert found <= allowed, f"{name}: colours {sorted(found - allowed)[:5]} on a mono panel"
    lit = {name: 0 for name in counts}
    for name, rgb in written.frames:
        lit[name] += sum(1 for p in Image.frombytes("RGB", MONO_SIZE, rgb).get_flattened_data() if p == RED)
    phases = ["slides", "alert critical", "alert warning", "alert info", "identify", "test card", "error screen"]
    assert set(phases) <= set(counts), counts
    assert counts["slides"] >= 12, counts  # slides, fades and the ticker's steps
    assert all(lit[p] > 0 for p in phases), lit  # something was drawn in each


# -- display.led.png_dots: the PNG output draws the LED look ------------------------------------


def png_led_config(size: list[int], **led: Any) -> Any:
    return config_from_data({"panel": {"id": "quai"}, "display": {"output": "png", "size": size,
                                                                   "path": "/tmp/x.png", "led": led}})


def test_png_dots_config_key():
    assert png_led_config([64, 32]).display.led.png_dots == 0
    assert png_led_config([128, 64], png_dots=32).display.led.png_dots == 32  # 4096x2048
    for bad, expected in ((1, "expected 0 (plain pixels) or a dot of 2 to 32 pixels, got 1"),
                          (33, "must be between 0 and 32, got 33"), ("big", "expected an integer")):
        with pytest.raises(ConfigError) as info:
            png_led_config([64, 32], png_dots=bad)
        assert [e.split(": ")[0] for e in info.value.errors] == ["display.led.png_dots"], info.value.errors
        assert expected in info.value.errors[0], info.value.errors
    with pytest.raises(ConfigError) as info:
        png_led_config([1920, 1080], png_dots=8)
    assert info.value.errors == ["display.led.png_dots: a 1920x1080 picture as LED dots of 8 px would be "
                                 "15360x8640 (at most 8192 a side): the LED look is for LED-sized panels; "
                                 "use a smaller pitch"]


def test_the_real_player_writes_the_led_look_with_png_dots(tmp_path):
    """display.led.png_dots: 6 on a 64x32 mono panel: a 384x192 file where each LED is a
    dot; the centre of each dot is the panel's colour or the faint grey of an unlit LED,
    and the lit dots are where the plain picture of the same frame is lit."""
    size = (64, 32)
    raw = mono_config(tmp_path, size=list(size))
    raw["display"]["led"]["png_dots"] = 6
    cfg = config_from_data(raw)
    panel = Driven(cfg)
    try:
        panel.player.start()
        output = panel.player.output
        assert isinstance(output, outputs.PngOutput) and output.file_size == (384, 192)
        panel.send("panels/quai-2/playlist", {"id": "dots", "version": 1, "layout": "led-matrix", "slides": [
            {"id": "t", "type": "text", "duration": 30, "title": "Crue", "body": "Quai fermé"}]})
        panel.run(10, lambda: panel.seen("playlist.applied"))
        panel.run(1.5)
        assert output.wait_idle(5)
        plain = Image.frombytes("RGB", size, bytes(output._pixels or b""))  # the rows handed to the file
    finally:
        panel.player.close()
    with Image.open(tmp_path / "frame.png") as img:
        shown = img.convert("RGB")
    assert shown.size == (384, 192)
    lit = 0
    for y in range(size[1]):
        for x in range(size[0]):
            centre = shown.getpixel((x * 6 + 2, y * 6 + 2))
            expected = RED if plain.getpixel((x, y)) == RED else (28, 28, 28)
            assert centre == expected, (x, y, centre)
            lit += centre == RED
            assert shown.getpixel((x * 6 + 5, y * 6 + 5)) == BLACK  # the gap between dots
    assert lit > 40  # the title at least
