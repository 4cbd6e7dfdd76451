"""Frames of the ticker alone drawn straight onto the output's own pixels (fbdev, sdl).

The picture must be the same, pixel for pixel, as when every frame is drawn into the
renderer's frame and copied: checked by driving two renderers through the same times
and events, one drawing directly, and comparing their real (fake) framebuffers.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pygame
import pytest
from fake_framebuffer import make_fb

from player.alerts import Alert
from player.content import TextSlide
from player.layout import load_layout
from player.render.alert_view import AlertView
from player.render.compositor import Renderer
from player.render.fonts import open_face
from player.render.outputs.base import Output
from player.render.outputs.fbdev import FbdevOutput, open_fbdev
from player.render.text import TextPainter
from player.render.ticker import Ticker

SIZE = (640, 360)
PARIS = ZoneInfo("Europe/Paris")
TICKER = ["Collecte des encombrants jeudi 3 décembre", "Inscriptions jusqu’au 31 décembre"]


def slide(title: str, body: str) -> TextSlide:
    return TextSlide(id=title, duration=60, title=title, body=body)


def open_fb(root: Path, bpp: int = 32) -> FbdevOutput:
    device, sysfs = make_fb(root, *SIZE, bpp)
    return open_fbdev(device, sysfs)


def colour_bytes(out: FbdevOutput) -> bytes:
    """The device's pixels without the X byte (the display ignores it)."""
    data = bytes(out._mm[:])
    return b"".join(data[i:i + 3] for i in range(0, len(data), 4))


def draw(renderer: Renderer, out: Output, now: float, wall: datetime) -> str | None:
    """What the player's loop does with a frame; which way it went."""
    result = renderer.render(now, wall)
    if result is None:
        return None
    frame, dirty = result
    if renderer.direct_drawn:
        out.show_direct(renderer.direct_drawn)
        return "direct"
    out.show(frame, dirty)
    return "copied"


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[Renderer, FbdevOutput, Renderer, FbdevOutput]]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    direct_out, copied_out = open_fb(tmp_path / "a"), open_fb(tmp_path / "b")
    layout = load_layout("landscape")
    direct = Renderer(SIZE, layout, tz=PARIS, fps=60, transition="fade", transition_s=0.3,
                      dim_output=direct_out.set_dim, direct=direct_out.direct_surface)
    copied = Renderer(SIZE, layout, tz=PARIS, fps=60, transition="fade", transition_s=0.3,
                      dim_output=copied_out.set_dim)
    try:
        yield direct, direct_out, copied, copied_out
    finally:
        for r in (direct, copied):
            r.close()
        for o in (direct_out, copied_out):
            o.close()


def test_direct_frames_give_the_same_picture_as_copied_frames(twins) -> None:  # type: ignore[no-untyped-def]
    direct, direct_out, copied, copied_out = twins
    start = 100.0
    wall0 = datetime(2026, 12, 3, 9, 59, 58, tzinfo=timezone.utc)  # the clock turns during the run
    for r in (direct, copied):
        r.set_ticker(TICKER, start)
        r.show(slide("Marché de Noël", "Place de la Mairie"), start)
    banner_alert = Alert(id="crue-1", scope="all", scope_name="", level="warning", title="Crue de l'Isère",
                         body="Évitez les berges")
    direct_view, copied_view = AlertView(None, flash=False), AlertView(None, flash=False)
    ways: dict[str, int] = {}
    checked = 0
    t = start
    for i in range(400):  # 400 frames at 60 fps: 6.7 s
        t = start + i / 60
        wall = wall0 + timedelta(seconds=t - start)
        if i == 150:  # a new slide, faded in while the ticker runs
            for r in (direct, copied):
                r.show(slide("Conseil municipal", "Jeudi à 19 h"), t)
        if i == 260:  # the night's dimming, done by the output while it copies
            for r in (direct, copied):
                r.set_dim(0.5)
        if i == 300:
            for r in (direct, copied):
                r.set_dim(1.0)
        if i == 330:  # an alert banner over the scene (the ticker stops beneath it), then gone
            for r, view in ((direct, direct_view), (copied, copied_view)):
                view.set_alerts(banner_alert, now=t, mode="banner")
                r.set_overlay(view)
        if i == 360:
            for r in (direct, copied):
                r.set_overlay(None)
        a, b = draw(direct, direct_out, t, wall), draw(copied, copied_out, t, wall)
        assert (a is None) == (b is None), f"frame {i}: {a} / {b}"
        assert b in (None, "copied")
        if a is not None:
            ways[a] = ways.get(a, 0) + 1
        if i % 7 == 0 or a != "direct":
            assert colour_bytes(direct_out) == colour_bytes(copied_out), f"frame {i} ({a}) differs"
            checked += 1
    assert colour_bytes(direct_out) == colour_bytes(copied_out)
    # Most frames were the ticker alone; the others (first frame, clock minute, fade,
    # dimming) were copied.
    assert ways.get("direct", 0) > 250, ways
    assert ways.get("copied", 0) >= 40, ways  # (the banner's 30 frames among them)
    assert checked > 60
    # A screenshot shows the band as the screen does (the scene caught up).
    shot = direct.snapshot()
    assert pygame.image.tobytes(shot, "RGB") == pygame.image.tobytes(copied.snapshot(), "RGB")


