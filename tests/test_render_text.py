"""Fonts and text blocks, checked on real pygame pixels (SDL dummy driver)."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pygame
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from player.errors import ConfigError
from player.render.fonts import FRENCH_SAMPLE, FontFace, open_face
from player.render.text import ELLIPSIS, NBSP, NNBSP, TextPainter, french_typography

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
needs_dejavu = pytest.mark.skipif(not DEJAVU.is_file(), reason="fonts-dejavu-core not installed")

BG = (10, 20, 30)
INK = (250, 240, 100)


# --- pixel helpers -----------------------------------------------------------------------

def ink_mask(surface: pygame.Surface, bg: tuple[int, int, int] = BG) -> pygame.mask.Mask:
    """Set where the pixel is not exactly ``bg``."""
    mask = pygame.mask.from_threshold(surface, bg, (1, 1, 1, 255))
    mask.invert()
    return mask


def ink_box(surface: pygame.Surface, area: pygame.Rect | None = None) -> pygame.Rect | None:
    """Bounding box of the ink, optionally only within ``area`` (in surface coordinates)."""
    mask = ink_mask(surface)
    if area is not None:
        only = pygame.mask.Mask(surface.get_size())
        only.draw(pygame.mask.Mask(area.size, fill=True), area.topleft)
        mask = mask.overlap_mask(only, (0, 0))
    rects = mask.get_bounding_rects()
    if not rects:
        return None
    return rects[0].unionall(rects[1:])


def ink_outside(surface: pygame.Surface, rect: pygame.Rect) -> int:
    mask = ink_mask(surface)
    mask.erase(pygame.mask.Mask(rect.size, fill=True), rect.topleft)
    return mask.count()


def line_runs(surface: pygame.Surface, area: pygame.Rect) -> list[pygame.Rect]:
    """Ink bounding box of each text line inside ``area``: runs of rows holding ink."""
    mask = ink_mask(surface)
    rows = [any(mask.get_at((x, y)) for x in range(area.left, area.right))
            for y in range(area.top, area.bottom)]
    runs, start = [], None
    for i, has in enumerate(rows + [False]):
        if has and start is None:
            start = i
        elif not has and start is not None:
            band = pygame.Rect(area.left, area.top + start, area.w, i - start)
            box = ink_box(surface, band)
            assert box is not None
            runs.append(box)
            start = None
    return runs


def block_height(face: FontFace, lines: list[tuple[str, int]], spacing: float = 1.15) -> int:
    """The documented stacking rule, computed here from the face's metrics alone."""
    if not lines:
        return 0
    advances = sum(round(face.line_height(px) * spacing) for _, px in lines[:-1])
    return advances + face.line_height(lines[-1][1])


@pytest.fixture(scope="module")
def face() -> FontFace:
    return open_face(None)


@pytest.fixture
def canvas() -> pygame.Surface:
    surface = pygame.Surface((480, 320))
    surface.fill(BG)
    return surface


# --- fonts -------------------------------------------------------------------------------

def _notdef_pixels(face: FontFace, px: int) -> bytes:
    return pygame.image.tobytes(face.render("\u4e2d", px, INK), "RGBA")


@pytest.mark.parametrize("spec", [None, pytest.param(str(DEJAVU), marks=needs_dejavu)])
def test_every_french_glyph_is_drawn(spec: str | None) -> None:
    face = open_face(spec)
    assert face.missing_glyphs(FRENCH_SAMPLE) == ""
    notdef = _notdef_pixels(face, 24)
    for ch in FRENCH_SAMPLE:
        if ch.isspace():
            continue
        glyph = face.render(ch, 24, INK)
        assert glyph.get_bounding_rect().w > 0, f"{ch!r} draws no ink"
        assert pygame.image.tobytes(glyph, "RGBA") != notdef, f"{ch!r} draws the missing-glyph box"


def test_bundled_font_draws_french_spaces_with_a_stand_in(face: FontFace) -> None:
    # pygame's FreeSans has no U+00A0 / U+202F glyph: they are drawn as its plain space.
    assert face.approximated(FRENCH_SAMPLE) == "\u00a0\u202f"
    assert face.width(f"a{NNBSP}!", 30) == face.width("a !", 30)
    assert face.render(f"a{NBSP}:", 30, INK).get_size() == face.render("a :", 30, INK).get_size()


