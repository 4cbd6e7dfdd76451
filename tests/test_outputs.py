"""Display outputs on real pygame (dummy driver), fake sysfs trees and plain files.

Expected framebuffer bytes are computed here with bit arithmetic and ``struct``, not
with pygame, so a wrong conversion in the output cannot agree with itself.
"""

from __future__ import annotations

import os
import random
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import fake_framebuffer
import pygame
import pytest
from PIL import Image

from player.errors import DisplayUnavailable, MissingDependency, OutputError
from player.render.outputs import (
    LedOptions,
    PngOutput,
    init_display,
    open_output,
    row_spans,
)
from player.render.outputs import _platform_driver
from player.render.outputs.png import encode_png

FAKES = Path(__file__).resolve().parent / "fakes"
SENTINEL = 0xA5
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0),
           (255, 128, 7), (10, 20, 30), (200, 100, 50), (1, 254, 129), (77, 3, 240)]


@pytest.fixture(autouse=True)
def display() -> Iterator[None]:
    init_display("png", None)
    yield
    pygame.display.quit()


def wait_for(cond, timeout: float, step: float = 0.005) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def make_frame(w: int, h: int, alpha: bool = False) -> pygame.Surface:
    """A frame whose pixel (x, y) is COLOURS[(x + 3*y) % len(COLOURS)]."""
    frame = pygame.Surface((w, h), pygame.SRCALPHA) if alpha else pygame.Surface((w, h)).convert()
    for y in range(h):
        for x in range(w):
            frame.set_at((x, y), colour_at(x, y))
    return frame


def colour_at(x: int, y: int) -> tuple[int, int, int]:
    return COLOURS[(x + 3 * y) % len(COLOURS)]


# -- fbdev ----------------------------------------------------------------------

def make_fb(root: Path, w: int, h: int, bpp: int, stride: int, name: str = "fb0",
            create_device: bool = True) -> tuple[str, Path]:
    """A fake /sys/class/graphics/fbN and a plain file standing for /dev/fbN, full of SENTINEL."""
    return fake_framebuffer.make_fb(root, w, h, bpp, stride, name, create_device, fill=SENTINEL)


def pixel_bytes(bpp: int, rgb: tuple[int, int, int]) -> bytes:
    r, g, b = rgb
    if bpp == 16:
        return struct.pack("<H", ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3))
    if bpp == 24:
        return bytes((b, g, r))
    return struct.pack("<I", (r << 16) | (g << 8) | b)  # XRGB8888: B, G, R, X


def expected_row(bpp: int, w: int, y: int) -> bytes:
    return b"".join(pixel_bytes(bpp, colour_at(x, y)) for x in range(w))


def rows_of(data: bytes, stride: int, h: int) -> list[bytes]:
    return [data[y * stride:(y + 1) * stride] for y in range(h)]


def strip_x(row: bytes) -> bytes:
    """Drop the X byte of XRGB8888 pixels: the display ignores it."""
    return b"".join(row[i:i + 3] for i in range(0, len(row), 4))


@pytest.mark.parametrize("bpp,stride,alpha", [
    (16, 16, False),   # RGB565, 5 px = 10 bytes + 6 bytes of padding
    (32, 32, False),   # XRGB8888, 20 bytes + 12 of padding, frame in the device format
    (32, 32, True),    # XRGB8888 from a per-pixel-alpha frame (converted in C)
    (24, 20, False),   # RGB888 stored B,G,R, 15 bytes + 5 of padding
])
def test_fbdev_writes_exact_bytes_with_padded_stride(
        tmp_path: Path, bpp: int, stride: int, alpha: bool) -> None:
    w, h = 5, 3
    device, sysfs = make_fb(tmp_path, w, h, bpp, stride)
    with open_output("fbdev", size=None, device=device, sysfs_root=sysfs) as out:
        assert out.size == (w, h)
        out.show(make_frame(w, h, alpha), None)
        data = Path(device).read_bytes()
    Bpp = bpp // 8
    for y, row in enumerate(rows_of(data, stride, h)):
        pixels, padding = row[:w * Bpp], row[w * Bpp:]
        want = expected_row(bpp, w, y)
        if bpp == 32:
            assert strip_x(pixels) == strip_x(want), f"row {y}"
        else:
            assert pixels == want, f"row {y}"
        assert padding == bytes([SENTINEL]) * (stride - w * Bpp), f"padding of row {y}"


