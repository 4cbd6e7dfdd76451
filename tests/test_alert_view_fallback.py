"""The alert screen cannot fail: whatever breaks while it is laid out or drawn, the minimal
alert screen (level colours, the title) is shown, ``on_error`` hears why, and nothing
reaches the main loop. Faults are injected by making our own functions raise.

Also the pixel fonts of the field report (xfonts-base, no 8 px size): the real alert
screen, at the fonts' own sizes, with no fallback at all.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pygame
import pytest

from player.alerts import Alert
from player.render import alert_view
from player.render.alert_view import PALETTES, AlertView, MinimalAlertScreen, minimal_text
from player.render.pictograms import draw_pictogram
from player.render.text import TextPainter
from player.render.ticker import Ticker

T0 = 500.0
WALL = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
SENTINEL = (1, 254, 3)
PIXEL_DIR = Path("/usr/share/fonts/X11/misc")
ISSUE_FONTS = ["6x10", "6x13B", "9x15B", "5x7"]


def alert(level: str = "critical", title: str = "CRUE DE L'ISÈRE", body: str = "Évacuez les berges.",
          **kw: object) -> Alert:
    return Alert(id="crue-1", scope="all", scope_name="", level=level, title=title, body=body, **kw)  # type: ignore[arg-type]


def drawn(view: AlertView, size: tuple[int, int], now: float = T0) -> pygame.Surface:
    surface = pygame.Surface(size)
    surface.fill(SENTINEL)
    view.draw(surface, now, WALL)
    if view.next_frame(now) == now:
        view.draw(surface, now, WALL)
    return surface


def count(surface: pygame.Surface, colour: tuple[int, int, int], rect: pygame.Rect | None = None) -> int:
    area = surface if rect is None else surface.subsurface(rect.clip(surface.get_rect()))
    return pygame.transform.threshold(None, area, colour, (0, 0, 0, 0), set_behavior=0)


def minimal(level: str, title: str, size: tuple[int, int], banner_fraction: float | None = None,
            antialias: bool = True) -> pygame.Surface:
    surface = pygame.Surface(size)
    surface.fill(SENTINEL)
    MinimalAlertScreen().draw(surface, level, title, banner_fraction=banner_fraction, antialias=antialias)
    return surface


def same(a: pygame.Surface, b: pygame.Surface) -> bool:
    return pygame.image.tobytes(a, "RGB") == pygame.image.tobytes(b, "RGB")


def boom(*_args: object, **_kw: object) -> None:
    raise RuntimeError("injected fault")


# --- the minimal screen --------------------------------------------------------------------

@pytest.mark.parametrize("size", [(32, 16), (64, 32), (192, 96), (1920, 1080), (1080, 1920), (3840, 2160)])
@pytest.mark.parametrize("level", ["critical", "warning", "info"])
def test_minimal_screen_shows_the_title_in_the_level_colours(size: tuple[int, int], level: str) -> None:
    palette = PALETTES[level]
    led = size[1] <= 128
    screen = minimal(level, "Crue de l'Isère : évacuez les berges", size, antialias=not led)
    total = size[0] * size[1]
    assert count(screen, SENTINEL) == 0  # every pixel painted
    text = count(screen, palette.text)
    assert 0 < text < total // 2
    if led:  # two colours, nothing else
        assert text + count(screen, palette.background) == total
    # The ink is this title's: another title gives another picture.
    assert not same(screen, minimal(level, "Vent violent", size, antialias=not led))


def test_minimal_screen_wraps_and_cuts_what_does_not_fit() -> None:
    painter = MinimalAlertScreen()
    surface = pygame.Surface((1920, 1080))
    painter.draw(surface, "critical", "Crue " * 20)
    short = painter.text_rect.copy()
    assert surface.get_rect().contains(short) and short.h > 1080 // 3  # large, on several lines
    for title in ("x" * 300, "Évacuation " * 400, "🚨" * 50 + " שיטפון تحذير"):
        painter.draw(surface, "critical", title)
        assert surface.get_rect().contains(painter.text_rect) and painter.text_rect.w > 0
    tiny = pygame.Surface((32, 16))
    painter.draw(tiny, "warning", "Débordement" * 27, antialias=False)
    assert count(tiny, PALETTES["warning"].text) > 0 and count(tiny, SENTINEL) == 0


def test_minimal_screen_text_is_cleaned_and_never_empty() -> None:
    assert minimal_text("  CRUE\x00\x07\n de\u200b l'Isère\ud800 ", "critical") == "CRUE de l'Isère"
    assert minimal_text("\x07\x1b\u200e", "warning") == "VIGILANCE"  # nothing left: the level's word
    assert minimal_text("", "unknown-level") == "ALERTE"
    assert len(minimal_text("x" * 5000, "info")) == alert_view.MINIMAL_MAX_CHARS
    screen = minimal("info", "\x00\x01", (128, 64))
    assert count(screen, PALETTES["info"].text) > 0  # the word INFORMATION


def test_minimal_banner_paints_the_bottom_band_only() -> None:
    screen = minimal("info", "Marché annulé", (1920, 1080), banner_fraction=0.1)
    assert screen.get_at((5, 5))[:3] == SENTINEL
    band = alert_view.minimal_area((1920, 1080), 0.1)
    assert band.bottom == 1080 and band.h == 108
    assert count(screen, SENTINEL, band) == 0 and count(screen, PALETTES["info"].text, band) > 0
    assert alert_view.minimal_area((32, 16), 0.01).h == 12  # never too thin to write in
    assert alert_view.minimal_area((32, 8), 0.5).h == 8


# --- faults in the real layout code ---------------------------------------------------------

SCREENS = {"screen": ((1280, 720), False, "fullscreen"), "led": ((128, 64), True, "fullscreen"),
           "screen-banner": ((1280, 720), False, "banner"), "led-banner": ((64, 32), True, "banner")}
# Functions of the alert screen's drawing, and the screens (above) whose drawing calls them.
INJECTIONS = [
    (alert_view, "pictogram_for", "screen led screen-banner led-banner"),
    (alert_view, "draw_pictogram", "screen led screen-banner led-banner"),
    (AlertView, "_full_layout", "screen led"),
    (AlertView, "_banner_layout", "screen-banner led-banner"),
    (AlertView, "_split", "screen led"),
    (AlertView, "_title", "screen led"),
    (AlertView, "_line", "led screen-banner led-banner"),
    (TextPainter, "fit", "screen led"),
    (TextPainter, "render_line", "screen led screen-banner led-banner"),
    (Ticker, "__init__", "led screen-banner led-banner"),
]


@pytest.mark.parametrize(("owner", "name", "size", "led", "mode"), [
    pytest.param(owner, name, *SCREENS[screen], id=f"{name}-{screen}")
    for owner, name, screens in INJECTIONS for screen in screens.split()])
def test_a_fault_anywhere_shows_the_minimal_screen_with_the_title(
        monkeypatch: pytest.MonkeyPatch, owner: object, name: str, size: tuple[int, int], led: bool,
        mode: str) -> None:
    errors: list[str] = []
    view = AlertView(None, led=led, flash=True, on_error=errors.append)
    title = "Évacuez les berges de l'Isère immédiatement"
    level = "info" if mode == "banner" else "critical"
    a = alert(level, title, "Montée rapide des eaux.", exercise=True)
    view.set_alerts(a, 2, 0, None, T0, mode=mode)
    monkeypatch.setattr(owner, name, boom)
    screen = drawn(view, size)
    assert not same(screen, drawn_without_fault(view, monkeypatch, owner, name, a, size, mode))
    assert len(errors) == 1, errors
    assert "crue-1" in errors[0] and "RuntimeError: injected fault" in errors[0] and "minimal" in errors[0]
    fraction = view.banner_fraction if mode == "banner" else None
    expected = minimal(level, title, size, banner_fraction=fraction, antialias=not led)
    band = alert_view.minimal_area(size, fraction)
    # What is on the screen where the alert goes is the minimal screen, with the title.
    assert pygame.image.tobytes(screen.subsurface(band), "RGB") == pygame.image.tobytes(
        expected.subsurface(band), "RGB")
    assert count(screen, PALETTES[level].text, band) > 0
    assert view.next_frame(T0) is None  # a still picture
    drawn(view, size, T0 + 1)
    assert len(errors) == 1  # reported once, not at every frame


def drawn_without_fault(view: AlertView, monkeypatch: pytest.MonkeyPatch, owner: object, name: str, a: Alert,
                        size: tuple[int, int], mode: str) -> pygame.Surface:
    """The same alert drawn by a fresh view with the real code (the fault undone, then put back)."""
    monkeypatch.undo()
    clean = AlertView(None, led=view.led, flash=True)
    clean.set_alerts(a, 2, 0, None, T0, mode=mode)
    picture = drawn(clean, size)
    monkeypatch.setattr(owner, name, boom)
    return picture


def test_the_full_screen_is_tried_again_for_the_next_alert(monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[str] = []
    view = AlertView(None, flash=False, on_error=errors.append)
    view.set_alerts(alert(), 1, 0, None, T0)
    monkeypatch.setattr(AlertView, "_full_layout", boom)
    drawn(view, (640, 360))
    assert len(errors) == 1
    monkeypatch.undo()
    view.set_alerts(alert(title="CRUE 2"), 1, 0, None, T0)
    screen = drawn(view, (640, 360))
    assert len(errors) == 1
    band = view.layout((640, 360)).band
    assert count(screen, PALETTES["critical"].band, band) > band.w * band.h // 3  # the real screen's band


def test_a_fault_in_next_frame_shows_the_minimal_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[str] = []
    view = AlertView(None, flash=True, on_error=errors.append)
    view.set_alerts(alert("warning", "Vent violent"), 1, 0, None, T0)
    drawn(view, (640, 360))
    monkeypatch.setattr(AlertView, "_next_frame", boom)
    assert view.next_frame(T0 + 0.1) == T0 + 0.1  # draw again, now
    assert len(errors) == 1 and "RuntimeError" in errors[0]
    screen = drawn(view, (640, 360), T0 + 0.1)
    assert same(screen, minimal("warning", "Vent violent", (640, 360)))


def test_when_even_the_minimal_screen_fails_the_screen_takes_the_level_colour(
        monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[str] = []
    view = AlertView(None, flash=False, on_error=errors.append)
    view.set_alerts(alert("critical"), 1, 0, None, T0)
    monkeypatch.setattr(AlertView, "_full_layout", boom)
    monkeypatch.setattr(MinimalAlertScreen, "_layout", boom)
    screen = drawn(view, (320, 180))
    assert count(screen, PALETTES["critical"].background) == 320 * 180
    assert len(errors) == 2 and "filled with the level colour" in errors[1]


def test_on_error_that_raises_does_not_reach_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    def bad_callback(_reason: str) -> None:
        raise ValueError("callback broken")

    view = AlertView(None, on_error=bad_callback)
    view.set_alerts(alert(), 1, 0, None, T0)
    monkeypatch.setattr(AlertView, "_full_layout", boom)
    screen = drawn(view, (320, 180))
    assert count(screen, PALETTES["critical"].text) > 0


def test_a_font_that_cannot_be_opened_gives_the_bundled_one_and_a_report() -> None:
    errors: list[str] = []
    view = AlertView("/nonexistent/font.ttf", led=True, on_error=errors.append)  # does not raise
    assert errors == []  # reported when there is an alert to show
    view.set_alerts(alert(), 1, 0, None, T0)
    screen = drawn(view, (128, 64))
    assert len(errors) == 1 and "/nonexistent/font.ttf" in errors[0] and "bundled font" in errors[0]
    band = view.layout((128, 64)).band
    assert count(screen, PALETTES["critical"].band, band) > 0  # the real screen


def test_without_on_error_failures_are_logged(monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    view = AlertView(None)
    view.set_alerts(alert(), 1, 0, None, T0)
    monkeypatch.setattr(alert_view, "pictogram_for", boom)
    drawn(view, (320, 180))
    assert any("injected fault" in r.getMessage() or (r.exc_info and "injected" in str(r.exc_info[1]))
               for r in caplog.records)


# --- the pixel fonts of the field report -----------------------------------------------------

@pytest.mark.parametrize("name", ISSUE_FONTS)
@pytest.mark.parametrize("size", [(64, 32), (128, 64), (192, 96)])
def test_xfonts_base_pixel_fonts_draw_the_real_alert_screen(name: str, size: tuple[int, int]) -> None:
    path = PIXEL_DIR / f"{name}.pcf.gz"
    if not path.exists():
        pytest.skip(f"{path} missing: install the Debian package xfonts-base")
    errors: list[str] = []
    view = AlertView(str(path), led=True, flash=True, on_error=errors.append)
    face = view.painter.face
    assert face.bitmap and face.fitting_size(alert_view.LED_MIN_PX) in face.sizes(1000)
    for mode, level in (("fullscreen", "critical"), ("banner", "info")):
        view.set_alerts(alert(level, "CRUE", "Évacuez les berges", exercise=True), 2, 0, None, T0, mode=mode)
        screen = drawn(view, size)
        lay = view.layout(size)
        palette = PALETTES[level]
        assert count(screen, palette.text, lay.title) > 0
        if mode == "fullscreen":
            assert count(screen, palette.band, lay.band) > 0
            allowed = palette.colours()
            assert all(tuple(screen.get_at((x, y)))[:3] in allowed
                       for x in range(0, size[0], 3) for y in range(0, size[1], 3))  # no anti-aliasing
    assert errors == []


def test_pictograms_survive_degenerate_rectangles() -> None:
    surface = pygame.Surface((8, 8))
    for rect in (pygame.Rect(1, 1, 0, 0), pygame.Rect(2, 2, -5, 3), pygame.Rect(0, 0, 1, 1)):
        draw_pictogram(surface, rect, "warning", (0, 0, 0), (255, 210, 0), antialias=False)
