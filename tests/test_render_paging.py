"""Small panels: the bundled pixel fonts, the legible floor, and slide text that pages or
scrolls rather than being dropped, on real pygame pixels (SDL dummy driver)."""

from __future__ import annotations

import re
import string
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pygame
import pytest

from player.content import Style, TextSlide
from player.errors import ConfigError
from player.layout import Layout, layout_from_data, load_layout
from player.render.compositor import Renderer
from player.render.fonts import (FONTS_DIR, FRENCH_SAMPLE, PIXEL_FONT, SAFE_WIDTH, FontFace, family_files,
                                 open_face)
from player.render.text import FittedText, TextPainter

PARIS = ZoneInfo("Europe/Paris")
WALL = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
T0 = 1000.0
BLACK, WHITE, AMBER = (0, 0, 0), (255, 255, 255), (255, 176, 0)
ASCII = "".join(c for c in string.printable if c.isprintable())

ROADWORKS = TextSlide("travaux", title="Travaux",
                      body="La rue des Écoles sera fermée à la circulation du lundi 3 au vendredi 14 mars. "
                           "Merci de votre compréhension.", duration=10.0)
SHORT = TextSlide("court", title="Route barrée", body="Déviation", duration=10.0)


def letters(text: str) -> str:
    """The letters and digits of ``text`` in order: what must survive paging (line breaks,
    spaces and hyphens may change, nothing else)."""
    return re.sub(r"[\W_]", "", text)


def page_text(page: FittedText) -> str:
    return "\n".join(t for t, _ in page.lines())


def make(size: tuple[int, int], layout: Layout | str = "led-matrix", **kw: object) -> Renderer:
    if isinstance(layout, str):
        layout = load_layout(layout)
    kw.setdefault("transition", "cut")
    return Renderer(size, layout, tz=PARIS, **kw)  # type: ignore[arg-type]


def grab(r: Renderer, now: float) -> bytes:
    r.render(now, WALL)
    return pygame.image.tobytes(r.snapshot(), "RGB")


def run(r: Renderer, slide: TextSlide, start: float = T0) -> list[tuple[float, bytes, list[pygame.Rect] | None]]:
    """Drive the renderer as the main loop does over the slide's duration: (time, frame,
    dirty rects) of every frame handed out."""
    r.show(slide, start)
    out = []
    now = start
    while now < start + slide.duration:
        drawn = r.render(now, WALL)
        if drawn is not None:
            out.append((now, pygame.image.tobytes(drawn[0], "RGB"), drawn[1]))
        deadline = r.next_deadline(now, WALL)
        if deadline is None:
            break
        assert deadline > now or drawn is not None, "a deadline that never moves on"
        now = max(deadline, now + 1e-6)
    return out


def ink(frame: bytes, size: tuple[int, int], bg: tuple[int, int, int] = BLACK) -> pygame.Rect | None:
    surface = pygame.image.frombytes(frame, size, "RGB")
    mask = pygame.mask.from_threshold(surface, bg, (1, 1, 1, 255))
    mask.invert()
    rects = mask.get_bounding_rects()
    return rects[0].unionall(rects[1:]) if rects else None


def one_line_layout(overflow: str = "auto") -> Layout:
    return layout_from_data({"name": "bande", "font": "pixel", "antialias": False, "overflow": overflow,
                             "zones": [{"name": "main", "role": "main", "rect": [0, 0, 1, 1], "padding": 0}]})


# ------------------------------------------------------------------ the bundled fonts


def test_the_bundled_pixel_fonts_cover_french_from_7_to_32_px() -> None:
    face = open_face(PIXEL_FONT)
    assert face.bitmap
    sizes = face.sizes(1000)
    assert sizes[0] <= 8 and sizes[-1] == 32 and len(sizes) >= 5
    assert face.missing_glyphs(FRENCH_SAMPLE + ASCII) == ""
    assert face.approximated(FRENCH_SAMPLE) == "\u202f"  # drawn as a space: no font has it
    for path in family_files(FONTS_DIR):
        single = FontFace(str(path))
        assert single.missing_glyphs(FRENCH_SAMPLE + ASCII) == "", path.name
        assert set(single.approximated(FRENCH_SAMPLE)) <= {"\u202f"}, path.name