def test_rgb565_known_values(tmp_path: Path) -> None:
    device, sysfs = make_fb(tmp_path, 3, 1, 16, 6)
    frame = pygame.Surface((3, 1)).convert()
    for x, c in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        frame.set_at((x, 0), c)
    with open_output("fbdev", size=None, device=device, sysfs_root=sysfs) as out:
        out.show(frame, None)
    assert Path(device).read_bytes() == bytes.fromhex("00f8" "e007" "1f00")


@pytest.mark.parametrize("bpp,stride", [(16, 14), (16, 12), (32, 28), (32, 24)])
def test_fbdev_writes_only_changed_rows(tmp_path: Path, bpp: int, stride: int) -> None:
    w, h = 6, 5
    device, sysfs = make_fb(tmp_path, w, h, bpp, stride)
    frame = make_frame(w, h)
    with open_output("fbdev", size=None, device=device, sysfs_root=sysfs) as out:
        out.show(frame, None)
        with open(device, "r+b") as f:  # the file is shared with the mapping
            f.write(bytes([SENTINEL]) * (stride * h))
        out.show(frame, [pygame.Rect(1, 2, 2, 1), pygame.Rect(4, 3, 1, 1)])
        data = Path(device).read_bytes()
    Bpp = bpp // 8
    for y, row in enumerate(rows_of(data, stride, h)):
        if y in (2, 3):  # whole rows are copied, including their unchanged pixels
            got, want = row[:w * Bpp], expected_row(bpp, w, y)
            assert (strip_x(got) == strip_x(want)) if bpp == 32 else (got == want), y
            assert row[w * Bpp:] == bytes([SENTINEL]) * (stride - w * Bpp)
        else:
            assert row == bytes([SENTINEL]) * stride, f"row {y} was written"


def test_fbdev_nothing_changed_writes_nothing(tmp_path: Path) -> None:
    device, sysfs = make_fb(tmp_path, 4, 2, 16, 8)
    with open_output("fbdev", size=None, device=device, sysfs_root=sysfs) as out:
        out.show(make_frame(4, 2), [])  # the first frame is written whole regardless
        assert Path(device).read_bytes()[:8] == expected_row(16, 4, 0)
        Path(device).write_bytes(bytes([SENTINEL]) * 16)
        out.show(make_frame(4, 2), [])
        assert Path(device).read_bytes() == bytes([SENTINEL]) * 16


def test_fbdev_size_comes_from_the_device(tmp_path: Path) -> None:
    device, sysfs = make_fb(tmp_path, 8, 6, 32, 32)
    with open_output("fbdev", size=(1920, 1080), device=device, sysfs_root=sysfs) as out:
        assert out.size == (8, 6)
        assert "8x6" in out.status and out.healthy
        with pytest.raises(OutputError, match="1920x1080"):
            out.show(pygame.Surface((1920, 1080)), None)


def test_fbdev_absent_then_appearing(tmp_path: Path) -> None:
    def plug_in() -> None:
        make_fb(tmp_path, 4, 2, 16, 8)
        plugged.set()

    plugged = threading.Event()
    timer = threading.Timer(0.3, plug_in)
    start = time.monotonic()
    timer.start()
    try:
        out = open_output("fbdev", size=None, device=str(tmp_path / "dev" / "fb0"),
                          sysfs_root=tmp_path / "sys", wait_s=5)
    finally:
        timer.join()
    elapsed = time.monotonic() - start
    with out:
        assert plugged.is_set()
        assert 0.3 <= elapsed < 5
        assert out.size == (4, 2)


