"""The alert screen and the pictograms on real pygame pixels (SDL dummy driver)."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pygame
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from player.alerts import Alert
from player.content import Style, TextSlide
from player.layout import load_layout
from player.render.alert_view import (FLASH_HALF_PERIOD, MAX_FLASHES_PER_SECOND, PALETTES, AlertView,
                                      pictogram_for)
from player.render.compositor import Renderer
from player.render.pictograms import PICTOGRAMS, draw_pictogram, render_pictogram

WALL = datetime(2026, 11, 25, 17, 30, tzinfo=timezone.utc)
T0 = 500.0
SIZE = (960, 540)
LED = (128, 64)
SENTINEL = (1, 2, 3)


def alert(level: str = "critical", title: str = "ALERTE CRUE", body: str = "", **kw: object) -> Alert:
    return Alert("a1", "all", "", level, title, body, **kw)  # type: ignore[arg-type]


def rgb(surface: pygame.Surface, xy: tuple[int, int]) -> tuple[int, int, int]:
    c = surface.get_at(xy)
    return c.r, c.g, c.b


def colour_set(surface: pygame.Surface, rect: pygame.Rect | None = None) -> set[tuple[int, int, int]]:
    part = surface.subsurface(rect) if rect is not None else surface
    raw = pygame.image.tobytes(part, "RGB")
    return {(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 3)}


def pixels(surface: pygame.Surface, rect: pygame.Rect) -> bytes:
    return pygame.image.tobytes(surface.subsurface(rect), "RGB")


def count(surface: pygame.Surface, rect: pygame.Rect, colour: tuple[int, int, int], tol: int = 0) -> int:
    """Pixels of ``colour`` (± tol per channel) in ``rect``."""
    mask = pygame.mask.from_threshold(surface.subsurface(rect), colour, (tol + 1, tol + 1, tol + 1, 255))
    return mask.count()


def not_colour_box(surface: pygame.Surface, rect: pygame.Rect, colour: tuple[int, int, int]) -> pygame.Rect | None:
    """Bounding box (surface coordinates) of the pixels in ``rect`` that are not ``colour``."""
    mask = pygame.mask.from_threshold(surface.subsurface(rect), colour, (1, 1, 1, 255))
    mask.invert()
    boxes = mask.get_bounding_rects()
    if not boxes:
        return None
    return boxes[0].unionall(boxes[1:]).move(rect.topleft)


def drawn(view: AlertView, size: tuple[int, int] = SIZE, now: float = T0) -> pygame.Surface:
    """The alert screen as it settles: a full screen's body comes one frame after the rest."""
    surface = pygame.Surface(size)
    surface.fill(SENTINEL)
    view.draw(surface, now, WALL)
    if view.next_frame(now) == now:
        view.draw(surface, now, WALL)
    return surface


def luminance(c: tuple[int, int, int]) -> float:
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]


# --- colours and parts ---------------------------------------------------------------------

@pytest.mark.parametrize("level", ["critical", "warning", "info"])
def test_each_level_has_its_colours_at_known_places(level: str) -> None:
    view = AlertView(None, flash=False)
    view.set_alerts(alert(level, "Vent violent", "Rafales à 110 km/h"), 1, 0, None, T0)
    screen = drawn(view)
    palette = PALETTES[level]
    lay = view.layout(SIZE)
    assert rgb(screen, (SIZE[0] - 3, lay.band.centery)) == palette.band
    assert rgb(screen, (1, SIZE[1] - 2)) == palette.background
    assert rgb(screen, (SIZE[0] - 2, lay.band.bottom + 2)) == palette.background
    assert SENTINEL not in colour_set(screen)  # full screen: nothing of the playlist shows
    # Text in the text colour, the level's word in the band's ink.
    assert count(screen, lay.title, palette.text) > 200
    assert lay.body is not None and count(screen, lay.body, palette.text) > 100
    assert lay.label is not None and count(screen, lay.label, palette.band_ink) > 50


