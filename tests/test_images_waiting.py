"""A picture not decoded in time: the screen keeps what it shows, then shows it (renderer level).

Real renderer (SDL's dummy driver), real decoding in the image cache's thread.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
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

WALL = datetime(2026, 12, 3, 17, 30, 10, tzinfo=timezone.utc)
T0 = 1000.0
GREEN, RED = (20, 160, 40), (220, 30, 30)
MAIN = Layout(name="main-only", zones=(Zone(name="main", role="main", rect=(0, 0, 1, 1), padding=0),))


def shown(r: Renderer, now: float) -> tuple[int, int, int]:
    r.render(now, WALL)
    colour = r.snapshot().get_at((r.logical_size[0] // 2, r.logical_size[1] // 2))
    return colour[0], colour[1], colour[2]


def near(a: tuple[int, ...], b: tuple[int, ...], tol: int = 10) -> bool:
    return all(abs(p - q) <= tol for p, q in zip(a, b))


def slow_picture(path: Path, colour: tuple[int, int, int]) -> Path:
    """A picture that takes a while to decode (12 MP of PNG), ``colour`` in the middle."""
    picture = Image.effect_noise((4000, 3000), 40).convert("RGB")
    picture.paste(colour, (1000, 750, 3000, 2250))
    picture.save(path, compress_level=1)
    return path


def poll_until_shown(r: Renderer, start: float) -> float:
    deadline = time.monotonic() + 20
    now = start
    while not r.poll(now):
        assert time.monotonic() < deadline, "the picture never came"
        assert r.waiting is not None
        time.sleep(0.01)
        now += 0.01
    return now


def test_a_late_picture_waits_with_the_previous_slide_on_screen(tmp_path: Path) -> None:
    path = slow_picture(tmp_path / "affiche.png", RED)
    slide = ImageSlide(id="affiche", asset="ab" * 32, fit="contain")
    with ImageCache(64 << 20) as cache:
        r = Renderer((320, 180), MAIN, tz=ZoneInfo("Europe/Paris"), transition="cut", images=cache)
        r.show(TextSlide("avant", title="", body=" ", style=Style(background=GREEN)), T0)
        assert near(shown(r, T0), GREEN)
        assert r.show(slide, T0 + 1, image_path=path, wait=False) is False  # not decoded yet
        assert r.waiting == slide and cache.pending(("image", slide.asset, (320, 180), "contain", (0, 0, 0)))
        deadline = r.next_deadline(T0 + 1, WALL)
        assert deadline is not None and deadline <= T0 + 1.05  # the loop looks for it again soon
        assert near(shown(r, T0 + 1), GREEN)  # the previous slide stays meanwhile
        at = poll_until_shown(r, T0 + 1)
        assert r.waiting is None and near(shown(r, at), RED)
        # Shown again later: no decode, at once.
        r.show(TextSlide("entre", title="", body=" ", style=Style(background=GREEN)), at + 1)
        assert r.show(slide, at + 2, image_path=path, wait=False) is True
        assert near(shown(r, at + 2), RED) and cache.decodes == 1


def test_a_picture_that_cannot_be_decoded_is_reported_by_poll_and_the_screen_stays(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    with ImageCache(8 << 20) as cache:
        r = Renderer((160, 90), MAIN, tz=ZoneInfo("Europe/Paris"), transition="cut", images=cache)
        r.show(TextSlide("avant", title="", body=" ", style=Style(background=GREEN)), T0)
        assert near(shown(r, T0), GREEN)
        assert r.show(ImageSlide(id="x", asset="cd" * 32), T0 + 1, image_path=broken, wait=False) is False
        deadline = time.monotonic() + 10
        with pytest.raises(AssetError, match="broken.png"):
            while not r.poll(T0 + 1):
                assert time.monotonic() < deadline
                time.sleep(0.01)
        assert r.waiting is None and near(shown(r, T0 + 2), GREEN)


def test_a_layout_change_redraws_the_picture_once_decoded_at_the_new_size(tmp_path: Path) -> None:
    path = slow_picture(tmp_path / "affiche.png", RED)
    slide = ImageSlide(id="affiche", asset="ab" * 32, fit="cover")
    with ImageCache(64 << 20) as cache:
        r = Renderer((320, 180), MAIN, tz=ZoneInfo("Europe/Paris"), transition="cut", images=cache)
        assert r.show(slide, T0, image_path=path, wait=False) is False
        now = poll_until_shown(r, T0)
        assert near(shown(r, now), RED)
        r.set_layout(load_layout("landscape"))  # a smaller main zone: decoded again, in the background
        deadline = time.monotonic() + 20
        while not near(shown(r, now), RED):
            assert time.monotonic() < deadline
            time.sleep(0.01)
            now += 0.01
        assert cache.decodes == 2
        main = pygame.Rect(load_layout("landscape").main.pixels(320, 180))
        assert near(tuple(r.snapshot().get_at(main.center))[:3], RED)