def test_fbdev_absent_gives_up_after_wait(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(DisplayUnavailable, match="waiting for .*fb1") as info:
        open_output("fbdev", size=None, device=str(tmp_path / "fb1"),
                    sysfs_root=tmp_path / "sys", wait_s=0.3)
    assert 0.3 <= time.monotonic() - start < 2
    assert isinstance(info.value, OutputError)
    # sysfs present, device node still missing: also "waiting", not a hard error
    _, sysfs = make_fb(tmp_path, 4, 2, 16, 8, name="fb2", create_device=False)
    with pytest.raises(DisplayUnavailable, match="no such device"):
        open_output("fbdev", size=None, device=str(tmp_path / "dev" / "fb2"),
                    sysfs_root=sysfs)


def test_fbdev_bad_geometry_is_an_error(tmp_path: Path) -> None:
    device, sysfs = make_fb(tmp_path, 4, 2, 8, 4)
    with pytest.raises(OutputError, match="8 bits per pixel"):
        open_output("fbdev", size=None, device=device, sysfs_root=sysfs)
    (sysfs / "class/graphics/fb0/bits_per_pixel").write_text("32\n")
    with pytest.raises(OutputError, match="inconsistent"):  # stride 4 < 4 px * 4 bytes
        open_output("fbdev", size=None, device=device, sysfs_root=sysfs)
    (sysfs / "class/graphics/fb0/stride").write_text("16\n")
    with pytest.raises(OutputError, match="cannot map"):  # file smaller than 2 rows
        open_output("fbdev", size=None, device=device, sysfs_root=sysfs)


def test_fbdev_close_is_idempotent(tmp_path: Path) -> None:
    device, sysfs = make_fb(tmp_path, 4, 2, 16, 8)
    out = open_output("fbdev", size=None, device=device, sysfs_root=sysfs)
    out.close()
    out.close()
    assert not out.healthy
    with pytest.raises(OutputError, match="closed"):
        out.show(make_frame(4, 2), None)


def test_row_spans_merge_and_clip() -> None:
    rects = [pygame.Rect(0, 8, 3, 4), pygame.Rect(0, 0, 1, 2), pygame.Rect(5, 10, 9, 9),
             pygame.Rect(0, 30, 4, 4), pygame.Rect(2, 2, 0, 5)]
    assert row_spans(rects, (10, 20)) == [(0, 2), (8, 19)]
    assert row_spans(None, (10, 20)) == [(0, 20)]
    assert row_spans([], (10, 20)) == []


# -- png ------------------------------------------------------------------------

def png_pixels(path: Path) -> Image.Image:
    with Image.open(path) as img:
        img.load()
        return img.convert("RGB")


def test_png_writes_the_picture(tmp_path: Path) -> None:
    path = tmp_path / "frame.png"
    with open_output("png", size=(5, 3), path=path) as out:
        out.show(make_frame(5, 3), None)
        assert out.wait_idle(5)
    img = png_pixels(path)
    assert img.size == (5, 3)
    for y in range(3):
        for x in range(5):
            assert img.getpixel((x, y)) == colour_at(x, y)
    assert [p.name for p in tmp_path.iterdir()] == ["frame.png"]  # no temp files left


def test_png_requires_path_and_size(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="display.path"):
        open_output("png", size=(4, 4))
    with pytest.raises(OutputError, match="display.size"):
        open_output("png", size=None, path=tmp_path / "f.png")
    with pytest.raises(OutputError, match="does not exist"):
        open_output("png", size=(4, 4), path=tmp_path / "nowhere" / "f.png")


def run_loop_until(out: PngOutput, end: float) -> None:
    """What the main loop does between frames: sleep to the deadline, then flush."""
    while True:
        now = time.monotonic()
        if now >= end:
            return
        deadline = out.next_deadline()
        if deadline is not None and deadline <= now:
            out.flush(now)
            continue
        time.sleep(max(0.0, min(end, deadline if deadline is not None else end) - now))


def test_png_burst_is_rate_limited_and_the_last_picture_lands_within_1s(
        tmp_path: Path) -> None:
    path = tmp_path / "frame.png"
    frame = pygame.Surface((64, 32)).convert()
    seen: set[tuple[int, int]] = set()
    stop = threading.Event()

    def watch() -> None:  # independent count of file replacements
        while not stop.is_set():
            try:
                st = os.stat(path)
                seen.add((st.st_ino, st.st_mtime_ns))
            except FileNotFoundError:
                pass
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with open_output("png", size=(64, 32), path=path) as out:
            assert isinstance(out, PngOutput)
            start = time.monotonic()
            for i in range(60):  # 60 changes in one second
                frame.fill((i * 4, 255 - i * 4, 7))
                out.show(frame, [pygame.Rect(0, 0, 64, 32)])
                run_loop_until(out, start + (i + 1) / 60)
            last_change = time.monotonic()
            final = (59 * 4, 255 - 59 * 4, 7)

            def final_on_disk() -> bool:
                run_loop_until(out, time.monotonic() + 0.005)
                try:
                    return png_pixels(path).getpixel((10, 10)) == final
                except (OSError, SyntaxError):
                    return False

            assert wait_for(final_on_disk, 1.0), "final picture not written within 1 s"
            assert time.monotonic() - last_change <= 1.0
            assert out.wait_idle(2)
            writes = out.writes
    finally:
        stop.set()
        watcher.join()
    assert 2 <= writes <= 3, writes
    assert 1 <= len(seen) <= writes


def test_png_never_exposes_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "frame.png"
    rng = random.Random(4)
    frame = pygame.Surface((160, 120)).convert()
    reads, failures = 0, []
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                png_pixels(path)
                reads += 1
            except FileNotFoundError:
                pass
            except Exception as e:  # a truncated or half-written PNG
                failures.append(repr(e))

    out = PngOutput(path, (160, 120), min_interval=0.0)  # as many writes as possible
    out.show(frame, None)
    assert out.wait_idle(5)
    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(40):
            for _ in range(30):  # noisy picture: a slow, large encode
                frame.fill([rng.randrange(256) for _ in range(3)],
                           pygame.Rect(rng.randrange(160), rng.randrange(120), 20, 20))
            out.show(frame, None)
            assert out.wait_idle(5)
    finally:
        stop.set()
        t.join()
        out.close()
    assert failures == []
    assert out.writes >= 20 and reads >= 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.png"]


def test_png_no_write_when_nothing_changed(tmp_path: Path) -> None:
    path = tmp_path / "frame.png"
    frame = make_frame(8, 8)
    out = PngOutput(path, (8, 8), min_interval=0.05)
    with out:
        out.show(frame, None)
        assert out.wait_idle(5) and out.writes == 1
        mtime = path.stat().st_mtime_ns
        for _ in range(5):
            out.show(frame, [])  # nothing dirty
        assert out.next_deadline() is None
        time.sleep(0.06)  # past the window, so an identical picture is handed over
        out.show(frame, None)
        assert out.wait_idle(5)
        assert out.writes == 1 and path.stat().st_mtime_ns == mtime


def test_png_close_writes_the_pending_picture(tmp_path: Path) -> None:
    path = tmp_path / "frame.png"
    frame = pygame.Surface((4, 4)).convert()
    out = PngOutput(path, (4, 4), min_interval=0.5)
    frame.fill((255, 0, 0))
    out.show(frame, None)
    frame.fill((0, 0, 255))
    out.show(frame, None)  # inside the window: pending
    assert out.next_deadline() is not None
    out.close()
    out.close()
    assert png_pixels(path).getpixel((0, 0)) == (0, 0, 255)


def test_png_show_does_not_wait_for_the_encoder(tmp_path: Path) -> None:
    rng = random.Random(1)
    frame = pygame.Surface((1920, 1080)).convert()
    for _ in range(400):
        frame.fill([rng.randrange(256) for _ in range(3)],
                   pygame.Rect(rng.randrange(1920), rng.randrange(1080), 90, 60))
    raw = pygame.image.tobytes(frame, "BGRA")
    t0 = time.perf_counter()
    encode_png(raw, (1920, 1080))
    encode_s = time.perf_counter() - t0
    with open_output("png", size=(1920, 1080), path=tmp_path / "f.png") as out:
        t0 = time.perf_counter()
        out.show(frame, None)
        show_s = time.perf_counter() - t0
        assert out.wait_idle(10)
    assert show_s < encode_s / 2, (show_s, encode_s)


# -- ledmatrix ------------------------------------------------------------------

@pytest.fixture
def rgbmatrix(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.delitem(sys.modules, "rgbmatrix", raising=False)
    import rgbmatrix as module

    return module


def test_ledmatrix_shows_the_frame(rgbmatrix) -> None:  # type: ignore[no-untyped-def]
    led = LedOptions(rows=4, cols=5, chain_length=2, gpio_slowdown=4)
    with open_output("ledmatrix", size=None, led=led) as out:
        assert out.size == (10, 4)
        matrix = out.matrix  # type: ignore[attr-defined]
        assert matrix.options.gpio_slowdown == 4
        assert matrix.options.drop_privileges == 0
        out.show(make_frame(10, 4), None)
        assert matrix.shown_rows() == [[colour_at(x, y) for x in range(10)]
                                       for y in range(4)]
        swaps = matrix.swaps
        out.show(make_frame(10, 4), [])  # nothing changed: no redraw
        assert matrix.swaps == swaps
    assert matrix.cleared == 1


def test_ledmatrix_brightness_redraws(rgbmatrix) -> None:  # type: ignore[no-untyped-def]
    with open_output("ledmatrix", size=None, led=LedOptions(rows=4, cols=5)) as out:
        matrix = out.matrix  # type: ignore[attr-defined]
        out.show(make_frame(5, 4), None)
        # The library's trap: a new level alone leaves the lit pixels as they were.
        matrix.brightness = 30
        assert matrix.shown_pixel(0, 0) == colour_at(0, 0)
        assert out.set_brightness(50.4) is True
        assert matrix.brightness == 50
        for y in range(4):
            for x in range(5):
                assert matrix.shown_pixel(x, y) == tuple(v * 50 // 100 for v in colour_at(x, y))
        assert out.set_brightness(150) is True and matrix.brightness == 100
        assert matrix.shown_pixel(3, 2) == colour_at(3, 2)


def test_ledmatrix_sleeps_cleared_at_brightness_zero_and_wakes_with_its_picture(rgbmatrix) -> None:  # type: ignore[no-untyped-def]
    with open_output("ledmatrix", size=None, led=LedOptions(rows=4, cols=5)) as out:
        matrix = out.matrix  # type: ignore[attr-defined]
        out.show(make_frame(5, 4), None)
        assert "cleared" in out.set_power(False)
        assert matrix.brightness == 0 and matrix.shown_rows() == [[(0, 0, 0)] * 5] * 4
        out.set_brightness(40)  # the brightness controller keeps working while it sleeps
        assert matrix.brightness == 0 and matrix.shown_pixel(1, 1) == (0, 0, 0)
        out.set_power(True)
        assert matrix.brightness == 40
        assert matrix.shown_pixel(3, 2) == tuple(v * 40 // 100 for v in colour_at(3, 2))


def test_ledmatrix_driver_failure_is_an_output_error(rgbmatrix) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OutputError, match="did not start"):
        open_output("ledmatrix", size=None, led=LedOptions(hardware_mapping="no-such-hat"))


def test_ledmatrix_missing_module_says_how_to_build_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rgbmatrix", None)  # "import rgbmatrix" fails
    with pytest.raises(MissingDependency) as info:
        open_output("ledmatrix", size=None)
    msg = str(info.value)
    assert isinstance(info.value, ImportError)
    assert "rpi-rgb-led-matrix" in msg and "not on PyPI" in msg
    assert "make build-python" in msg and sys.executable in msg
    assert "fbdev, sdl or png" in msg


# -- sdl and display set-up -----------------------------------------------------

def test_sdl_window_under_dummy_driver() -> None:
    pygame.display.quit()
    init_display("sdl", (16, 8))
    with open_output("sdl", size=(16, 8)) as out:
        window = pygame.display.get_surface()
        assert out.size == (16, 8) == window.get_size()
        window.fill((9, 9, 9))
        frame = pygame.Surface((16, 8)).convert()
        frame.fill((200, 10, 20))
        out.show(frame, [pygame.Rect(2, 1, 3, 2)])
        assert window.get_at((2, 1))[:3] == (200, 10, 20)
        assert window.get_at((4, 2))[:3] == (200, 10, 20)
        assert window.get_at((5, 1))[:3] == (9, 9, 9)  # outside the dirty rect
        out.show(frame, None)
        assert window.get_at((15, 7))[:3] == (200, 10, 20)

        assert not out.closed_by_user
        deadline = out.next_deadline()
        assert deadline is not None
        pygame.event.post(pygame.event.Event(pygame.QUIT))
        out.flush(deadline)
        assert out.closed_by_user and not out.healthy
        assert out.next_deadline() is None
    out.close()


def test_init_display_for_offscreen_outputs_uses_dummy() -> None:
    pygame.display.quit()
    init_display("fbdev", None)
    assert pygame.display.get_driver() == "dummy"
    assert pygame.Surface((3, 3)).convert().get_bitsize() == 32
    with pytest.raises(OutputError, match="unknown display output"):
        init_display("hdmi", None)


def test_platform_driver_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    assert _platform_driver() == "kmsdrm"
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert _platform_driver() is None
    monkeypatch.delenv("WAYLAND_DISPLAY")
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")
    assert _platform_driver() is None