def test_critical_is_white_on_deep_red_with_a_yellow_band() -> None:
    p = PALETTES["critical"]
    assert p.text == (255, 255, 255) and p.background[0] >= 128 and p.background[1:] == (0, 0)
    assert p.band[0] > 200 and p.band[1] > 180 and p.band[2] < 60  # yellow
    assert PALETTES["warning"].text == (0, 0, 0)
    assert PALETTES["info"].text == (255, 255, 255) and PALETTES["info"].background[2] > 120


def test_title_ink_stays_inside_the_title_area_and_is_large() -> None:
    view = AlertView(None, flash=False)
    view.set_alerts(alert("critical", "Évacuez les berges de l'Isère", "Montée rapide des eaux ce soir."),
                    1, 0, None, T0)
    screen = drawn(view)
    lay = view.layout(SIZE)
    palette = PALETTES["critical"]
    below_band = pygame.Rect(0, lay.band.bottom, SIZE[0], SIZE[1] - lay.band.bottom)
    assert lay.body is not None
    title_ink = not_colour_box(screen, lay.title, palette.background)
    assert title_ink is not None and lay.title.contains(title_ink)
    body_ink = not_colour_box(screen, lay.body, palette.background)
    assert body_ink is not None and lay.body.contains(body_ink)
    # No ink elsewhere below the band.
    everything = not_colour_box(screen, below_band, palette.background)
    assert everything is not None and lay.title.union(lay.body).contains(everything)
    # Readable from across a street: the title's capitals are tall.
    assert title_ink.h >= SIZE[1] // 8


def test_short_title_without_body_fills_the_screen() -> None:
    view = AlertView(None, flash=False)
    view.set_alerts(alert("critical", "CRUE"), 1, 0, None, T0)
    screen = drawn(view)
    lay = view.layout(SIZE)
    ink = not_colour_box(screen, lay.title, PALETTES["critical"].background)
    assert ink is not None and ink.h >= SIZE[1] // 3


def test_pictogram_is_drawn_in_the_band() -> None:
    view = AlertView(None, flash=False)
    view.set_alerts(alert("critical", "Crue de l'Isère"), 1, 0, None, T0)
    screen = drawn(view)
    lay = view.layout(SIZE)
    palette = PALETTES["critical"]
    square = lay.pictogram
    inked = count(screen, square, palette.band_ink)
    assert inked > square.w * square.h // 5
    assert count(screen, square, palette.band) > square.w * square.h // 20  # the waves, in the band colour
    assert pictogram_for(alert("critical", "Crue de l'Isère")) == "flood"


def test_pictogram_choice() -> None:
    assert pictogram_for(alert("critical", "Tempête")) == "warning"
    assert pictogram_for(alert("info", "Marché annulé")) == "info"
    assert pictogram_for(alert("warning", "Pont", "Route barrée jusqu'à 18 h")) == "stop"
    assert pictogram_for(alert("critical", "Risque", "inondation possible")) == "flood"


def test_exercise_is_marked_and_only_then() -> None:
    view = AlertView(None, flash=False)
    view.set_alerts(alert("warning", "Vent violent", exercise=True), 1, 0, None, T0)
    screen = drawn(view)
    lay = view.layout(SIZE)
    assert lay.exercise is not None and lay.exercise.bottom == SIZE[1] and lay.exercise.w == SIZE[0]
    assert rgb(screen, (2, lay.exercise.centery)) == (255, 255, 255)
    assert count(screen, lay.exercise, (0, 0, 0)) > 100  # the word EXERCICE
    ink = not_colour_box(screen, lay.exercise, (255, 255, 255))
    assert ink is not None and ink.h >= lay.exercise.h // 3

    view.set_alerts(alert("warning", "Vent violent", exercise=False), 1, 0, None, T0)
    real = drawn(view)
    assert view.layout(SIZE).exercise is None
    assert rgb(real, (2, lay.exercise.centery)) == PALETTES["warning"].background


