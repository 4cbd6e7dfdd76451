"""The alert screen renders whatever the layout, font, panel size, level and text, and the
title is on it.

Fonts: pygame's bundled one, DejaVu Sans (a TTF), every pixel font (BDF/PCF) found under
/usr/share/fonts/X11/misc (Debian's ``xfonts-base``) and any font file bundled with the
project. The screen must be the real one (``on_error`` never called: the minimal screen
would hide a bug here), and "the title is on it" is checked twice, so that a title not
drawn fails: there is ink in the title's area, and the picture differs from the same
alert's with an empty title.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

import pygame
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from player.alerts import Alert
from player.layout import Layout, builtin_layouts, load_layout
from player.render.alert_view import PALETTES, AlertView
from player.render.fonts import FontFace, open_face

ROOT = Path(__file__).resolve().parent.parent
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
PIXEL_DIR = Path("/usr/share/fonts/X11/misc")
T0 = 1000.0
WALL = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
SENTINEL = (1, 254, 3)


def _text_font(path: str) -> bool:
    """A font that writes Latin letters as pygame reads it: not a cursor or symbol font, nor
    a PCF font in an encoding other than ISO 8859-1 or ISO 10646 (FreeType gives those no
    Unicode character map: they can only draw their default character)."""
    try:
        face = open_face(path)
    except Exception:
        return False
    return all(face.has_glyph(c) for c in "AZaz09")


def _bundled_fonts() -> list[str]:
    found = []
    for pattern in ("*.ttf", "*.otf", "*.bdf", "*.pcf", "*.pcf.gz"):
        found += [str(p) for p in ROOT.glob(f"**/{pattern}")
                  if ".venv" not in p.parts and ".git" not in p.parts]
    return sorted(found)


ALL_PIXEL_FONTS = sorted(str(p) for p in PIXEL_DIR.glob("*.pcf.gz"))
PIXEL_FONTS = [f for f in ALL_PIXEL_FONTS if _text_font(f)]
OTHER_PIXEL_FONTS = [f for f in ALL_PIXEL_FONTS if f not in PIXEL_FONTS]
SCALABLE: list[str | None] = [None, *([DEJAVU] if os.path.exists(DEJAVU) else [])]
BUNDLED = [f for f in _bundled_fonts() if _text_font(f)]
FONTS = [*SCALABLE, *BUNDLED, *PIXEL_FONTS]
# As many examples with a scalable font as with a pixel one, though there are fewer.
FONT_CHOICES = st.one_of(st.sampled_from(SCALABLE), st.sampled_from([*BUNDLED, *PIXEL_FONTS] or SCALABLE))
LAYOUTS = sorted(builtin_layouts())


@cache
def layout(name: str) -> Layout:
    return load_layout(name)


# --- texts ---------------------------------------------------------------------------------

# A title starts with a lead (emoji, right-to-left, control characters...), then letters
# (its core), then anything. Many pixel fonts draw a character they lack as blank space:
# a title made of those has nothing to show, so the lead and the core keep only what the
# font has (the tail is kept whole).
CORE = "AÉÈÇœZaézç0123456789ÀBCDEFGHIJKLMNOPQRSTUVWXY"
LEADS = ["", "🚨 ", "⚠️", "תשומת לב ", "تحذير ", "\x07\x1b[31m", "\u202e", "e\u0301", "\u00a0\u202f"]
TEXT_ANY = st.text(st.characters(codec="utf-8"), max_size=60)
BODIES = st.one_of(
    st.just(""),
    TEXT_ANY,
    st.text(st.sampled_from("Évacuez les berges de l'Isère avant 18 h ; montée des eaux ! "), min_size=4000,
            max_size=4000),
    st.just("Débordement" * 27 + "abc"),  # one word of 300 characters
    st.just("🌊🌊🚨 crue ⚠️ 👩‍👩‍👧 🇫🇷"),
    st.just("אזהרה: שיטפון בנהר. تحذير: فيضان في النهر. RTL ‏mixed‎ text"),
    st.just("ligne\x00un\x01\x02\x1b[0m\r\nligne\tdeux\x7f\u200b\u2028\ufeff\ud800fin"),
)
TITLES = st.tuples(st.sampled_from(LEADS), st.text(st.sampled_from(CORE), min_size=1, max_size=12),
                   st.one_of(st.just(""), TEXT_ANY, st.just(" " + "x" * 300), st.just(" " + "Crue " * 800)))


def title_for(font: str | None, parts: tuple[str, str, str]) -> str:
    """The title made of ``parts`` (lead, core, tail) that ``font`` can show (see above)."""
    face = open_face(font)
    lead, core, tail = parts
    if face.missing_glyphs(lead):
        lead = ""
    return lead + ("".join(c for c in core if face.has_glyph(c)) or "0") + tail
SIZES = st.one_of(
    st.sampled_from([(32, 16), (64, 32), (128, 64), (192, 96), (1920, 1080), (1080, 1920), (3840, 2160)]),
    st.tuples(st.integers(32, 400), st.integers(16, 300)),  # LED matrices and small screens
    st.tuples(st.integers(32, 3840), st.integers(16, 2160)),
)


# --- drawing -------------------------------------------------------------------------------

def make_view(layout_name: str, font: str | None, size: tuple[int, int], errors: list[str]) -> AlertView:
    """The alert view as the player builds it (player/app_alerts.py) for this layout and panel."""
    lay = layout(layout_name)
    led = not lay.antialias or size[1] <= 128
    ticker = lay.zone("ticker")
    return AlertView(open_face(font), flash=True, led=led,
                     banner_fraction=ticker.rect[3] if ticker is not None else None, on_error=errors.append)


def render(view: AlertView, alert: Alert, size: tuple[int, int], mode: str, count: int,
           image: pygame.Surface | None) -> pygame.Surface:
    view.set_alerts(alert, count, count - 1, image, T0, mode=mode)
    surface = pygame.Surface(size)
    surface.fill(SENTINEL)
    view.draw(surface, T0, WALL)
    if view.next_frame(T0) == T0:  # the body comes one frame later
        view.draw(surface, T0, WALL)
    return surface


def ink(surface: pygame.Surface, rect: pygame.Rect, background: tuple[int, int, int]) -> int:
    """Pixels of ``rect`` (clipped to the surface) that are not ``background``."""
    rect = rect.clip(surface.get_rect())
    if not rect.w or not rect.h:
        return 0
    same = pygame.transform.threshold(None, surface.subsurface(rect), background, (0, 0, 0, 0), set_behavior=0)
    return rect.w * rect.h - same


def check_alert_screen(layout_name: str, font: str | None, size: tuple[int, int], level: str, mode: str,
                       title: str, body: str, exercise: bool = False, count: int = 1,
                       image: pygame.Surface | None = None) -> None:
    errors: list[str] = []
    view = make_view(layout_name, font, size, errors)
    alert = Alert(id="p", scope="all", scope_name="", level=level, title=title, body=body, exercise=exercise)
    screen = render(view, alert, size, mode, count, image)
    assert errors == [], errors  # the real screen, not the minimal one
    palette = PALETTES[level]
    lay = view.layout(size)
    # The title's area holds ink...
    assert ink(screen, lay.title, palette.background) > 0, f"no ink in the title area {lay.title}"
    # ... that the title put there: with an empty title the picture is not the same.
    blank = render(make_view(layout_name, font, size, errors), Alert(
        id="p", scope="all", scope_name="", level=level, title="", body=body, exercise=exercise),
        size, mode, count, image)
    assert errors == [], errors
    assert pygame.image.tobytes(screen, "RGB") != pygame.image.tobytes(blank, "RGB"), "the title is not drawn"
    # Full screen: every pixel painted; banner: only the band.
    if mode == "fullscreen":
        assert screen.get_at((0, size[1] - 1))[:3] != SENTINEL and screen.get_at((size[0] - 1, 0))[:3] != SENTINEL
    else:
        band = view.banner_rect(size)
        assert band.h > 0 and screen.get_at((0, band.bottom - 1))[:3] != SENTINEL
        if band.y > 0:
            assert screen.get_at((0, 0))[:3] == SENTINEL
    due = view.next_frame(T0)
    assert due is None or (math.isfinite(due) and due > T0)


# --- the properties ------------------------------------------------------------------------

@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(layout_name=st.sampled_from(LAYOUTS), font=FONT_CHOICES, size=SIZES,
       level=st.sampled_from(["critical", "warning", "info"]), mode=st.sampled_from(["fullscreen", "banner"]),
       title=TITLES, body=BODIES, exercise=st.booleans(), count=st.integers(1, 3), with_image=st.booleans())
@example(layout_name="led-matrix", font=str(PIXEL_DIR / "6x13B.pcf.gz"), size=(128, 64), level="critical",
         mode="fullscreen", title=("", "CRUE", ""), body="Évacuez", exercise=False, count=1, with_image=False)
@example(layout_name="landscape", font=None, size=(3840, 2160), level="warning", mode="fullscreen",
         title=("", "Crue", " " + "x" * 300), body="Débordement " * 330, exercise=True, count=3, with_image=True)
@example(layout_name="led-matrix", font=DEJAVU, size=(32, 16), level="info", mode="banner",
         title=("🚨 ", "Marché", ""), body="", exercise=True, count=2, with_image=False)
def test_any_alert_screen_renders_with_its_title(layout_name: str, font: str | None, size: tuple[int, int],
                                                 level: str, mode: str, title: tuple[str, str, str], body: str,
                                                 exercise: bool, count: int, with_image: bool) -> None:
    if font is not None and not os.path.exists(font):
        font = None  # an explicit example's font is not installed here: the bundled one
    image = None
    if with_image:
        image = pygame.Surface((40, 30))
        image.fill((0, 200, 0))
    check_alert_screen(layout_name, font, size, level, mode, title_for(font, title), body, exercise, count, image)


@pytest.mark.skipif(not PIXEL_FONTS, reason="no pixel fonts (Debian package xfonts-base) installed")
@pytest.mark.parametrize("font", PIXEL_FONTS, ids=lambda f: Path(f).name.removesuffix(".pcf.gz"))
def test_every_pixel_font_on_this_machine_draws_the_alert_screen(font: str) -> None:
    """Each pixel font on an LED panel, a critical alert in full screen and an info banner."""
    title = "⚠ Crue de l'Isère : évacuez"
    body = "Débordement" * 27 + "abc\x07 🌊 שיטפון"
    for size in ((64, 32), (192, 96)):
        check_alert_screen("led-matrix", font, size, "critical", "fullscreen", title, body, exercise=True)
        check_alert_screen("led-matrix", font, size, "info", "banner", title, body)


@pytest.mark.skipif(not OTHER_PIXEL_FONTS, reason="no pixel fonts (Debian package xfonts-base) installed")
def test_pixel_fonts_that_cannot_write_latin_letters_still_draw_the_alert_screen() -> None:
    """Cursor fonts, and PCF fonts in other encodings (ISO 8859-15, KOI8-R...): the text
    cannot be read, but the real screen is drawn, in the level's colours."""
    for font in OTHER_PIXEL_FONTS:
        for mode in ("fullscreen", "banner"):
            errors: list[str] = []
            view = make_view("led-matrix", font, (64, 32), errors)
            alert = Alert(id="p", scope="all", scope_name="", level="warning", title="Crue de l'Isère",
                          body="Évacuez", exercise=True)
            screen = render(view, alert, (64, 32), mode, 2, None)
            assert errors == [], (font, errors)
            assert ink(screen, view.layout((64, 32)).band, PALETTES["warning"].background) > 0


def test_the_fonts_under_test_include_pixel_fonts_and_a_ttf() -> None:
    """Not a silent pass: the fonts this file promises are the ones it draws with."""
    faces: list[FontFace] = [open_face(f) for f in FONTS]
    assert faces[0].spec is None
    if os.path.exists(DEJAVU):
        assert any(f.spec == DEJAVU and not f.bitmap for f in faces)
    if PIXEL_DIR.is_dir() and any(PIXEL_DIR.glob("6x13B.pcf.gz")):
        assert all(f.bitmap for f in faces if f.spec in PIXEL_FONTS) and len(PIXEL_FONTS) >= 20
        assert str(PIXEL_DIR / "6x13B.pcf.gz") in PIXEL_FONTS and str(PIXEL_DIR / "5x7.pcf.gz") in PIXEL_FONTS
