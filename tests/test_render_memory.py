"""Memory discipline of the renderer, the image cache and the outputs (real pygame, dummy driver)."""

from __future__ import annotations

import gc
import weakref
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pygame
import pytest
from fake_framebuffer import make_fb
from fixtures_broker import wait_until
from PIL import Image

from player.content import ImageSlide, Style, TextSlide
from player.layout import Layout, Zone
from player.render.compositor import Renderer
from player.render.images import ImageCache, decode_image
from player.render.outputs import init_display
from player.render.outputs.fbdev import SYSFS_ROOT_ENV, default_sysfs_root, open_fbdev
from player.render.outputs.png import PngOutput
from player.render.text import TextPainter
from player.render.fonts import open_face

T0 = 1000.0
WALL = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(autouse=True)
def display():  # type: ignore[no-untyped-def]
    init_display("png", None)
    yield
    pygame.display.quit()


def main_only() -> Layout:
    return Layout(name="t", zones=(Zone(name="main", role="main", rect=(0, 0, 1, 1)),), background=(0, 0, 0))


@pytest.mark.parametrize("fps,seconds,tolerance", [(30, 0.6, 6), (60, 1.0, 16)])
def test_a_fade_drawn_frame_after_frame_stays_close_to_a_linear_blend(fps: int, seconds: float,
                                                                      tolerance: int) -> None:
    """The fade layer is blended in place: each step rounds down a little (at most about
    half a level per step on average), so the bound grows with the number of frames."""
    r = Renderer((64, 36), main_only(), tz=ZoneInfo("Europe/Paris"), fps=fps, transition="fade",
                 transition_s=seconds)
    r.show(TextSlide("a", title="", body=" ", style=Style(background=RED)), T0)
    r.render(T0, WALL)
    r.show(TextSlide("b", title="", body=" ", style=Style(background=BLUE)), T0 + 5)
    steps = round(fps * seconds)
    previous = (256, -1)
    for i in range(steps):
        drawn = r.render(T0 + 5 + i / fps, WALL)
        assert drawn is not None
        p = i / steps
        red, _, blue = tuple(drawn[0].get_at((32, 18)))[:3]
        assert abs(red - 255 * (1 - p)) <= tolerance and abs(blue - 255 * p) <= tolerance, (i, red, blue)
        assert red <= previous[0] and blue >= previous[1]  # monotonic: no flicker
        previous = (red, blue)
    end = r.render(T0 + 5 + seconds + 0.01, WALL)
    assert end is not None and tuple(end[0].get_at((32, 18)))[:3] == BLUE


def test_the_fade_layer_exists_only_during_a_transition() -> None:
    r = Renderer((64, 36), main_only(), tz=ZoneInfo("Europe/Paris"), transition="fade", transition_s=0.5)
    r.show(TextSlide("a", title="", body=" ", style=Style(background=RED)), T0)
    first = r.render(T0, WALL)
    assert first is not None
    r.show(TextSlide("b", title="", body=" ", style=Style(background=BLUE)), T0 + 1)
    mid = r.render(T0 + 1.25, WALL)
    assert mid is not None
    layer = weakref.ref(mid[0])
    assert mid[0] is not first[0]  # the fade layer is shown meanwhile
    del mid
    end = r.render(T0 + 1.6, WALL)
    assert end is not None and end[0] is first[0] and end[1] is None  # the scene again, whole
    gc.collect()
    assert layer() is None