@needs_dejavu
def test_dejavu_has_real_narrow_space() -> None:
    face = open_face(str(DEJAVU))
    assert face.approximated(FRENCH_SAMPLE) == ""
    assert face.width(f"a{NNBSP}!", 40) < face.width("a !", 40)


def test_missing_glyphs_are_reported(face: FontFace) -> None:
    assert face.missing_glyphs("Crue \u4e2d\U0001F30A\nà") == "\u4e2d\U0001F30A"
    assert face.missing_glyphs("ligne 1\nligne 2\t\x00") == ""


def test_decomposed_accents_are_composed(face: FontFace) -> None:
    decomposed = unicodedata.normalize("NFD", "Évacuez les berges")
    assert face.missing_glyphs(decomposed) == ""
    assert face.width(decomposed, 30) == face.width("Évacuez les berges", 30)


def test_every_line_has_the_same_height(face: FontFace) -> None:
    for px in (6, 13, 40, 97):
        heights = {face.render(t, px, INK).get_height() for t in ("ÉTÉ", "été", "gy", "", "-")}
        assert heights == {face.line_height(px)}


def test_open_face_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        open_face(str(tmp_path / "absent.ttf"))
    assert missing.value.errors[0].startswith("display.font: cannot open")
    junk = tmp_path / "junk.ttf"
    junk.write_text("not a font")
    with pytest.raises(ConfigError) as bad:
        open_face(str(junk))
    assert bad.value.errors[0].startswith("display.font: cannot open")


def test_open_face_is_cached(face: FontFace) -> None:
    assert open_face(None) is face


# A 6x8 pixel font: each glyph row is one byte, leftmost pixel = most significant bit.
BDF_GLYPHS = {
    "space": (32, ["00"] * 8),
    "H": (72, ["00", "88", "88", "F8", "88", "88", "88", "00"]),
    "e": (101, ["00", "00", "70", "88", "F8", "80", "70", "00"]),
    "eacute": (233, ["10", "20", "70", "88", "F8", "80", "70", "00"]),
}


def write_bdf(path: Path) -> Path:
    lines = [
        "STARTFONT 2.1",
        "FONT -panel-test-medium-r-normal--8-80-75-75-c-60-iso10646-1",
        "SIZE 8 75 75",
        "FONTBOUNDINGBOX 6 8 0 -1",
        "STARTPROPERTIES 6",
        "FONT_ASCENT 7",
        "FONT_DESCENT 1",
        "PIXEL_SIZE 8",
        'CHARSET_REGISTRY "ISO10646"',
        'CHARSET_ENCODING "1"',
        "DEFAULT_CHAR 32",
        "ENDPROPERTIES",
        f"CHARS {len(BDF_GLYPHS)}",
    ]
    for name, (code, rows) in BDF_GLYPHS.items():
        lines += [f"STARTCHAR {name}", f"ENCODING {code}", "SWIDTH 750 0", "DWIDTH 6 0",
                  "BBX 6 8 0 -1", "BITMAP", *rows, "ENDCHAR"]
    lines.append("ENDFONT")
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def test_bdf_pixel_font_draws_its_own_bitmaps(tmp_path: Path) -> None:
    face = open_face(str(write_bdf(tmp_path / "tiny.bdf")))
    assert face.bitmap
    assert face.sizes(100) == [8] and face.sizes(3) == [8]
    assert face.missing_glyphs("Hé") == ""
    assert face.missing_glyphs("Hx") == "x"
    # Any other size is drawn at the font's own one: never a size it lacks.
    assert [face.fitting_size(px) for px in (1, 7, 8, 9, 100)] == [8, 8, 8, 8, 8]
    assert face.line_height(13) == face.line_height(8)
    assert face.width("Hé", 3) == face.width("Hé", 8) == 12
    at_9, at_8 = face.render("H", 9, INK), face.render("H", 8, INK)
    assert pygame.image.tobytes(at_9, "RGBA") == pygame.image.tobytes(at_8, "RGBA")
    with pytest.raises(ValueError):
        face.render("H", 0, INK)

    line = face.render("Hée", 8, INK, antialias=False)
    assert line.get_width() == 18
    drawn = {(x, y) for y in range(line.get_height()) for x in range(line.get_width())
             if line.get_at((x, y)).a}
    assert all(tuple(line.get_at(p))[:3] == INK and line.get_at(p).a == 255 for p in drawn)
    expected = set()
    for i, name in enumerate(("H", "eacute", "e")):
        for row, byte in enumerate(BDF_GLYPHS[name][1]):
            expected |= {(i * 6 + bit, row) for bit in range(8) if int(byte, 16) & (0x80 >> bit)}
    top = min(y for _, y in drawn) - min(y for _, y in expected)
    assert drawn == {(x, y + top) for x, y in expected}


