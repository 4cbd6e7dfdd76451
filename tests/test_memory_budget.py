"""What keeps the player's resident size down: software dimming done by the output while
it copies frames (no dimmed full-frame layer), and free heap pages given back.

Real pygame (dummy driver), a real PNG file and a plain file standing for /dev/fb0
with a fake sysfs tree. The expected dimmed colours are computed here with integer
arithmetic (pygame's BLEND_MULT: ``(c * level + 255) >> 8``, equal to the renderer's
own dimming), so the outputs cannot agree with themselves by mistake.
"""

from __future__ import annotations

import ctypes
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pygame
import pytest
from fake_framebuffer import make_fb
from PIL import Image

from player.content import Style, TextSlide
from player.layout import Layout, Zone
from player.render.compositor import Renderer
from player.render.outputs import init_display, open_output

WALL = datetime(2026, 11, 25, 22, 30, tzinfo=timezone.utc)
T0 = 1000.0
SIZE = (64, 36)
LEFT, RIGHT = (200, 100, 40), (9, 250, 131)
LAYOUT = Layout(name="halves", zones=(
    Zone(name="main", role="main", rect=(0, 0, 0.5, 1), padding=0),
    Zone(name="side", role="text", rect=(0.5, 0, 0.5, 1), padding=0, background=RIGHT),
), background=(0, 0, 0))


@pytest.fixture(autouse=True)
def display() -> Iterator[None]:
    init_display("png", None)
    yield
    pygame.display.quit()