def test_a_shown_picture_stays_in_the_cache_and_the_next_decode_waits_for_it(tmp_path: Path) -> None:
    paths = []
    for i, colour in enumerate((RED, BLUE)):
        paths.append(tmp_path / f"p{i}.png")
        Image.new("RGB", (80, 45), colour).save(paths[-1])
    slides = [ImageSlide(id=f"s{i}", asset=f"{i:064x}", fit="cover") for i in range(2)]
    with ImageCache(1 << 20) as cache:
        r = Renderer((160, 90), main_only(), tz=ZoneInfo("Europe/Paris"), transition="cut", images=cache)
        r.show(slides[0], T0, image_path=paths[0])
        r.prefetch(slides[1], paths[1])
        assert len(cache) == 1 and not any(cache.pending(k) for k in [("image", slides[1].asset, (160, 90), "cover", (0, 0, 0))])
        drawn = r.render(T0, WALL)
        assert drawn is not None and tuple(drawn[0].get_at((80, 45)))[:3] == RED
        wait_until(lambda: len(cache) == 2 and cache.bytes_used == 2 * 160 * 90 * 3, 5,
                   "the shown picture and the next one in the cache")
        paths[1].unlink()  # showing it must not need the file
        r.show(slides[1], T0 + 1, image_path=paths[1], wait=False)
        drawn = r.render(T0 + 1, WALL)
        assert drawn is not None and tuple(drawn[0].get_at((80, 45)))[:3] == BLUE
        paths[0].unlink()
        assert r.show(slides[0], T0 + 2, image_path=paths[0], wait=False)  # decoded once, kept
        drawn = r.render(T0 + 2, WALL)
        assert drawn is not None and tuple(drawn[0].get_at((80, 45)))[:3] == RED
        assert cache.decodes == 2


def test_prefetch_makes_room_before_decoding(tmp_path: Path) -> None:
    per_image = 40 * 30 * 3
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"i{i}.png")
        Image.new("RGB", (40, 30), (i * 60, 0, 0)).save(paths[-1])
    with ImageCache(2 * per_image + 40 * 30 * 4) as cache:  # two pictures and a decode's working one
        for i in range(2):
            cache.load_now(i, paths[i], (40, 30), "stretch", (0, 0, 0))
        assert cache.bytes_used == 2 * per_image
        assert cache.prefetch(2, paths[2], (40, 30), "stretch", (0, 0, 0))
        assert 1 not in cache and cache.bytes_used == per_image  # evicted (most recently used) before the decode starts
        wait_until(lambda: 2 in cache, 5, "the prefetched picture")
        assert cache.bytes_used == 2 * per_image


def test_decoded_pictures_are_packed_rgb_and_wrapped_without_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    Image.new("RGB", (32, 24), (10, 200, 30)).save(path)
    assert len(decode_image(path, (32, 24), "contain", (0, 0, 0)).data) == 32 * 24 * 3
    with ImageCache(1 << 20) as cache:
        raw = cache.load_now("a", path, (32, 24), "contain", (0, 0, 0))
        assert raw.get_bitsize() == 24 and cache.bytes_used == 32 * 24 * 3
        assert tuple(raw.get_at((3, 3)))[:3] == (10, 200, 30)


def test_the_line_cache_is_bounded_in_bytes() -> None:
    painter = TextPainter(open_face(None))
    for minute in range(60):  # a full-screen clock draws a new big line every minute
        painter.render_line(f"12:{minute:02d}", 400, (255, 255, 255))
    assert painter._lines.used <= painter._lines.limit


def test_png_output_keeps_one_buffer_and_copies_only_changed_rows(tmp_path: Path) -> None:
    frame = pygame.Surface((64, 32)).convert()
    frame.fill(RED)
    out = PngOutput(tmp_path / "f.png", (64, 32), min_interval=0.0)
    with out:
        out.show(frame, None)
        assert out.wait_idle(5)
        buffer = out._pixels
        frame.fill(BLUE, pygame.Rect(0, 10, 64, 4))
        frame.fill((0, 255, 0), pygame.Rect(0, 20, 64, 4))  # changed, but not reported: not copied
        out.show(frame, [pygame.Rect(0, 10, 64, 4)])
        assert out.wait_idle(5)
        assert out._pixels is buffer
    with Image.open(tmp_path / "f.png") as img:
        img = img.convert("RGB")
        assert img.getpixel((5, 11)) == BLUE and img.getpixel((5, 21)) == RED and img.getpixel((5, 0)) == RED


def test_fbdev_sysfs_root_comes_from_the_environment_for_development(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SYSFS_ROOT_ENV, raising=False)
    assert default_sysfs_root() == Path("/sys")
    device, sysfs = make_fb(tmp_path, 8, 4, 16)
    monkeypatch.setenv(SYSFS_ROOT_ENV, str(sysfs))
    with open_fbdev(device) as out:
        assert out.size == (8, 4)
        frame = pygame.Surface((8, 4)).convert()
        frame.fill((255, 255, 255))
        out.show(frame, None)
    assert Path(device).read_bytes() == b"\xff\xff" * 8 * 4