def test_bdf_text_block_fits_and_stays_in_its_zone(tmp_path: Path, canvas: pygame.Surface) -> None:
    painter = TextPainter(open_face(str(write_bdf(tmp_path / "tiny.bdf"))), antialias=False)
    zone = pygame.Rect(100, 100, 40, 30)
    fitted = painter.fit("Hé", "eee Hé", zone.w, zone.h)
    assert (fitted.title_px, fitted.body_px) == (8, 8)
    assert fitted.title_lines == ("Hé",) and fitted.body_lines == ("eee Hé",)
    painter.draw(canvas, zone, "Hé", "eee Hé", INK)
    assert ink_outside(canvas, zone) == 0
    assert ink_box(canvas, zone) is not None


# --- typography --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("typed", "typeset"),
    [
        ("Attention !", f"Attention{NNBSP}!"),
        ("Attention!", f"Attention{NNBSP}!"),
        ("Pourquoi ? Parce que ; voilà", f"Pourquoi{NNBSP}? Parce que{NNBSP}; voilà"),
        ("Horaires : 8 h", f"Horaires{NBSP}: 8 h"),
        ("Horaires: 8 h", f"Horaires{NBSP}: 8 h"),
        ("Vraiment ?!", f"Vraiment{NNBSP}?!"),
        ("« Bonjour »", f"«{NBSP}Bonjour{NBSP}»"),
        ("«Bonjour»", f"«{NBSP}Bonjour{NBSP}»"),
        ("l'Isère et aujourd'hui", "l’Isère et aujourd’hui"),
        ("rendez-vous à 18:30", "rendez-vous à 18:30"),
        ("voir https://mairie.example/page?x=1&y=2 !", f"voir https://mairie.example/page?x=1&y=2{NNBSP}!"),
        ("www.example.fr:8080/a?b", "www.example.fr:8080/a?b"),
        ("écrire à accueil@mairie.example: merci", f"écrire à accueil@mairie.example{NBSP}: merci"),
        ("! en tête", "! en tête"),
        ("Note :\nsuite", f"Note{NBSP}:\nsuite"),
        ("1:2 et 12'", "1:2 et 12'"),
    ],
)
def test_french_typography(typed: str, typeset: str) -> None:
    assert french_typography(typed) == typeset
    assert french_typography(typeset) == typeset


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab1 :;!?«»'’/.\n\u00a0\u202f") + ["http://", "www."]))
       .map("".join))
def test_french_typography_is_idempotent(text: str) -> None:
    once = french_typography(text)
    assert french_typography(once) == once
    # It only ever changes spaces and apostrophes.
    strip = str.maketrans("", "", " \u00a0\u202f")
    assert once.translate(strip).replace("’", "'") == text.translate(strip).replace("’", "'")


# --- layout ------------------------------------------------------------------------------

def test_fit_picks_largest_size_single_word(face: FontFace) -> None:
    painter = TextPainter(face)
    for width, height in ((300, 200), (120, 400), (800, 60)):
        fitted = painter.fit("", "Bonjour", width, height)
        px = fitted.body_px
        assert fitted.body_lines == ("Bonjour",)
        assert face.width("Bonjour", px) <= width and face.line_height(px) <= height
        bigger = px + 1
        assert face.width("Bonjour", bigger) > width or face.line_height(bigger) > height