def dimmed(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    level = round(255 * factor)
    r, g, b = ((c * level + 255) >> 8 for c in rgb)
    return (r, g, b)


def renderer(dim_output: object = None) -> Renderer:
    r = Renderer(SIZE, LAYOUT, tz=ZoneInfo("Europe/Paris"), transition="cut",
                 dim_output=dim_output)  # type: ignore[arg-type]
    r.show(TextSlide("s", title="", body=" ", style=Style(background=LEFT)), T0)
    return r


def fb_pixel(data: bytes, bpp: int, x: int, y: int) -> tuple[int, int, int]:
    """(r, g, b) of a pixel of a 32-bit XRGB8888 or 16-bit RGB565 framebuffer, full scale."""
    if bpp == 32:
        (word,) = struct.unpack_from("<I", data, (y * SIZE[0] + x) * 4)
        return ((word >> 16) & 255, (word >> 8) & 255, word & 255)
    (word,) = struct.unpack_from("<H", data, (y * SIZE[0] + x) * 2)
    return ((word >> 11) << 3, ((word >> 5) & 63) << 2, (word & 31) << 3)


def rgb565(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = rgb
    return ((r >> 3) << 3, (g >> 2) << 2, (b >> 3) << 3)


def test_png_output_dims_while_copying_and_the_frame_stays_as_drawn(tmp_path: Path) -> None:
    path = tmp_path / "frame.png"
    out = open_output("png", size=SIZE, path=path)
    try:
        r = renderer(dim_output=out.set_dim)  # type: ignore[attr-defined]
        result = r.render(T0, WALL)
        assert result is not None
        out.show(*result)
        assert out.wait_idle(5)
        r.set_dim(0.4)
        result = r.render(T0 + 1, WALL)
        assert result is not None and result[1] is None  # a new level redraws everything
        frame = result[0]
        # The renderer hands out its scene as drawn: no dimmed copy of the frame exists.
        assert tuple(frame.get_at((2, 2)))[:3] == LEFT
        out.show(*result)
        time.sleep(out.min_interval)
        out.flush(time.monotonic())
        assert out.wait_idle(5)
        with Image.open(path) as img:
            assert img.getpixel((2, 2)) == dimmed(LEFT, 0.4)
            assert img.getpixel((SIZE[0] - 3, 30)) == dimmed(RIGHT, 0.4)
        shot = r.snapshot()  # screenshots show what the panel shows
        assert tuple(shot.get_at((2, 2)))[:3] == dimmed(LEFT, 0.4)
    finally:
        out.close()


@pytest.mark.parametrize("bpp", [32, 16])
def test_fbdev_output_dims_the_whole_picture_like_the_renderer_would(tmp_path: Path, bpp: int) -> None:
    device, sysfs = make_fb(tmp_path, *SIZE, bpp, fill=0xA5)
    out = open_output("fbdev", size=None, device=device, sysfs_root=sysfs)
    try:
        r = renderer(dim_output=out.set_dim)  # type: ignore[attr-defined]
        out.show(*r.render(T0, WALL))  # type: ignore[misc]
        r.set_dim(0.25)
        frame, dirty = r.render(T0 + 1, WALL)  # type: ignore[misc]
        out.show(frame, [pygame.Rect(0, 0, 1, 1)])  # fewer rows than changed: all are written anyway
        data = Path(device).read_bytes()
        for (x, y), colour in (((2, 2), LEFT), ((SIZE[0] - 3, 30), RIGHT)):
            want = dimmed(colour, 0.25)
            assert fb_pixel(data, bpp, x, y) == (want if bpp == 32 else rgb565(want))
        # The same picture dimmed by the renderer itself, for an output that cannot.
        alone = renderer()
        alone.render(T0, WALL)
        alone.set_dim(0.25)
        own, _ = alone.render(T0 + 1, WALL)  # type: ignore[misc]
        assert tuple(own.get_at((2, 2)))[:3] == dimmed(LEFT, 0.25)
        r.set_dim(1.0)
        out.show(*r.render(T0 + 2, WALL))  # type: ignore[misc]
        back = fb_pixel(Path(device).read_bytes(), bpp, 2, 2)
        assert back == (LEFT if bpp == 32 else rgb565(LEFT))
    finally:
        out.close()


def test_a_new_renderer_starts_the_output_undimmed(tmp_path: Path) -> None:
    device, sysfs = make_fb(tmp_path, *SIZE, 32, fill=0xA5)
    out = open_output("fbdev", size=None, device=device, sysfs_root=sysfs)
    try:
        first = renderer(dim_output=out.set_dim)  # type: ignore[attr-defined]
        first.render(T0, WALL)
        first.set_dim(0.5)
        out.show(*first.render(T0 + 1, WALL))  # type: ignore[misc]
        assert fb_pixel(Path(device).read_bytes(), 32, 2, 2) == dimmed(LEFT, 0.5)
        second = renderer(dim_output=out.set_dim)  # type: ignore[attr-defined]
        out.show(*second.render(T0 + 2, WALL))  # type: ignore[misc]
        assert fb_pixel(Path(device).read_bytes(), 32, 2, 2) == LEFT
    finally:
        out.close()


# Run in a fresh interpreter: its heap has no holes left by earlier tests, so the freed
# blocks below stay between the pins instead of landing at the heap's top (where free()
# would give them back by itself and the check would prove nothing).
_HEAP_PROBE = """
import ctypes, re
from pathlib import Path
from player.memory import release_free_memory, tune_allocator

def rss_kb():
    return int(re.search(r"VmRSS:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))

tune_allocator()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
block = 16 * 1024  # below the mmap threshold: on the heap
blocks, pins = [], []
for _ in range(1024):  # 16 MB
    blocks.append(libc.malloc(block))
    ctypes.memset(blocks[-1], 1, block)  # resident
    pins.append(libc.malloc(64))  # kept: the freed blocks cannot merge into a free top
for b in blocks:
    libc.free(b)
before = rss_kb()
released = release_free_memory()
print(released, before, rss_kb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_release_free_memory_gives_back_free_pages_in_the_middle_of_the_heap() -> None:
    try:
        ctypes.CDLL(None).gnu_get_libc_version  # noqa: B018
    except (OSError, AttributeError):
        pytest.skip("not glibc")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", _HEAP_PROBE], cwd=root, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "", "MALLOC_ARENA_MAX": ""})
    assert done.returncode == 0, done.stderr
    released, before, after = done.stdout.split()
    assert released == "True"
    assert int(before) - int(after) >= 8 * 1024, (before, after)  # of the 16 MB freed
