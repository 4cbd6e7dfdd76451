"""Text big enough for the street: ``display.viewing_distance_m`` and
``display.pixel_pitch_mm`` set the smallest text size, below which a long text is paged
rather than shrunk; a title set apart in a header is never smaller than its body."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pygame
import pytest

from player.config import config_from_data
from player.content import Style, TextSlide
from player.errors import ConfigError
from player.layout import load_layout
from player.render.compositor import Renderer
from player.render.fonts import min_text_px
from player.render.outputs import init_display

WALL = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
FULL_HD = (1920, 1080)
LONG = ("La rue des Écoles sera fermée à la circulation du lundi 3 au vendredi 14 mars pour "
        "le remplacement des canalisations d'eau potable. ") * 30  # about 4,000 characters


@pytest.fixture(autouse=True)
def display() -> None:
    init_display("png")


def display_config(**display: object) -> object:
    return config_from_data({"panel": {"id": "quai"}, "display": {"output": "png", "size": [1920, 1080],
                                                                   "path": "/tmp/x.png", **display}})


def test_the_smallest_size_follows_distance_and_pitch() -> None:
    assert min_text_px(5, 0.496) == 58  # a 43-inch 1920x1080 screen read from 5 m: capitals 20 mm
    assert min_text_px(10, 5) == 12  # a P5 LED matrix from 10 m: capitals 40 mm, 8 LEDs
    assert min_text_px(None, 0.5) is None and min_text_px(5, None) is None
    assert min_text_px(10, 0.496) > min_text_px(5, 0.496)  # type: ignore[operator]


def test_config_keys() -> None:
    d = display_config(viewing_distance_m=5, pixel_pitch_mm=0.496).display  # type: ignore[attr-defined]
    assert (d.viewing_distance_m, d.pixel_pitch_mm) == (5.0, 0.496)
    assert display_config().display.viewing_distance_m is None  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as info:
        display_config(viewing_distance_m=5)
    assert info.value.errors[0].startswith("display.pixel_pitch_mm: needed with display.viewing_distance_m")
    with pytest.raises(ConfigError) as info:
        display_config(viewing_distance_m=0.1, pixel_pitch_mm=0)
    assert [e.split(":")[0] for e in info.value.errors] == ["display.viewing_distance_m", "display.pixel_pitch_mm"]


def pages_of(renderer: Renderer, slide: TextSlide) -> list[tuple[int, int]]:
    """(title size, body size) of each page of ``slide`` (one, when it fits)."""
    renderer.show(slide, 0.0)
    renderer.render(0.0, WALL)
    text = renderer._text
    if text is None:
        main = renderer._rects["main"]
        fitted = renderer.painter.fit(slide.title, slide.body, main.w, main.h)
        return [(fitted.title_px, fitted.body_px)]
    return [(p.title_px, p.body_px) for p in text.pages]


def test_a_long_text_is_paged_at_the_viewing_distances_size_instead_of_shrinking() -> None:
    slide = TextSlide("travaux", title="Travaux", body=LONG, duration=60)
    with Renderer(FULL_HD, load_layout("fullscreen"), tz=ZoneInfo("Europe/Paris"), transition="cut") as r:
        unbound = pages_of(r, slide)
    floor = min_text_px(5, 0.496)
    assert floor is not None
    with Renderer(FULL_HD, load_layout("fullscreen"), tz=ZoneInfo("Europe/Paris"), transition="cut",
                  min_text_px=floor) as r:
        bound = pages_of(r, slide)
    assert max(body for _, body in unbound) < floor  # without the distance: small text
    assert len(bound) > 1 and all(body >= floor for _, body in bound), bound  # with it: pages
    assert all(title == 0 or title >= body for title, body in bound)


def ink_height(surface: pygame.Surface, area: pygame.Rect, background: tuple[int, int, int]) -> int:
    mask = pygame.mask.from_threshold(surface.subsurface(area), background, (8, 8, 8, 255))
    mask.invert()
    rects = mask.get_bounding_rects()
    assert rects, "nothing drawn there"
    return rects[0].unionall(rects[1:]).h


def test_a_title_in_the_header_is_never_smaller_than_its_body() -> None:
    """landscape: a long title fits its header on one line at a small size; the short body
    below used to fill the main zone, several times taller than the title."""
    layout = load_layout("landscape")
    slide = TextSlide("numerique", title="Permanence du conseiller numérique à la médiathèque municipale",
                      body="MARDI", duration=10, style=Style((0, 51, 102), (255, 255, 255), "center"))
    with Renderer(FULL_HD, layout, tz=ZoneInfo("Europe/Paris"), transition="cut") as r:
        r.show(slide, 0.0)
        r.render(0.0, WALL)
        frame = r.snapshot()
        header, main = r._rects["header"], r._rects["main"]
        header_bg = next(z.background for z in layout.zones if z.name == "header")
    # Capitals against capitals: the title's "P" and the body's "MARDI" (no descender in either
    # would be the ideal; the title's "q" adds its descender, so the body's caps are compared
    # with the title's whole ink, which is taller than its caps).
    assert header_bg is not None
    title_h = ink_height(frame, header, header_bg)
    body_h = ink_height(frame, main, (0, 51, 102))
    assert body_h <= title_h, (title_h, body_h)