def test_fit_picks_largest_size_title_and_body(face: FontFace) -> None:
    painter = TextPainter(face)
    title, body = "Marché", "Mairie\nJeudi"  # no spaces: no size can wrap differently
    width, height = 400, 300
    fitted = painter.fit(title, body, width, height)
    assert fitted.title_lines == ("Marché",) and fitted.body_lines == ("Mairie", "Jeudi")
    assert fitted.title_px == min(round(fitted.body_px * 1.5), height)

    def fits(title_px: int, body_px: int) -> bool:
        lines = [(title, title_px), ("Mairie", body_px), ("Jeudi", body_px)]
        return (all(face.width(t, px) <= width for t, px in lines)
                and block_height(face, lines) <= height)

    assert fits(fitted.title_px, fitted.body_px)
    nxt = fitted.body_px + 1
    assert not fits(round(nxt * 1.5), nxt)
    assert fitted.height == block_height(
        face, [(title, fitted.title_px), ("Mairie", fitted.body_px), ("Jeudi", fitted.body_px)])


def test_fit_wraps_at_spaces_only_and_keeps_newlines(face: FontFace) -> None:
    painter = TextPainter(face)
    body = "Place de la Mairie\ndu 12 au 24 décembre"
    fitted = painter.fit("", body, 200, 400)
    assert len(fitted.body_lines) > 2
    assert " ".join(fitted.body_lines) == body.replace("\n", " ")
    # The second paragraph never shares a line with the first.
    assert any(line.endswith("Mairie") for line in fitted.body_lines)
    # A word is kept whole while a smaller size allows it.
    assert all(w in fitted.body_lines or any(w in line.split(" ") for line in fitted.body_lines)
               for w in body.split())


def test_no_break_spaces_hold_words_together(face: FontFace) -> None:
    painter = TextPainter(face)
    fitted = painter.fit("", "Attention ! Attention ! Attention !", 150, 400)
    assert all(not line.startswith("!") for line in fitted.body_lines)


def test_a_word_is_broken_only_when_it_never_fits_whole(face: FontFace) -> None:
    painter = TextPainter(face)
    word = "Anticonstitutionnellement"
    whole = painter.fit("", f"la {word}", 200, 200)
    assert whole.body_lines == ("la", word)  # a smaller size keeps the word whole
    assert face.width(word, 6) > 60  # too wide even at the smallest size: it is broken,
    broken = painter.fit("", word, 60, 200)  # at the largest size the pieces allow
    assert len(broken.body_lines) > 1 and "".join(broken.body_lines) == word
    assert all(face.width(line, broken.body_px) <= 60 for line in broken.body_lines)
    assert broken.body_px > 6


def test_nothing_fits_gives_smallest_size_and_an_ellipsis(face: FontFace) -> None:
    painter = TextPainter(face)
    fitted = painter.fit("Alerte crue", "Évacuez les berges. " * 40, 120, 40)
    assert fitted.truncated
    assert fitted.title_px == 9 and fitted.body_px == 6  # the smallest pair
    assert fitted.title_lines == ("Alerte crue",)
    last = (fitted.title_lines + fitted.body_lines)[-1]
    assert last.endswith(ELLIPSIS)
    assert fitted.height <= 40


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=st.text(max_size=40),
    body=st.text(max_size=160),
    width=st.integers(1, 500),
    height=st.integers(1, 300),
)
def test_fit_never_overflows(face: FontFace, title: str, body: str, width: int, height: int) -> None:
    painter = TextPainter(face)
    fitted = painter.fit(title, body, width, height)
    lines = fitted.lines()
    assert fitted.height == block_height(face, lines)
    assert fitted.height <= height
    for text, px in lines:
        assert face.width(text, px) <= width, (text, px)
    if not fitted.truncated:
        # Nothing lost: the same characters, spaces aside.
        def ink(s: str) -> str:
            return "".join(s.split())
        assert ink("".join(t for t, _ in lines)) == ink(painter.prepare(title)) + ink(painter.prepare(body))


# --- drawing -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("title", "body", "zone"),
    [
        ("Marché de Noël", "Place de la Mairie\ndu 12 au 24 décembre", pygame.Rect(60, 50, 300, 180)),
        ("ALERTE CRUE", "Évacuez les berges de l'Isère avant 18 h. " * 30, pygame.Rect(10, 10, 90, 40)),
        ("", "Anticonstitutionnellement", pygame.Rect(400, 280, 30, 30)),
        ("Ïîÿ", "jÉ|gÇ", pygame.Rect(0, 0, 70, 60)),
    ],
)
@pytest.mark.parametrize("antialias", [True, False])
def test_ink_inside_its_zone_and_nowhere_else(
    face: FontFace, canvas: pygame.Surface, title: str, body: str, zone: pygame.Rect, antialias: bool
) -> None:
    painter = TextPainter(face, antialias=antialias)
    returned = painter.draw(canvas, zone, title, body, INK)
    assert ink_outside(canvas, zone) == 0
    measured = ink_box(canvas)
    assert measured is not None and zone.contains(measured)
    assert returned == measured