def test_turns_counter_and_idempotent_updates() -> None:
    view = AlertView(None, flash=False)
    a = alert("critical", "Crue")
    assert view.set_alerts(a, 2, 0, None, T0) is True
    revision = view.revision
    assert view.set_alerts(a, 2, 0, None, T0 + 5) is False and view.revision == revision
    lay = view.layout(SIZE)
    assert lay.counter is not None and lay.counter.right <= SIZE[0]
    first = drawn(view)
    assert count(first, lay.counter, PALETTES["critical"].band_ink) > 20
    assert view.set_alerts(a, 2, 1, None, T0 + 8) is True and view.revision == revision + 1
    second = drawn(view)
    assert pixels(first, lay.counter) != pixels(second, lay.counter)
    view.set_alerts(a, 1, 0, None, T0 + 9)
    assert view.layout(SIZE).counter is None


def test_image_is_shown_beside_the_text() -> None:
    picture = pygame.Surface((300, 200))
    picture.fill((0, 200, 0))
    view = AlertView(None, flash=False)
    view.set_alerts(alert("critical", "Crue", "Berges fermées"), 1, 0, picture, T0)
    screen = drawn(view)
    lay = view.layout(SIZE)
    assert lay.image is not None and not lay.image.colliderect(lay.title)
    assert rgb(screen, lay.image.center) == (0, 200, 0)
    assert count(screen, lay.image, (0, 200, 0)) > lay.image.w * lay.image.h // 3


def test_nothing_is_drawn_without_an_alert() -> None:
    view = AlertView(None)
    view.set_alerts(None, 0, 0, None, T0)
    assert colour_set(drawn(view)) == {SENTINEL}
    assert view.next_frame(T0) is None


def test_a_full_screen_shows_level_and_title_first_and_the_body_one_frame_later() -> None:
    view = AlertView(None)
    view.set_alerts(alert("critical", "CRUE DE L'ISÈRE", "Évacuez les berges avant 18 h."), 1, 0, None, T0)
    lay = view.layout(SIZE)
    assert lay.body is not None
    background, text = PALETTES["critical"].background, PALETTES["critical"].text
    surface = pygame.Surface(SIZE)
    view.draw(surface, T0, WALL)
    assert rgb(surface, (lay.band.centerx, 2)) == PALETTES["critical"].band
    assert count(surface, lay.title, text) > 100
    assert count(surface, lay.body, text) == 0 and count(surface, lay.body, background) == lay.body.w * lay.body.h
    assert view.next_frame(T0) == T0
    view.draw(surface, T0 + 0.01, WALL)
    assert count(surface, lay.body, text) > 100
    assert view.next_frame(T0 + 0.01) != T0 + 0.01


def test_the_band_is_reused_by_the_next_alert_of_the_same_kind_only() -> None:
    view = AlertView(None)
    view.set_alerts(alert("critical", "CRUE 1", "Évacuez les berges."), 1, 0, None, T0)
    drawn(view)
    assert view._built is not None
    band_of_first = view._built.tiles[0]
    view.set_alerts(alert("critical", "CRUE 2", "Évacuez les quais."), 1, 0, None, T0)
    drawn(view)
    assert view._built.tiles[0] is band_of_first  # same level, same pictogram: not drawn again
    view.set_alerts(alert("warning", "CRUE 3", "Restez chez vous."), 1, 0, None, T0)
    third = drawn(view)
    assert view._built.tiles[0] is not band_of_first
    band = view.layout(SIZE).flash
    assert rgb(third, (band.right - 2, band.y + 1)) == PALETTES["warning"].band


# --- attention animation ---------------------------------------------------------------------