def test_every_bundled_font_has_its_licence_and_readme_row() -> None:
    readme = (FONTS_DIR / "README.md").read_text(encoding="utf-8")
    files = family_files(FONTS_DIR)
    assert len(files) >= 5
    for path in files:
        assert f"`{path.name}`" in readme, f"{path.name} is not described in the fonts README"
        licence = "LICENSE-Terminus.txt" if path.name.startswith("ter-") else "LICENSE-misc-fixed.txt"
        assert (FONTS_DIR / licence).is_file()
    assert "SIL Open Font License" in (FONTS_DIR / "LICENSE-Terminus.txt").read_text(encoding="utf-8")
    assert "Public domain" in (FONTS_DIR / "LICENSE-misc-fixed.txt").read_text(encoding="utf-8")


def test_a_family_draws_each_size_with_its_own_file() -> None:
    face = open_face(PIXEL_FONT)
    assert face.fitting_size(3) == 7 and face.fitting_size(9) == 7 and face.fitting_size(500) == 32
    for px in face.sizes(1000):
        line = face.render("Éé", px, WHITE, antialias=False)
        assert line.get_height() == face.line_height(px) == px + 1
        alphas = {line.get_at((x, y)).a for x in range(line.get_width()) for y in range(line.get_height())}
        assert alphas == {0, 255}, px  # pixel fonts: every LED on or off
    assert face.width("Marché", 7) == 6 * 5 and face.width("Marché", 32) == 6 * 16


def test_a_folder_of_pixel_fonts_is_a_family(tmp_path: Path) -> None:
    for name in ("5x7.pcf.gz", "ter-u20b_unicode.pcf.gz"):
        (tmp_path / name).write_bytes((FONTS_DIR / name).read_bytes())
    (tmp_path / "notes.txt").write_text("not a font")
    face = open_face(str(tmp_path))
    assert face.sizes(100) == [7, 20]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no BDF, PCF or OTB font"):
        FontFace(str(empty))


def test_legible_sizes() -> None:
    assert open_face(PIXEL_FONT).legible_px(False) == 7
    freesans = open_face(None)
    assert freesans.legible_px(True) == 9 and freesans.legible_px(False) == 13
    assert freesans.sizes(20, 13)[0] == 13 and freesans.sizes(5, 13) == [13]
    assert open_face(PIXEL_FONT).sizes(12, 8) == [10] and open_face(PIXEL_FONT).sizes(100, 40) == [32]


# ------------------------------------------------------------------ defaults of small panels


@pytest.mark.parametrize("size", [(64, 32), (128, 64), (192, 96), (96, 192), (256, 128)])
def test_small_panels_use_the_pixel_fonts_by_default(size: tuple[int, int]) -> None:
    with make(size, "fullscreen") as r:
        assert r.painter.face.spec == PIXEL_FONT
        assert r.painter.min_px == 7


def test_large_panels_and_configured_fonts_keep_theirs() -> None:
    with make((1920, 1080), "fullscreen") as r:
        assert r.painter.face.spec is None and r.painter.min_px == 9
    freesans = pygame.font.get_default_font()
    path = str(Path(pygame.__file__).parent / freesans)
    with make((64, 32), "led-matrix", font=path) as r:
        assert r.painter.face.spec == path and r.painter.min_px == 13  # no anti-aliasing
    assert load_layout("led-matrix").font == PIXEL_FONT
    with make((640, 320), "led-matrix") as r:  # a large LED wall with the LED layout
        assert r.painter.face.spec == PIXEL_FONT


def test_text_is_never_laid_out_below_the_legible_size() -> None:
    face = open_face(None)
    painter = TextPainter(face, antialias=False, min_px=face.legible_px(False))
    for page in painter.paginate("Collecte des encombrants", ROADWORKS.body * 3, 64, 24, 3):
        assert all(px >= 13 for _, px in page.lines())
    low = painter.paginate("Titre", "", 64, 5)  # too low a box: the line is clipped, not shrunk
    assert [page.lines() for page in low] == [[("Titre", 13)]]
    assert painter.line_px("Bonjour", 10, 4) == 13


# ------------------------------------------------------------------ hyphenation


@pytest.mark.parametrize("word, pieces", [
    ("Saint-Vincent", ["Saint-", "Vincent"]),
    ("compréhension.", ["compréhen-", "sion."]),
    ("déplacements.", ["déplace-", "ments."]),
    ("municipales\u00a0:", ["munici-", "pales\u00a0:"]),  # pyphen's French patterns
])
def test_words_too_wide_are_cut_where_a_typesetter_would(word: str, pieces: list[str]) -> None:
    painter = TextPainter(open_face(PIXEL_FONT), antialias=False, min_px=7, hyphenate=True)
    assert painter.wrap(word, 7, 64, break_words=True) == pieces