def test_ink_fills_the_zone_it_was_fitted_to(face: FontFace, canvas: pygame.Surface) -> None:
    zone = pygame.Rect(40, 40, 400, 200)
    TextPainter(face).draw(canvas, zone, "", "Bonjour", INK)
    box = ink_box(canvas)
    assert box is not None
    # The largest size: the word spans most of the width or of the height.
    assert box.w > 0.85 * zone.w or box.h > 0.6 * zone.h


def test_vertically_centred(face: FontFace, canvas: pygame.Surface) -> None:
    zone = pygame.Rect(0, 0, 480, 320)
    TextPainter(face).draw(canvas, zone, "", "mmm", INK)  # x-height only: symmetric ink
    box = ink_box(canvas)
    assert box is not None
    # The line box (not the ink) is centred; its ink sits within a line of the centre.
    assert abs(box.centery - zone.centery) < face.line_height(TextPainter(face).fit("", "mmm", 480, 320).body_px) / 2


@pytest.mark.parametrize("align", ["left", "center", "right"])
def test_alignment_measured_on_ink(face: FontFace, canvas: pygame.Surface, align: str) -> None:
    zone = pygame.Rect(20, 20, 440, 280)
    painter = TextPainter(face)
    painter.draw(canvas, zone, "", "Mairie\nMarché de Noël du centre-ville", INK, align=align)
    runs = line_runs(canvas, zone)
    assert len(runs) == len(painter.fit("", "Mairie\nMarché de Noël du centre-ville", 440, 280).body_lines)
    assert runs[0].w < runs[-1].w - 100  # lines of clearly different widths
    slack = 4  # glyph side bearings
    for run in runs:
        if align == "left":
            assert abs(run.left - zone.left) <= slack
        elif align == "right":
            assert abs(run.right - zone.right) <= slack
        else:
            assert abs(run.centerx - zone.centerx) <= slack
    if align == "center":
        assert runs[0].left - zone.left > 40 and zone.right - runs[0].right > 40


def test_bad_alignment_is_refused(face: FontFace, canvas: pygame.Surface) -> None:
    with pytest.raises(ValueError):
        TextPainter(face).draw(canvas, pygame.Rect(0, 0, 100, 50), "", "x", INK, align="justify")


def test_no_antialiasing_gives_two_colours(face: FontFace, canvas: pygame.Surface) -> None:
    zone = pygame.Rect(0, 0, 480, 320)

    def colours(antialias: bool) -> set[tuple[int, ...]]:
        canvas.fill(BG)
        TextPainter(face, antialias=antialias).draw(canvas, zone, "Crue", "Évacuez « vite » !", INK)
        return {tuple(canvas.get_at((x, y)))[:3] for y in range(0, 320) for x in range(0, 480, 2)}

    assert colours(False) == {BG, INK}
    assert len(colours(True)) > 10  # the same text anti-aliased has intermediate shades


def test_draw_line_largest_size(face: FontFace, canvas: pygame.Surface) -> None:
    painter = TextPainter(face)
    zone = pygame.Rect(10, 100, 300, 50)
    returned = painter.draw_line(canvas, zone, "Collecte des encombrants", INK)
    assert ink_outside(canvas, zone) == 0 and returned == ink_box(canvas)
    text = painter.prepare("Collecte des encombrants")
    px = painter.line_px(text, zone.w, zone.h)
    assert face.width(text, px) <= zone.w and face.line_height(px) <= zone.h
    assert face.width(text, px + 1) > zone.w or face.line_height(px + 1) > zone.h


def test_draw_line_too_long_is_shortened(face: FontFace, canvas: pygame.Surface) -> None:
    zone = pygame.Rect(10, 10, 60, 12)
    TextPainter(face).draw_line(canvas, zone, "Collecte des encombrants jeudi", INK)
    assert ink_outside(canvas, zone) == 0
    assert ink_box(canvas) is not None