def test_a_direct_frame_writes_only_the_rows_glyphs_can_touch(twins) -> None:  # type: ignore[no-untyped-def]
    direct, direct_out, _, _ = twins
    direct.set_ticker(TICKER, 0.0)
    direct.show(slide("Marché", "Place"), 0.0)
    wall = datetime(2026, 12, 3, 10, 0, 5, tzinfo=timezone.utc)
    assert draw(direct, direct_out, 0.0, wall) == "copied"
    band = direct._band
    before = bytes(direct_out._mm[:])
    assert draw(direct, direct_out, 0.5, wall) == "direct"
    assert direct.direct_drawn == [band]
    after = bytes(direct_out._mm[:])
    stride = SIZE[0] * 4
    changed = [y for y in range(SIZE[1]) if before[y * stride:(y + 1) * stride] != after[y * stride:(y + 1) * stride]]
    ticker = direct._ticker
    assert ticker is not None
    first, end = ticker._ink
    assert changed, "the band did not move"
    assert band.top + first <= min(changed) and max(changed) < band.top + end
    assert 0 < end - first <= band.h


def test_no_direct_frame_where_another_zone_overlaps_the_band(tmp_path: Path) -> None:
    from player.layout import Layout, Zone

    base = load_layout("landscape")
    clock_on_band = Zone(name="clock", role="clock", rect=(0.8, 0.9, 0.2, 0.1))
    layout = Layout(name="overlap", zones=tuple(z for z in base.zones if z.role != "clock") + (clock_on_band,),
                    background=base.background)
    out = open_fb(tmp_path)
    r = Renderer(SIZE, layout, tz=PARIS, fps=60, transition="cut", direct=out.direct_surface)
    try:
        r.set_ticker(TICKER, 0.0)
        r.show(slide("Marché", "Place"), 0.0)
        wall = datetime(2026, 12, 3, 10, 0, 5, tzinfo=timezone.utc)
        ways = {draw(r, out, i / 60, wall) for i in range(60)}
        assert "direct" not in ways
    finally:
        r.close()
        out.close()


def test_fbdev_offers_its_pixels_only_when_they_show_the_frames_as_drawn(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    out = open_fb(tmp_path / "a")
    frame = pygame.Surface(SIZE)
    frame.fill((10, 20, 30))
    assert out.direct_surface() is None  # nothing shown yet: the first frame is written whole
    out.show(frame, None)
    target = out.direct_surface()
    assert target is not None and target.get_size() == SIZE
    target.fill((200, 100, 50), pygame.Rect(0, 0, 4, 1))
    assert bytes(out._mm[0:3]) == bytes((50, 100, 200))  # B, G, R in the device's memory
    assert out.show_direct([pygame.Rect(0, 0, 4, 1)]) > 0
    out.set_dim(0.5)
    assert out.direct_surface() is None  # dimmed while copying: drawing there would be bright
    out.set_dim(1.0)
    out.show(frame, None)
    assert out.direct_surface() is not None
    out.set_power(False)
    assert out.direct_surface() is None
    out.set_power(True)
    out.show(frame, None)
    assert out.direct_surface() is target  # one surface for the output's life
    del target
    out.close()  # the mapping is released although a surface was made on it
    assert out._mm.closed
    (tmp_path / "b").mkdir()
    rgb565 = open_fb(tmp_path / "b", bpp=16)
    try:
        rgb565.show(pygame.Surface(SIZE), None)
        assert rgb565.direct_surface() is None  # another format: converted while copying
    finally:
        rgb565.close()


def test_sdl_window_is_drawn_on_directly() -> None:
    from player.render.outputs import init_display
    from player.render.outputs.sdl import open_sdl

    init_display("sdl", SIZE)
    out = open_sdl(SIZE)
    try:
        r = Renderer(SIZE, load_layout("landscape"), tz=PARIS, fps=60, transition="cut",
                     direct=out.direct_surface)
        r.set_ticker(TICKER, 0.0)
        r.show(slide("Marché", "Place"), 0.0)
        wall = datetime(2026, 12, 3, 10, 0, 5, tzinfo=timezone.utc)
        assert draw(r, out, 0.0, wall) == "copied"
        assert draw(r, out, 0.5, wall) == "direct"
        # The window holds the band as the renderer's own picture of it does.
        band = r._band
        window = out.window.subsurface(band)
        assert pygame.image.tobytes(window, "RGB") == pygame.image.tobytes(r.snapshot().subsurface(band), "RGB")
        assert out.frames_shown == 2
        r.close()
    finally:
        out.close()


def test_ticker_strips_take_the_target_format_once(tmp_path: Path) -> None:
    painter = TextPainter(open_face(None))
    ticker = Ticker(painter, TICKER, (640, 40), (0, 0, 0), (255, 204, 0), 160, 0.0)
    scene = pygame.Surface((640, 40))
    ticker.draw(scene, pygame.Rect(0, 0, 640, 40), 0.0)
    assert ticker.rendered_pixels > 0
    target = pygame.image.frombuffer(bytearray(640 * 40 * 4), (640, 40), "BGRA")
    ticker.match_format(target)
    assert ticker.rendered_pixels == 0  # made again, in the target's format
    ticker.draw(target, pygame.Rect(0, 0, 640, 40), 1.0)
    held = ticker.rendered_pixels
    ticker.match_format(target)
    assert ticker.rendered_pixels == held
    ticker.draw(scene, pygame.Rect(0, 0, 640, 40), 1.0)  # still drawable into the scene
    assert pygame.image.tobytes(scene, "RGB") == pygame.image.tobytes(target, "RGB")