def band_lumas(view: AlertView, size: tuple[int, int], seconds: float = 3.0, fps: int = 120) -> list[float]:
    surface = pygame.Surface(size)
    band = view.layout(size).flash
    lumas = []
    for i in range(int(seconds * fps) + 1):
        view.draw(surface, T0 + i / fps, WALL)
        lumas.append(luminance(pygame.transform.average_color(surface, band)[:3]))
    return lumas


def transitions(lumas: list[float]) -> list[int]:
    """Frame indices where the band's luminance changes markedly."""
    return [i for i in range(1, len(lumas)) if abs(lumas[i] - lumas[i - 1]) > 20]


@pytest.mark.parametrize("level", ["critical", "warning"])
def test_flashing_never_exceeds_two_changes_per_second(level: str) -> None:
    fps = 120
    view = AlertView(None, flash=True)
    view.set_alerts(alert(level, "Crue"), 1, 0, None, T0)
    changes = transitions(band_lumas(view, SIZE, 3.0, fps))
    assert len(changes) >= 4  # it does flash
    for i, start in enumerate(changes):  # in every window of one second
        in_window = [c for c in changes[i:] if c < start + fps]
        assert len(in_window) <= MAX_FLASHES_PER_SECOND
    assert MAX_FLASHES_PER_SECOND <= 3  # WCAG 2.3.1
    assert 1 / (2 * FLASH_HALF_PERIOD) <= MAX_FLASHES_PER_SECOND


def test_flash_deadlines_are_half_a_second_apart() -> None:
    view = AlertView(None, flash=True)
    view.set_alerts(alert("critical", "Crue"), 1, 0, None, T0)
    now, wakes = T0, []
    for _ in range(6):
        due = view.next_frame(now)
        assert due is not None and due > now
        wakes.append(due)
        now = due
    gaps = [b - a for a, b in zip(wakes, wakes[1:])]
    assert all(abs(g - FLASH_HALF_PERIOD) < 1e-3 for g in gaps)
    assert view.inverted(T0 + 0.6) != view.inverted(T0 + 0.1)


def test_still_picture_without_flash_and_for_info() -> None:
    view = AlertView(None, flash=False)
    view.set_alerts(alert("critical", "Crue"), 1, 0, None, T0)
    assert view.next_frame(T0) is None
    assert transitions(band_lumas(view, SIZE, 1.5, 60)) == []
    info = AlertView(None, flash=True)
    info.set_alerts(alert("info", "Coupure d'eau"), 1, 0, None, T0)
    assert info.next_frame(T0) is None and not info.inverted(T0 + 0.7)


def test_flash_for_limits_the_animation() -> None:
    view = AlertView(None, flash=True, flash_for=2.0)
    view.set_alerts(alert("critical", "Crue"), 1, 0, None, T0)
    assert view.next_frame(T0 + 1.0) is not None
    assert view.next_frame(T0 + 2.5) is None and not view.inverted(T0 + 2.7)


# --- banner --------------------------------------------------------------------------------

def test_banner_covers_only_the_bottom_band_and_the_ticker() -> None:
    view = AlertView(None, flash=True, mode="banner")
    view.set_alerts(alert("info", "Coupure d'eau", "Rue des Alpes mardi de 8 h à 12 h", exercise=True), 2, 0,
                    None, T0)
    screen = drawn(view)
    band = view.banner_rect(SIZE)
    above = pygame.Rect(0, 0, SIZE[0], band.y)
    assert colour_set(screen, above) == {SENTINEL}
    assert SENTINEL not in colour_set(screen, band)
    palette = PALETTES["info"]
    assert count(screen, band, palette.background) > band.w * band.h // 3
    lay = view.layout(SIZE)
    assert count(screen, lay.title, palette.text) > 50
    assert lay.exercise is not None and count(screen, lay.exercise, (0, 0, 0)) > 10
    # It hides the ticker band of the built-in layouts.
    for name in ("landscape", "portrait"):
        ticker = load_layout(name).zone("ticker")
        assert ticker is not None
        assert band.y <= ticker.pixels(*SIZE)[1]