def test_fit_is_cached(face: FontFace) -> None:
    painter = TextPainter(face)
    assert painter.fit("a", "b", 100, 100) is painter.fit("a", "b", 100, 100)


# --- real pixel fonts (Debian's xfonts-base) ------------------------------------------------

XFONTS = Path("/usr/share/fonts/X11/misc")
# No 8 px size (the field report), the smallest and a large one, a CJK font with Latin.
PCF_FONTS = ["6x10", "6x13B", "9x15B", "5x7", "4x6", "10x20", "12x13ja"]


@pytest.mark.parametrize("name", PCF_FONTS)
def test_pcf_fonts_are_used_at_their_own_sizes_everywhere(name: str) -> None:
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from player.content import Style, TextSlide
    from player.layout import load_layout
    from player.render.compositor import Renderer
    from player.render.identify import IdentifyView, PanelInfo
    from player.render.testcard import TestCard
    from player.render.ticker import Ticker

    path = XFONTS / f"{name}.pcf.gz"
    if not path.is_file():
        pytest.skip(f"{path} missing: install the Debian package xfonts-base")
    face = open_face(str(path))
    assert face.bitmap
    own = face.sizes(1000)
    assert len(own) == 1 and all(face.fitting_size(px) == own[0] for px in (1, 8, own[0], 200))
    painter = TextPainter(face, antialias=False)
    fitted = painter.fit("Crue", "Évacuez les berges de l'Isère", 120, 60)
    assert {fitted.title_px, fitted.body_px} <= {own[0], 0}
    assert painter.line_px("Marché", 50, 4) == own[0]
    wall = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
    info = PanelInfo("mairie-entree", "Mairie — entrée", "0.1.0", ("192.168.1.20 (eth0)",), "b:1883", True)
    for size in ((32, 16), (64, 32), (192, 96), (1920, 1080)):
        band = pygame.Rect(0, 0, size[0], max(1, size[1] // 4))
        surface = pygame.Surface(size)
        surface.fill(BG)
        ticker = Ticker(painter, ["Collecte des encombrants jeudi"], band.size, INK, BG, 24.0, 0.0)
        ticker.draw(surface, band, 1.0)
        assert ink_box(surface, band) is not None
        for overlay in (TestCard(info, font=face, led=True), IdentifyView(info, 60.0, font=face, led=True)):
            surface.fill(BG)
            overlay.draw(surface, 0.0, wall)
            overlay.draw(surface, 9.0, wall)  # the next page, on a small panel
            assert ink_box(surface) is not None
        renderer = Renderer(size, load_layout("led-matrix"), tz=ZoneInfo("Europe/Paris"), transition="cut",
                            font=str(path))
        renderer.show(TextSlide("s", "Marché de Noël", "Place de la Mairie",
                                Style((0, 51, 102), (255, 255, 255), "center")), 0.0)
        assert renderer.render(0.0, wall) is not None


def test_ticker_with_text_the_font_draws_as_nothing_does_not_hang() -> None:
    from player.render.ticker import Ticker

    path = XFONTS / "cu-alt12.pcf.gz"  # no glyph, and no width, for Latin letters
    if not path.is_file():
        pytest.skip(f"{path} missing: install the Debian package xfonts-base")
    painter = TextPainter(open_face(str(path)))
    ticker = Ticker(painter, ["Collecte jeudi"], (64, 16), INK, BG, 24.0, 0.0)
    assert ticker.period == 0 and ticker.next_frame(0.0) is None
    surface = pygame.Surface((64, 16))
    ticker.draw(surface, surface.get_rect(), 1.0)  # returns: nothing to scroll
    assert tuple(surface.get_at((5, 5)))[:3] == BG


def test_a_ticker_item_as_long_as_a_playlist_allows_scrolls_whole_at_full_size() -> None:
    """4,000 characters (the longest item a playlist may hold) at 1080p: about 180,000
    pixels of line, three times what FreeType draws in one piece. The text keeps the size
    that fills the band, is not cut, and its last word scrolls into view."""
    from player.content import MAX_TEXT
    from player.render.ticker import MAX_STRIP_PIXELS, SEPARATOR, Ticker

    painter = TextPainter(open_face(None))
    sentence = "Évacuez les berges de l'Isère avant 18 h. "
    text = (sentence * (MAX_TEXT // len(sentence) + 1))[:MAX_TEXT - len(" fin")] + " fin"
    assert len(text) == MAX_TEXT
    band = (1920, 108)
    long = Ticker(painter, [text], band, INK, BG, 160.0, 0.0)
    short = Ticker(painter, ["Collecte des encombrants jeudi"], band, INK, BG, 160.0, 0.0)
    assert long._px == short._px  # the same size as a short item: nothing shrinks
    assert long.text == painter.prepare(text) + SEPARATOR  # nothing cut
    assert "".join(long.pieces) == long.text
    assert long.period == painter.face.width(long.text, long._px) > 65_536
    # The last word: where its piece starts, the band shows exactly that piece's glyphs.
    last = long.pieces[-1]
    assert last.startswith("fin") or "fin" in last
    at = long._starts[-1]
    surface = pygame.Surface(band)
    long.draw(surface, surface.get_rect(), at / long.speed + 1e-9)
    expected = pygame.Surface(band)
    expected.fill(BG)
    glyphs = painter.face.render(last, long._px, INK, painter.antialias)
    expected.blit(glyphs, (0, (band[1] - painter.face.line_height(long._px)) // 2))
    w = min(band[0], long._widths[-1])
    got = pygame.image.tobytes(surface.subsurface((0, 0, w, band[1])), "RGB")
    assert got == pygame.image.tobytes(expected.subsurface((0, 0, w, band[1])), "RGB")
    # Scrolled through the whole loop, the pieces held rendered stay within the budget.
    t = 0.0
    while t * long.speed < long.period + band[0]:
        long.draw(surface, surface.get_rect(), t)
        assert long.rendered_pixels <= MAX_STRIP_PIXELS
        t += band[0] / 2 / long.speed
    assert len(long._rendered) < len(long.pieces)


def test_a_ticker_word_wider_than_a_piece_is_cut_between_pieces_and_shown_whole() -> None:
    from player.render.ticker import PIECE_WIDTH, Ticker

    painter = TextPainter(open_face(None))
    address = "https://www.mairie-saint-martin.fr/" + "actualites/" * 60 + "crue"
    ticker = Ticker(painter, [address], (1920, 80), INK, BG, 100.0, 0.0)
    assert len(ticker.pieces) > 2 and "".join(ticker.pieces) == ticker.text
    assert all(w <= PIECE_WIDTH for w in ticker._widths)
    # Seams are invisible: two pieces side by side draw what the joined text draws.
    a, b = ticker.pieces[0], ticker.pieces[1]
    assert painter.face.width(a + b, ticker._px) == ticker._widths[0] + ticker._widths[1]


def test_a_tall_ticker_band_keeps_at_least_the_pieces_of_one_frame() -> None:
    from player.render.ticker import MAX_STRIP_PIXELS, Ticker

    painter = TextPainter(open_face(None))
    text = "Évacuez les berges de l'Isère avant 18 h. " * 100
    tall = Ticker(painter, [text], (3840, 700), INK, BG, 100.0, 0.0)
    surface = pygame.Surface((3840, 700))
    for t in (0.0, 30.0, 61.5, 200.0):
        tall.draw(surface, surface.get_rect(), t)
        shown = len(tall._rendered)
        # Over the budget only with the pieces the frame shows (up to three across 3,840 px).
        assert shown >= 1 and (tall.rendered_pixels <= MAX_STRIP_PIXELS or shown <= 3)
    usual = Ticker(painter, ["Collecte des encombrants jeudi"], (1920, 80), INK, BG, 100.0, 0.0)
    assert len(usual.pieces) == 1  # as before: one strip, filling the band
    usual.draw(pygame.Surface((1920, 80)), pygame.Rect(0, 0, 1920, 80), 0.0)
    assert usual._rendered[0].get_height() == 80


def test_text_wider_than_freetype_boxes_is_measured_right() -> None:
    """FreeType's boxes wrap past 65,535 pixels; long texts are measured in pieces."""
    face = open_face(None)
    one = face.width("x", 50)
    assert one > 0
    for n in (100, 1_000, 5_000, 30_000):
        assert face.width("x" * n, 50) == n * one  # 30,000 × 28 px: far past 65,535