def test_a_word_wider_than_the_box_is_hyphenated_at_every_line() -> None:
    painter = TextPainter(open_face(PIXEL_FONT), antialias=False, min_px=7, hyphenate=True)
    lines = painter.wrap("anticonstitutionnellement", 7, 40, break_words=True)
    assert lines is not None and len(lines) >= 3
    assert all(painter.face.width(line, 7) <= 40 for line in lines)
    assert all(line.endswith("-") for line in lines[:-1]) and "".join(lines).replace("-", "") == \
        "anticonstitutionnellement"
    plain = TextPainter(open_face(PIXEL_FONT), antialias=False)  # the default: cut without hyphens
    assert "".join(plain.wrap("anticonstitutionnellement", 7, 40, break_words=True) or []) == \
        "anticonstitutionnellement"


# ------------------------------------------------------------------ paginate


def test_a_block_that_fits_is_one_page() -> None:
    painter = TextPainter(open_face(PIXEL_FONT), antialias=False, line_spacing=1.0, min_px=7)
    pages = painter.paginate(SHORT.title, SHORT.body, 128, 48)
    assert len(pages) == 1 and pages[0] == painter.fit(SHORT.title, SHORT.body, 128, 48)


@pytest.mark.parametrize("box", [(64, 24), (128, 24), (61, 17), (200, 9)])
def test_pages_fit_their_box_and_keep_every_word_in_order(box: tuple[int, int]) -> None:
    painter = TextPainter(open_face(PIXEL_FONT), antialias=False, line_spacing=1.0, min_px=7, hyphenate=True)
    pages = painter.paginate(ROADWORKS.title, ROADWORKS.body, *box)
    assert len(pages) >= 2
    for page in pages:
        assert not page.truncated
        assert page.height <= box[1] or len(page.lines()) == 1
        assert all(painter.face.width(t, px) <= box[0] for t, px in page.lines())
        assert all(px >= 7 for _, px in page.lines())
    assert letters("\n".join(page_text(p) for p in pages)) == letters(ROADWORKS.title + ROADWORKS.body)


def test_pages_take_a_larger_size_when_the_duration_allows_few_of_them() -> None:
    painter = TextPainter(open_face(PIXEL_FONT), antialias=False, line_spacing=1.0, min_px=7, hyphenate=True)
    smallest = painter.paginate(ROADWORKS.title, ROADWORKS.body, 128, 48)
    few = painter.paginate(ROADWORKS.title, ROADWORKS.body, 128, 48, max_pages=3)
    assert len(smallest) < len(few) <= 3
    assert few[-1].body_px > smallest[-1].body_px
    assert letters("\n".join(page_text(p) for p in few)) == letters(ROADWORKS.title + ROADWORKS.body)


def test_a_title_word_too_wide_for_the_title_size_takes_the_body_size() -> None:
    painter = TextPainter(open_face(PIXEL_FONT), antialias=False, line_spacing=1.0, min_px=7, hyphenate=True)
    pages = painter.paginate("Encombrants", "Mardi 21 octobre : sortez vos objets la veille au soir.", 64, 24)
    assert pages[0].title_lines == ("Encombrants",) and pages[0].title_px == 7