def test_banner_mode_can_be_chosen_per_alert() -> None:
    view = AlertView(None, flash=False)
    view.set_alerts(alert("info", "Marché"), 1, 0, None, T0, mode="banner")
    assert view.shown_mode == "banner"
    screen = drawn(view)
    assert rgb(screen, (5, 5)) == SENTINEL
    with pytest.raises(ValueError):
        view.set_alerts(alert("info", "Marché"), 1, 0, None, T0, mode="sideways")


def test_banner_scrolls_text_too_long_for_it() -> None:
    view = AlertView(None, flash=False, mode="banner", scroll_speed=100)
    long = "Travaux " * 30
    view.set_alerts(alert("info", long), 1, 0, None, T0)
    first = drawn(view, now=T0)
    due = view.next_frame(T0)
    assert due is not None and due - T0 < 0.05
    later = drawn(view, now=T0 + 0.5)
    lay = view.layout(SIZE)
    assert pixels(first, lay.title) != pixels(later, lay.title)


# --- LED matrices ------------------------------------------------------------------------------

def test_led_long_title_scrolls_at_constant_speed_without_antialiasing() -> None:
    speed = 24.0
    view = AlertView(None, flash=True, led=True, scroll_speed=speed)
    view.set_alerts(alert("critical", "Évacuez les berges de l'Isère immédiatement", "Crue en cours"), 2, 0,
                    None, T0)
    lay = view.layout(LED)
    row = lay.title
    frames = {t: drawn(view, LED, T0 + t) for t in (0.0, 0.5, 1.0)}
    allowed = PALETTES["critical"].colours()
    for frame in frames.values():
        assert colour_set(frame) <= allowed  # only palette colours: no anti-aliasing
    # The title row moved left by speed × elapsed pixels, both times.
    for t0, t1 in ((0.0, 0.5), (0.5, 1.0)):
        a, b = frames[t0], frames[t1]
        shift = int(t1 * speed) - int(t0 * speed)
        assert shift > 0
        assert pixels(a, row) != pixels(b, row)
        for x in range(row.x, row.right - shift):
            column_b = [b.get_at((x, y)) for y in range(row.y, row.bottom)]
            column_a = [a.get_at((x + shift, y)) for y in range(row.y, row.bottom)]
            assert column_b == column_a
    due = view.next_frame(T0)
    assert due is not None and due <= T0 + 1 / speed + 1e-3


def test_led_short_title_stays_still_and_readable() -> None:
    view = AlertView(None, flash=False, led=True)
    view.set_alerts(alert("warning", "CRUE", "Restez chez vous", exercise=True), 1, 0, None, T0)
    assert view.next_frame(T0) is None
    screen = drawn(view, LED)
    assert colour_set(screen) <= PALETTES["warning"].colours()
    lay = view.layout(LED)
    ink = not_colour_box(screen, lay.title, PALETTES["warning"].background)
    assert ink is not None and ink.h >= 8
    assert lay.exercise is not None and count(screen, lay.exercise, (0, 0, 0)) > 5
    assert lay.body is not None and lay.exercise.top >= lay.body.bottom


# --- with the renderer -------------------------------------------------------------------------

def test_alert_overlay_on_the_renderer_covers_the_playlist() -> None:
    renderer = Renderer(SIZE, load_layout("landscape"), tz=ZoneInfo("Europe/Paris"), transition="cut")
    renderer.show(TextSlide("s", "Marché", "Place", Style((0, 51, 102), (255, 255, 255), "center")), T0)
    assert renderer.render(T0, WALL) is not None
    view = AlertView(None, flash=True)
    view.set_alerts(alert("critical", "Crue"), 1, 0, None, T0)
    renderer.set_overlay(view)
    out = renderer.render(T0, WALL)
    assert out is not None
    frame = out[0]
    assert rgb(frame, (SIZE[0] - 3, view.layout(SIZE).band.centery)) == PALETTES["critical"].band
    assert rgb(frame, (1, SIZE[1] - 2)) == PALETTES["critical"].background
    due = renderer.next_deadline(T0, WALL)
    assert due is not None and abs(due - (T0 + FLASH_HALF_PERIOD)) < 0.01


