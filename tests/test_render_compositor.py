"""The compositor on real pygame surfaces: zones, images, rotation, fades, dirty rects, deadlines."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pygame
import pytest
from PIL import Image

from player.content import ImageSlide, Style, TextSlide
from player.errors import AssetError
from player.layout import Layout, Zone, load_layout
from player.render.compositor import Renderer
from player.render.images import ImageCache
from player.render.transitions import Cut, Fade, make_transition

PARIS = ZoneInfo("Europe/Paris")
WALL = datetime(2026, 11, 25, 17, 30, 10, tzinfo=timezone.utc)
T0 = 1000.0
RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)
NAVY, HEADER, YELLOW = (0x0B, 0x1D, 0x33), (0x00, 0x33, 0x66), (0xFF, 0xCC, 0x00)
SHA = "ab" * 32

Frame = tuple[pygame.Surface, list[pygame.Rect] | None]


def rgb(surface: pygame.Surface, x: int, y: int) -> tuple[int, int, int]:
    c = surface.get_at((x, y))
    return c.r, c.g, c.b


def near(a: tuple[int, ...], b: tuple[int, ...], tol: int = 8) -> bool:
    return all(abs(p - q) <= tol for p, q in zip(a, b))


def colours(surface: pygame.Surface, rect: pygame.Rect | tuple[int, int, int, int]) -> set[tuple[int, int, int]]:
    r = pygame.Rect(rect)
    return {rgb(surface, x, y) for y in range(r.top, r.bottom) for x in range(r.left, r.right)}


def changed_rows(before: bytes, after: bytes, width: int) -> list[tuple[int, int, int]]:
    """(y, first x, last x) of every row that differs between two 32-bit frames."""
    out = []
    pitch = width * 4
    for y in range(len(before) // pitch):
        a, b = before[y * pitch:(y + 1) * pitch], after[y * pitch:(y + 1) * pitch]
        if a != b:
            xs = [i // 4 for i in range(0, pitch, 4) if a[i:i + 4] != b[i:i + 4]]
            out.append((y, xs[0], xs[-1]))
    return out


def inside(rows: list[tuple[int, int, int]], rects: list[pygame.Rect]) -> bool:
    """Every changed pixel span lies within one of ``rects``."""
    return all(any(r.collidepoint(x0, y) and r.collidepoint(x1, y) for r in rects) for y, x0, x1 in rows)


def frame(result: Frame | None) -> pygame.Surface:
    assert result is not None
    return result[0]


def fixed_layout(*zones: Zone, background: tuple[int, int, int] = BLACK) -> Layout:
    return Layout(name="test", zones=zones, background=background)


MAIN = Zone(name="main", role="main", rect=(0, 0, 1, 1), padding=0)


def make(size: tuple[int, int] = (640, 360), layout: Layout | str = "landscape", **kw: object) -> Renderer:
    if isinstance(layout, str):
        layout = load_layout(layout)
    kw.setdefault("transition", "cut")
    return Renderer(size, layout, tz=PARIS, **kw)  # type: ignore[arg-type]


def picture(tmp_path: Path, name: str, image: Image.Image, **kw: object) -> Path:
    path = tmp_path / name
    image.save(path, **kw)
    return path


def image_slide(fit: str = "contain") -> ImageSlide:
    return ImageSlide(id="img", asset=SHA, fit=fit)


# ------------------------------------------------------------------ zones


def test_background_colours_belong_to_their_zones() -> None:
    r = make()
    r.show(TextSlide("a", title="Marché de Noël", body="Place de la Mairie", style=Style(background=GREEN)), T0)
    f = frame(r.render(T0, WALL))
    assert f.get_size() == (640, 360)
    # landscape: header 0..480 x 0..43, clock 480..640 x 0..43, main y 43..324, ticker y 324..360
    assert rgb(f, 0, 0) == HEADER and rgb(f, 479, 42) == HEADER  # title zone
    assert rgb(f, 639, 0) == HEADER and rgb(f, 481, 42) == HEADER  # clock zone
    assert rgb(f, 0, 44) == GREEN and rgb(f, 639, 322) == GREEN  # the slide's own background
    assert colours(f, (0, 325, 640, 35)) == {NAVY}  # no ticker items: band hidden
    r.set_ticker(["Collecte des encombrants jeudi"], T0)
    f = frame(r.render(T0 + 0.01, WALL))
    band = colours(f, (0, 324, 640, 36))
    assert YELLOW in band and BLACK in band and NAVY not in band  # yellow band, black ink
    assert rgb(f, 0, 44) == GREEN


def test_text_ink_stays_inside_its_zones() -> None:
    r = make()
    r.show(TextSlide("a", title="Marché de Noël", body="Place de la Mairie", style=Style(background=GREEN)), T0)
    f = frame(r.render(T0, WALL))
    assert WHITE in colours(f, (0, 0, 480, 43))  # the title, in the header
    assert WHITE in colours(f, (480, 0, 160, 43))  # the clock
    main = colours(f, (0, 43, 640, 281))
    assert WHITE in main
    # Every pixel is either the zone's background or ink (white, or anti-aliased towards it).
    for rect, bg in (((0, 0, 480, 43), HEADER), ((0, 43, 640, 281), GREEN)):
        for c in colours(f, rect):
            assert c == bg or all(a >= b for a, b in zip(c, bg)), c


def test_title_goes_to_the_header_and_body_to_main() -> None:
    def render(layout: str, slide: TextSlide | None) -> pygame.Surface:
        r = make(layout=layout)
        r.show(slide, T0)
        return frame(r.render(T0, WALL)).copy()

    both = TextSlide("a", title="TITRE", body="corps du texte", style=Style(background=GREEN))
    body_only = TextSlide("a", title="", body="corps du texte", style=Style(background=GREEN))
    other_title = TextSlide("a", title="AUTRE", body="corps du texte", style=Style(background=GREEN))
    header = pygame.Rect(0, 0, 480, 43)
    main = pygame.Rect(0, 43, 640, 281)
    a, b, c = render("landscape", both), render("landscape", body_only), render("landscape", other_title)
    assert colours(b, header) == {HEADER}  # no title: empty header
    assert WHITE in colours(a, header)
    assert pygame.image.tobytes(a.subsurface(main), "RGB") == pygame.image.tobytes(b.subsurface(main), "RGB")
    assert pygame.image.tobytes(a.subsurface(header), "RGB") != pygame.image.tobytes(c.subsurface(header), "RGB")
    # Without a title zone, the title shares the main zone with the body.
    full_a, full_b = render("fullscreen", both), render("fullscreen", body_only)
    assert pygame.image.tobytes(full_a, "RGB") != pygame.image.tobytes(full_b, "RGB")


def test_text_zone_and_idle_screen() -> None:
    layout = fixed_layout(Zone(name="main", role="main", rect=(0, 0, 1, 0.8)),
                          Zone(name="note", role="text", rect=(0, 0.8, 1, 0.2), background=RED, text="Mairie"))
    r = make((320, 200), layout)
    r.show(None, T0)  # idle: a big clock and the date in the main zone
    f = frame(r.render(T0, WALL))
    assert WHITE in colours(f, (0, 0, 320, 90))  # the time
    assert WHITE in colours(f, (0, 100, 320, 55))  # the date beneath it
    assert WHITE in colours(f, (0, 160, 320, 40))  # the fixed text
    assert rgb(f, 0, 199) == RED
    deadline = r.next_deadline(T0, WALL)
    assert deadline == pytest.approx(T0 + 50)  # 17:30:10 -> the next minute


# ------------------------------------------------------------------ images


def test_image_fits_in_the_main_zone(tmp_path: Path) -> None:
    layout = fixed_layout(MAIN, background=BLUE)
    square = picture(tmp_path, "square.png", Image.new("RGB", (100, 100), RED))
    halves = Image.new("RGB", (200, 100), GREEN)
    halves.paste(RED, (0, 0, 100, 100))
    split = picture(tmp_path, "halves.png", halves)

    r = make((320, 180), layout)
    r.show(image_slide("contain"), T0, image_path=square)
    f = frame(r.render(T0, WALL))
    assert rgb(f, 10, 90) == BLUE and rgb(f, 310, 90) == BLUE  # pillar-boxed
    assert near(rgb(f, 160, 90), RED) and near(rgb(f, 75, 5), RED) and near(rgb(f, 244, 175), RED)

    r = make((320, 180), layout)
    r.show(image_slide("cover"), T0, image_path=square)
    assert colours(frame(r.render(T0, WALL)), (0, 0, 320, 180)) == {RED}

    r = make((320, 180), layout)
    r.show(image_slide("stretch"), T0, image_path=split)
    f = frame(r.render(T0, WALL))
    assert near(rgb(f, 2, 90), RED) and near(rgb(f, 317, 90), GREEN) and near(rgb(f, 2, 2), RED)


def test_exif_rotated_jpeg_and_transparent_png_in_the_main_zone(tmp_path: Path) -> None:
    layout = fixed_layout(MAIN, background=WHITE)
    stored = Image.new("RGB", (200, 100), BLUE)
    stored.paste(RED, (0, 0, 200, 50))  # top red: after "rotate 90° clockwise" red is on the right
    exif = Image.Exif()
    exif[0x0112] = 6
    jpeg = picture(tmp_path, "phone.jpg", stored, exif=exif, quality=95)
    r = make((200, 400), layout)
    r.show(image_slide("stretch"), T0, image_path=jpeg)
    f = frame(r.render(T0, WALL))
    assert near(rgb(f, 30, 200), BLUE, 25) and near(rgb(f, 170, 200), RED, 25)

    logo = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    logo.paste((255, 0, 0, 255), (25, 25, 75, 75))
    png = picture(tmp_path, "logo.png", logo)
    r = make((100, 100), fixed_layout(MAIN, background=GREEN))
    r.show(image_slide("stretch"), T0, image_path=png)
    f = frame(r.render(T0, WALL))
    assert rgb(f, 5, 5) == GREEN and near(rgb(f, 50, 50), RED)


def test_a_broken_image_raises_and_keeps_the_picture(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    r = make((160, 90), fixed_layout(MAIN))
    r.show(TextSlide("a", title="Bonjour", style=Style(background=GREEN)), T0)
    before = pygame.image.tobytes(frame(r.render(T0, WALL)), "RGB")
    with pytest.raises(AssetError, match="broken.png"):
        r.show(image_slide(), T0 + 1, image_path=broken)
    with pytest.raises(AssetError, match=SHA):
        r.show(image_slide(), T0 + 1, image_path=None)
    assert r.render(T0 + 1, WALL) is None
    assert pygame.image.tobytes(r.snapshot(), "RGB") == before


def test_prefetched_image_is_ready_before_it_is_shown(tmp_path: Path) -> None:
    path = picture(tmp_path, "next.png", Image.new("RGB", (64, 64), RED))
    with ImageCache(8 << 20) as cache:
        r = make((160, 90), fixed_layout(MAIN), images=cache)
        r.prefetch(image_slide("cover"), path)
        deadline = time.monotonic() + 5
        while len(cache) == 0:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        path.unlink()  # showing it must not need the file any more
        r.show(image_slide("cover"), T0, image_path=path)
        assert colours(frame(r.render(T0, WALL)), (0, 0, 160, 90)) == {RED}


# ------------------------------------------------------------------ rotation


@pytest.mark.parametrize("rotation,corner", [(0, (2, 2)), (90, (317, 2)), (180, (317, 177)), (270, (2, 177))])
def test_rotation_puts_the_top_left_marker_in_the_right_corner(rotation: int, corner: tuple[int, int]) -> None:
    layout = fixed_layout(MAIN, Zone(name="mark", role="text", rect=(0, 0, 0.1, 0.1), background=RED))
    r = make((320, 180), layout, rotation=rotation)
    assert r.logical_size == ((180, 320) if rotation in (90, 270) else (320, 180))
    r.show(TextSlide("a", title="", body=" ", style=Style(background=BLUE)), T0)
    f = frame(r.render(T0, WALL))
    assert f.get_size() == (320, 180)
    reds = [(x, y) for x, y in ((2, 2), (317, 2), (317, 177), (2, 177)) if rgb(f, x, y) == RED]
    assert reds == [corner]
    assert rgb(f, 160, 90) == BLUE


def ticker_renderer(rotation: int, at: float | None = None) -> tuple[Renderer, pygame.Surface]:
    r = make((320, 180), "portrait" if rotation in (90, 270) else "landscape", rotation=rotation)
    r.set_ticker(["Travaux rue Victor Hugo", "Piscine fermée lundi"], T0)
    r.show(TextSlide("a", title="Titre", body="Texte"), T0)
    return r, frame(r.render(T0 if at is None else at, WALL))


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_rotated_dirty_rects_cover_every_changed_pixel(rotation: int) -> None:
    r, f = ticker_renderer(rotation)
    before = pygame.image.tobytes(f, "RGBX")
    result = r.render(T0 + 0.25, WALL)
    assert result is not None and result[1] is not None
    after = pygame.image.tobytes(result[0], "RGBX")
    rows = changed_rows(before, after, 320)
    assert rows and inside(rows, result[1])
    screen = pygame.Rect(0, 0, 320, 180)
    assert all(screen.contains(d) for d in result[1])
    # The frame updated through dirty rects is the frame drawn from scratch at that time.
    _, scratch = ticker_renderer(rotation, at=T0 + 0.25)
    assert after == pygame.image.tobytes(scratch, "RGBX")


def test_bad_rotation_is_refused() -> None:
    with pytest.raises(ValueError):
        make(rotation=45)


# ------------------------------------------------------------------ transitions


def test_a_frame_midway_through_a_fade_is_a_blend() -> None:
    r = make((160, 90), fixed_layout(MAIN), transition="fade", transition_s=0.6)
    r.show(TextSlide("a", title="", body=" ", style=Style(background=RED)), T0)
    r.render(T0, WALL)
    r.show(TextSlide("b", title="", body=" ", style=Style(background=BLUE)), T0 + 5)
    start = frame(r.render(T0 + 5, WALL))
    assert near(rgb(start, 80, 45), RED, 2)
    assert r.next_deadline(T0 + 5, WALL) == pytest.approx(T0 + 5 + 1 / 30)
    mid = rgb(frame(r.render(T0 + 5.3, WALL)), 80, 45)
    assert near(mid, (127, 0, 128), 6) and 0 < mid[0] < 255 and 0 < mid[2] < 255
    end = r.render(T0 + 5.7, WALL)
    assert end is not None and rgb(end[0], 80, 45) == BLUE
    assert r.render(T0 + 5.8, WALL) is None and r.next_deadline(T0 + 5.8, WALL) is None


def test_clock_and_ticker_keep_running_through_a_fade() -> None:
    def landscape(transition: str) -> Renderer:
        r = make(transition=transition, transition_s=1.0)
        r.set_ticker(["Collecte des encombrants jeudi"], T0)
        r.show(TextSlide("a", title="Un", body="Premier", style=Style(background=RED)), T0)
        r.render(T0, WALL)
        return r

    fading, cut = landscape("fade"), landscape("cut")
    for r in (fading, cut):
        r.show(TextSlide("b", title="Deux", body="Second", style=Style(background=BLUE)), T0 + 1)
        r.render(T0 + 1, WALL)
    mid = frame(fading.render(T0 + 1.5, WALL + timedelta(seconds=50)))
    reference = frame(cut.render(T0 + 1.5, WALL + timedelta(seconds=50)))
    for chrome in ((0, 324, 640, 36), (480, 0, 160, 43)):  # ticker band, clock zone (new minute)
        assert (pygame.image.tobytes(mid.subsurface(chrome), "RGB")
                == pygame.image.tobytes(reference.subsurface(chrome), "RGB"))
    assert not near(rgb(mid, 320, 300), BLUE, 30) and not near(rgb(mid, 320, 300), RED, 30)


def test_cut_shows_the_new_slide_at_once() -> None:
    r = make((160, 90), fixed_layout(MAIN), transition="cut")
    r.show(TextSlide("a", title="", body=" ", style=Style(background=RED)), T0)
    r.render(T0, WALL)
    r.show(TextSlide("b", title="", body=" ", style=Style(background=BLUE)), T0 + 5)
    assert rgb(frame(r.render(T0 + 5, WALL)), 80, 45) == BLUE


def test_transitions_blend_without_new_surfaces() -> None:
    old, new, out = pygame.Surface((8, 8)), pygame.Surface((8, 8)), pygame.Surface((8, 8))
    old.fill(RED)
    new.fill(BLUE)
    fade = make_transition("fade", 1.0)
    assert isinstance(fade, Fade) and isinstance(make_transition("fade", 0), Cut)
    fade.blend(old, new, 0.25, out)
    quarter = rgb(out, 3, 3)
    assert near(quarter, (191, 0, 64), 4)
    fade.blend(old, new, 0.5, out, pygame.Rect(0, 0, 4, 8))
    assert near(rgb(out, 1, 1), (127, 0, 128), 4) and rgb(out, 6, 6) == quarter  # only the area
    fade.blend(old, new, 1.0, out)
    assert rgb(out, 3, 3) == BLUE and new.get_alpha() in (None, 255)
    with pytest.raises(ValueError):
        make_transition("swirl", 1)


# ------------------------------------------------------------------ dirty rects and deadlines


def test_still_picture_renders_nothing_and_has_no_deadline() -> None:
    r = make((320, 180), "fullscreen")
    r.show(TextSlide("a", title="Bonjour", body="Mairie ouverte"), T0)
    assert r.next_deadline(T0, WALL) == T0
    first = r.render(T0, WALL)
    assert first is not None and first[1] is None  # the first frame is whole
    assert r.render(T0 + 1, WALL) is None
    assert r.render(T0 + 100, WALL + timedelta(minutes=5)) is None
    assert r.next_deadline(T0 + 100, WALL) is None
    r.show(TextSlide("a", title="Bonjour", body="Mairie ouverte"), T0 + 200)  # the same slide again
    assert r.render(T0 + 200, WALL) is None


def test_ticker_dirties_only_its_band() -> None:
    r = make()
    r.set_ticker(["Collecte des encombrants jeudi", "Piscine fermée"], T0)
    r.show(TextSlide("a", title="Titre", body="Texte"), T0)
    f = frame(r.render(T0, WALL))
    band = pygame.Rect(0, 324, 640, 36)
    now = T0
    for _ in range(5):
        deadline = r.next_deadline(now, WALL)
        assert deadline is not None and now < deadline <= now + 1 / 30 + 1e-6
        before = pygame.image.tobytes(f, "RGBX")
        now = deadline
        result = r.render(now, WALL)
        assert result is not None and result[1]
        assert all(band.contains(d) for d in result[1])
        rows = changed_rows(before, pygame.image.tobytes(result[0], "RGBX"), 640)
        assert rows and inside(rows, result[1])
        f = result[0]
    scratch = make()
    scratch.set_ticker(["Collecte des encombrants jeudi", "Piscine fermée"], T0)
    scratch.show(TextSlide("a", title="Titre", body="Texte"), T0)
    assert pygame.image.tobytes(frame(scratch.render(now, WALL)), "RGB") == pygame.image.tobytes(f, "RGB")


def test_minute_tick_dirties_only_the_clock_zone() -> None:
    r = make()
    r.show(TextSlide("a", title="Titre", body="Texte"), T0)
    r.render(T0, WALL)
    assert r.next_deadline(T0, WALL) == pytest.approx(T0 + 50)
    assert r.render(T0 + 30, WALL + timedelta(seconds=30)) is None
    result = r.render(T0 + 50, WALL + timedelta(seconds=50))
    assert result is not None and result[1] == [pygame.Rect(480, 0, 160, 43)]


def test_wall_clock_jumping_back_redraws_the_clock() -> None:
    r = make()
    r.show(TextSlide("a", title="Titre", body="Texte"), T0)
    r.render(T0, WALL)
    result = r.render(T0 + 1, WALL - timedelta(hours=1))  # NTP correction at boot
    assert result is not None and result[1] == [pygame.Rect(480, 0, 160, 43)]
    assert r.next_deadline(T0 + 1, WALL - timedelta(hours=1)) <= T0 + 61  # type: ignore[operator]


class Card:
    """A test overlay: a solid colour, animated (a moving bar) when ``step`` is set."""

    def __init__(self, colour: tuple[int, int, int], step: float | None = None) -> None:
        self.colour, self.step, self.draws = colour, step, 0

    def draw(self, surface: pygame.Surface, now: float, wall: datetime) -> None:
        self.draws += 1
        surface.fill(self.colour)

    def next_frame(self, now: float) -> float | None:
        return None if self.step is None else now + self.step


def test_overlay_covers_everything_and_goes_away() -> None:
    r = make()
    r.set_ticker(["Info"], T0)
    r.show(TextSlide("a", title="Titre", body="Texte"), T0)
    under = pygame.image.tobytes(frame(r.render(T0, WALL)), "RGB")
    card = Card(RED)
    r.set_overlay(card)
    result = r.render(T0 + 0.1, WALL)
    assert result is not None and result[1] is None
    assert colours(result[0], (0, 0, 640, 360)) == {RED}
    assert r.render(T0 + 0.2, WALL) is None and card.draws == 1  # a still overlay costs nothing
    assert r.next_deadline(T0 + 0.2, WALL) is None
    r.set_overlay(None)
    back = frame(r.render(T0, WALL))
    assert pygame.image.tobytes(back, "RGB") == under


def test_animated_overlay_sets_the_deadline() -> None:
    r = make((160, 90), fixed_layout(MAIN))
    r.show(None, T0)
    r.render(T0, WALL)
    r.set_overlay(Card(GREEN, step=0.5))
    r.render(T0, WALL)
    assert r.next_deadline(T0, WALL) == pytest.approx(T0 + 0.5)


def test_dim_scales_the_output_and_back() -> None:
    r = make((160, 90), fixed_layout(MAIN))
    r.show(TextSlide("a", title="", body=" ", style=Style(background=(200, 100, 40))), T0)
    r.render(T0, WALL)
    r.set_dim(0.5)
    f = frame(r.render(T0 + 1, WALL))
    assert near(rgb(f, 80, 45), (100, 50, 20), 2)
    r.set_dim(1.0)
    assert rgb(frame(r.render(T0 + 2, WALL)), 80, 45) == (200, 100, 40)


def test_layout_switch_relays_the_slide() -> None:
    r = make()
    r.show(TextSlide("a", title="Titre", body="Texte", style=Style(background=GREEN)), T0)
    r.render(T0, WALL)
    r.set_layout(load_layout("fullscreen"))
    result = r.render(T0 + 1, WALL)
    assert result is not None and result[1] is None
    assert rgb(result[0], 0, 0) == GREEN  # the main zone now covers the panel


def test_a_long_image_playlist_keeps_the_cache_bounded(tmp_path: Path) -> None:
    paths = []
    for i in range(30):
        paths.append(picture(tmp_path, f"p{i}.png", Image.new("RGB", (80, 60), (i * 8, 100, 200 - i * 6))))
    slides = [ImageSlide(id=f"s{i}", asset=f"{i:064x}", fit="cover") for i in range(30)]
    cap = 3 * 160 * 90 * 4
    with ImageCache(cap) as cache:
        r = make((160, 90), fixed_layout(MAIN), images=cache)
        for i, slide in enumerate(slides):
            r.show(slide, T0 + i, image_path=paths[i])
            f = frame(r.render(T0 + i, WALL))
            assert near(rgb(f, 80, 45), (i * 8, 100, 200 - i * 6), 2)
            if i + 1 < len(slides):
                r.prefetch(slides[i + 1], paths[i + 1])
            assert cache.bytes_used <= cap and len(cache) <= cap // (160 * 90 * 3)  # packed RGB