def test_scroll_line_joins_title_and_body_at_the_largest_size_of_the_height() -> None:
    painter = TextPainter(open_face(PIXEL_FONT), antialias=False, line_spacing=1.0, min_px=7)
    assert painter.scroll_line("Route barrée", "Déviation\npar la Gare", 16) == \
        ("Route barrée – Déviation par la Gare", 13)
    assert painter.scroll_line("", "", 16) is None
    assert painter.scroll_line("x" * (SAFE_WIDTH // 4), "", 16) is None  # too long even at 7 px: paged


# ------------------------------------------------------------------ the renderer: pages


def test_a_long_slide_is_paged_within_its_duration_and_nothing_is_dropped() -> None:
    size = (64, 32)
    with make(size) as r:
        frames = run(r, ROADWORKS)
        main = pygame.Rect(load_layout("led-matrix").main.pixels(*size))
        pages = r.painter.paginate(ROADWORKS.title, ROADWORKS.body, main.w, main.h, 3)
    shown = list(dict.fromkeys(f for _, f, _ in frames))
    assert len(pages) >= 3 and len(shown) == len(pages)
    assert letters("\n".join(page_text(p) for p in pages)) == letters(ROADWORKS.title + ROADWORKS.body)
    assert frames[0][0] == T0 and frames[-1][0] < T0 + ROADWORKS.duration
    for _, frame, dirty in frames[1:]:
        box = ink(frame, size)
        assert box is not None and main.contains(box)  # the ticker band stays dark
        assert dirty is not None and all(main.contains(d) for d in dirty)  # a page turn redraws main only


def test_pages_share_the_duration_by_their_length() -> None:
    with make((64, 32)) as r:
        turns = [t for t, _, _ in run(r, ROADWORKS)]
        main = pygame.Rect(load_layout("led-matrix").main.pixels(64, 32))
        pages = r.painter.paginate(ROADWORKS.title, ROADWORKS.body, main.w, main.h, 3)
    lengths = [sum(len(t) for t, _ in p.lines()) + 12 for p in pages]
    ends = [T0 + ROADWORKS.duration * sum(lengths[:i + 1]) / sum(lengths) for i in range(len(pages))]
    assert turns == pytest.approx([T0] + ends[:-1])
    assert min(b - a for a, b in zip([T0] + ends, ends)) > 1.5  # each page long enough to read


def test_a_short_slide_is_a_still_picture() -> None:
    with make((128, 64)) as r:
        frames = run(r, SHORT)
    assert len(frames) == 1  # one frame, then no deadline: nothing to do until the next slide


def test_the_same_slide_again_starts_its_pages_over() -> None:
    with make((64, 32)) as r:
        r.show(ROADWORKS, T0)
        first = grab(r, T0)
        later = grab(r, T0 + 6)
        assert later != first
        r.show(ROADWORKS, T0 + 10.01)  # a one-slide playlist: the slide comes round again
        assert r.next_deadline(T0 + 10.01, WALL) == pytest.approx(T0 + 10.01, abs=0.04)
        assert grab(r, T0 + 10.05) == first


def test_pages_wait_under_an_overlay_and_resume_on_the_right_page() -> None:
    class Card:
        def draw(self, surface: pygame.Surface, now: float, wall: datetime) -> None:
            surface.fill((200, 0, 0))

        def next_frame(self, now: float) -> float | None:
            return None

    with make((64, 32)) as r:
        expected = {t: f for t, f, _ in run(make((64, 32)), ROADWORKS)}
        r.show(ROADWORKS, T0)
        r.render(T0, WALL)
        r.set_overlay(Card())
        r.render(T0 + 0.1, WALL)
        assert r.next_deadline(T0 + 0.1, WALL) is None  # the pages do not turn beneath
        r.set_overlay(None)
        last_turn = max(expected)
        assert grab(r, last_turn + 0.01) == expected[last_turn]


def test_a_slide_with_the_title_in_a_header_pages_its_body() -> None:
    size = (128, 64)
    layout = layout_from_data({"name": "petit", "font": "pixel", "antialias": False, "line_spacing": 1.0,
                               "zones": [{"name": "t", "role": "title", "rect": [0, 0, 1, 0.25]},
                                         {"name": "main", "role": "main", "rect": [0, 0.25, 1, 0.75]}]})
    with make(size, layout) as r:
        frames = run(r, TextSlide("l", title="Travaux", body=ROADWORKS.body * 2, duration=12))
    assert len({f for _, f, _ in frames}) >= 2


def test_a_title_too_long_for_the_header_is_paged_with_the_body_not_shortened() -> None:
    """The header holds one line; a title it cannot hold at a legible size goes with the
    body into the main zone, whose pages keep every word, and the header shows no "…"."""
    size = (128, 64)
    layout = layout_from_data({"name": "petit", "font": "pixel", "antialias": False, "line_spacing": 1.0,
                               "zones": [{"name": "t", "role": "title", "rect": [0, 0, 1, 0.25]},
                                         {"name": "main", "role": "main", "rect": [0, 0.25, 1, 0.75]}]})
    title = "Collecte des encombrants et des déchets verts"
    slide = TextSlide("l", title=title, body=ROADWORKS.body, duration=20)
    with make(size, layout) as r:
        frames = run(r, slide)
        text = r._text
        assert text is not None and text.pages, "the main zone pages the title and the body"
        shown = "".join(page_text(p) for p in text.pages)
    assert letters(shown) == letters(title + ROADWORKS.body)
    header = pygame.Rect(0, 0, 128, 16)
    for _, frame, _ in frames:  # the header stays empty: nothing is drawn there to be cut
        assert ink(pygame.image.tobytes(pygame.image.frombytes(frame, size, "RGB").subsurface(header), "RGB"),
                   header.size) is None
    # A title that fits the header stays there, as before.
    with make(size, layout) as r:
        frames = run(r, TextSlide("c", title="Travaux", body=ROADWORKS.body, duration=20))
        assert r._text is None or all(not p.title_lines for p in r._text.pages)
    first = pygame.image.frombytes(frames[0][1], size, "RGB").subsurface(header)
    assert ink(pygame.image.tobytes(first, "RGB"), header.size) is not None


def test_pages_keep_the_slide_colours() -> None:
    slide = TextSlide("c", title="Travaux", body=ROADWORKS.body, duration=10,
                      style=Style(background=(0, 0, 128), color=AMBER))
    with make((64, 32)) as r:
        frames = run(r, slide)
    main = pygame.Rect(load_layout("led-matrix").main.pixels(64, 32))
    for _, frame, _ in frames:
        surface = pygame.image.frombytes(frame, (64, 32), "RGB")
        colours = {tuple(surface.get_at((x, y)))[:3] for x in range(main.w) for y in range(main.h)}
        assert colours == {(0, 0, 128), AMBER}


# ------------------------------------------------------------------ the renderer: scrolling


def test_a_one_line_zone_scrolls_the_whole_text_within_the_duration() -> None:
    size = (128, 16)  # the zone holds one line of the smallest size: auto scrolls
    with make(size, one_line_layout()) as r:
        frames = run(r, ROADWORKS)
        text, px = r.painter.scroll_line(ROADWORKS.title, ROADWORKS.body, 16) or ("", 0)
        fps = r.fps
    assert px == 13  # as tall as the zone allows, not the smallest size
    line = open_face(PIXEL_FONT).render(text, px, WHITE, antialias=False)
    travel = line.get_width() - size[0]
    offsets = _offsets(line, size)
    moved = [offsets[f] for _, f, _ in frames]  # KeyError: a frame that is not the line at some offset
    # It stands still at its start, moves left at a steady pace (at most the frame rate),
    # and ends on the text's end, before the slide's end.
    assert moved[0] == 0 and moved[-1] == travel and moved == sorted(moved)
    times = [t for t, _, _ in frames]
    assert times[1] == pytest.approx(T0 + 1.0, abs=1 / fps)
    assert times[-1] <= T0 + ROADWORKS.duration - 1.0 + 1 / fps
    step = travel / (ROADWORKS.duration - 2.0) / fps  # pixels per frame
    assert max(b - a for a, b in zip(moved, moved[1:])) <= step + 1.5
    assert all(d is not None and d == [pygame.Rect((0, 0), size)] for _, _, d in frames[1:])


def _offsets(line: pygame.Surface, size: tuple[int, int]) -> dict[bytes, int]:
    """The frame showing ``line`` moved left by each offset, as bytes, to its offset."""
    top = (size[1] - line.get_height()) // 2
    probe = pygame.Surface(size)
    out = {}
    for offset in range(0, line.get_width() - size[0] + 1):
        probe.fill(BLACK)
        probe.blit(line, (-offset, top))
        out[pygame.image.tobytes(probe, "RGB")] = offset
    return out


def test_overflow_scroll_scrolls_even_where_pages_would_fit() -> None:
    layout = layout_from_data({"name": "defile", "font": "pixel", "antialias": False, "overflow": "scroll",
                               "zones": [{"name": "main", "role": "main", "rect": [0, 0, 1, 1], "padding": 0}]})
    with make((64, 32), layout) as r:
        frames = run(r, ROADWORKS)
    assert len(frames) > 100


def test_overflow_page_pages_even_a_one_line_zone() -> None:
    with make((128, 16), one_line_layout("page")) as r:
        frames = run(r, ROADWORKS)
    assert 2 <= len(frames) <= 12


# ------------------------------------------------------------------ the layout option


def test_overflow_is_validated() -> None:
    assert load_layout("fullscreen").overflow == "auto"
    assert load_layout("led-matrix").overflow == "auto"
    with pytest.raises(ConfigError, match="overflow"):
        layout_from_data({"name": "x", "overflow": "shrink", "zones": [{"name": "m", "role": "main",
                                                                         "rect": [0, 0, 1, 1]}]})