def test_the_renderer_draws_the_body_on_the_next_frame() -> None:
    renderer = Renderer(SIZE, load_layout("landscape"), tz=ZoneInfo("Europe/Paris"), transition="cut")
    renderer.show(TextSlide("s", "Marché", "Place", Style((0, 51, 102), (255, 255, 255), "center")), T0)
    assert renderer.render(T0, WALL) is not None
    view = AlertView(None, flash=False)
    view.set_alerts(alert("critical", "Crue", "Évacuez les berges avant 18 h."), 1, 0, None, T0)
    renderer.set_overlay(view)
    assert renderer.render(T0, WALL) is not None
    due = renderer.next_deadline(T0, WALL)
    assert due is not None and due <= T0 + 1 / 30 + 1e-6  # the body's frame: the next one (30 fps)
    out = renderer.render(due, WALL)
    assert out is not None
    body = view.layout(SIZE).body
    assert body is not None and count(out[0], body, PALETTES["critical"].text) > 50
    assert renderer.next_deadline(due, WALL) is None  # then a still picture: nothing more to draw


# --- pictograms -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PICTOGRAMS)
def test_pictograms_scale_and_stay_two_coloured_without_antialiasing(name: str) -> None:
    ink, mark, bg = (0, 0, 0), (255, 210, 0), (160, 0, 0)
    for size in (12, 16, 32, 200):
        surface = pygame.Surface((size + 10, size + 4))
        surface.fill(bg)
        square = draw_pictogram(surface, surface.get_rect(), name, ink, mark, antialias=False)
        assert square.size == (size + 4, size + 4)
        assert colour_set(surface) <= {ink, mark, bg}
        assert count(surface, square, ink) > square.w * square.h // 5
        assert count(surface, square, mark) > 0
        outside = pygame.Rect(0, 0, square.x, surface.get_height())
        assert colour_set(surface, outside) == {bg}
    smooth = render_pictogram(name, 120, ink, mark, antialias=True)
    alphas = {smooth.get_at((x, y)).a for x in range(0, 120, 3) for y in range(0, 120, 3)}
    assert 0 in alphas and 255 in alphas and len(alphas) > 2  # soft edges


def test_unknown_pictogram_is_refused() -> None:
    with pytest.raises(ValueError):
        render_pictogram("skull", 20, (0, 0, 0), (255, 255, 255))  # type: ignore[arg-type]


# --- any text -----------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=st.text(min_size=1, max_size=120), body=st.text(max_size=300),
       level=st.sampled_from(["critical", "warning", "info"]), led=st.booleans(), banner=st.booleans(),
       exercise=st.booleans(), count_=st.integers(1, 12))
def test_any_text_draws_within_bounds(title: str, body: str, level: str, led: bool, banner: bool,
                                      exercise: bool, count_: int) -> None:
    size = LED if led else (480, 270)
    view = AlertView(None, flash=True, led=led, mode="banner" if banner else "fullscreen")
    view.set_alerts(alert(level, title, body, exercise=exercise), count_, count_ - 1, None, T0)
    screen = drawn(view, size, T0 + 0.75)
    if banner:
        band = view.banner_rect(size)
        assert colour_set(screen, pygame.Rect(0, 0, size[0], band.y)) == {SENTINEL}
    else:
        assert SENTINEL not in colour_set(screen)
    if led:
        assert colour_set(screen) - {SENTINEL} <= PALETTES[level].colours()
    due = view.next_frame(T0 + 0.75)
    assert due is None or (math.isfinite(due) and due > T0 + 0.75)
