"""Image decoding (fits, EXIF, transparency, bad files) and the byte-bounded image cache."""

from __future__ import annotations

import gc
import io
import struct
import tempfile
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Hashable
from pathlib import Path

import pygame
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from player.errors import AssetError
from player.render.images import DecodedImage, ImageCache, decode_image

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def pixel(img: DecodedImage, x: int, y: int) -> tuple[int, int, int]:
    i = (y * img.size[0] + x) * 3
    return img.data[i], img.data[i + 1], img.data[i + 2]


def near(a: tuple[int, ...], b: tuple[int, ...], tol: int = 6) -> bool:
    return all(abs(p - q) <= tol for p, q in zip(a, b))


def save(image: Image.Image, path: Path, **kw: object) -> Path:
    image.save(path, **kw)
    return path


def halves(size: tuple[int, int], first: tuple[int, int, int], second: tuple[int, int, int],
           vertical: bool = True) -> Image.Image:
    """Left/right (vertical=True) or top/bottom halves in two colours."""
    w, h = size
    im = Image.new("RGB", size, second)
    im.paste(first, (0, 0, w // 2, h) if vertical else (0, 0, w, h // 2))
    return im


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


# ------------------------------------------------------------------ fits


def test_contain_letterboxes_on_the_background(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (200, 100), RED), tmp_path / "wide.png")
    img = decode_image(path, (100, 100), "contain", BLUE)
    assert img.size == (100, 100) and img.nbytes == 100 * 100 * 3
    assert pixel(img, 50, 2) == BLUE and pixel(img, 50, 97) == BLUE  # bars above and below
    assert near(pixel(img, 50, 50), RED) and near(pixel(img, 2, 50), RED)  # full width
    assert near(pixel(img, 50, 26), RED) and pixel(img, 50, 24) == BLUE  # picture spans rows 25..74


def test_cover_crops_the_centre(tmp_path: Path) -> None:
    im = Image.new("RGB", (400, 100), GREEN)
    im.paste(RED, (150, 0, 250, 100))  # only the middle 100 px survive a cover crop into a square
    img = decode_image(save(im, tmp_path / "band.png"), (100, 100), "cover", BLUE)
    for x in (3, 50, 96):
        assert near(pixel(img, x, 50), RED, tol=12), x
    assert all(pixel(img, x, y) != BLUE for x in (0, 99) for y in (0, 99))


def test_stretch_fills_without_keeping_proportions(tmp_path: Path) -> None:
    path = save(halves((200, 100), RED, GREEN), tmp_path / "halves.png")
    img = decode_image(path, (100, 300), "stretch", BLUE)
    assert near(pixel(img, 10, 150), RED) and near(pixel(img, 90, 150), GREEN)
    assert near(pixel(img, 10, 1), RED) and near(pixel(img, 90, 298), GREEN)


def test_exif_rotated_jpeg_is_shown_upright(tmp_path: Path) -> None:
    # Stored landscape, top red / bottom blue, tagged "rotate 90° clockwise to display":
    # upright it is portrait, blue on the left and red on the right.
    stored = halves((200, 100), RED, BLUE, vertical=False)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(stored, tmp_path / "phone.jpg", exif=exif, quality=95)
    img = decode_image(path, (100, 200), "contain", WHITE)
    assert near(pixel(img, 15, 100), BLUE, tol=20) and near(pixel(img, 85, 100), RED, tol=20)
    assert all(not near(pixel(img, 50, y), WHITE) for y in (1, 198))
    # The same as Pillow's own reference transpose.
    with Image.open(path) as ref:
        upright = ImageOps.exif_transpose(ref).convert("RGB").resize((100, 200))
    assert near(upright.getpixel((15, 100)), pixel(img, 15, 100), tol=20)


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_every_exif_orientation_matches_pillows_transpose(tmp_path: Path, orientation: int) -> None:
    im = Image.new("RGB", (120, 80), BLUE)
    im.paste(RED, (0, 0, 40, 40))  # a marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(im, tmp_path / "o.png", exif=exif)
    with Image.open(path) as ref:
        upright = ImageOps.exif_transpose(ref).convert("RGB")
    img = decode_image(path, upright.size, "stretch", WHITE)
    for x, y in ((5, 5), (upright.size[0] - 5, 5), (5, upright.size[1] - 5),
                 (upright.size[0] - 5, upright.size[1] - 5)):
        assert near(pixel(img, x, y), upright.getpixel((x, y)), tol=10), (orientation, x, y)


def test_png_transparency_is_composited_over_the_background(tmp_path: Path) -> None:
    im = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (50, 0, 100, 50))
    im.paste((255, 0, 0, 128), (50, 50, 100, 100))
    img = decode_image(save(im, tmp_path / "alpha.png"), (100, 100), "stretch", BLUE)
    assert pixel(img, 10, 10) == BLUE and pixel(img, 10, 90) == BLUE
    assert near(pixel(img, 80, 20), RED)
    assert near(pixel(img, 80, 80), (128, 0, 127), tol=4)  # half red, half background


def test_palette_transparency_and_grey_images(tmp_path: Path) -> None:
    p = Image.new("P", (10, 10), 0)
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.paste(1, (5, 0, 10, 10))
    img = decode_image(save(p, tmp_path / "p.png", transparency=0), (10, 10), "stretch", BLUE)
    assert pixel(img, 1, 5) == BLUE and near(pixel(img, 8, 5), GREEN)
    grey = decode_image(save(Image.new("L", (8, 8), 200), tmp_path / "l.png"), (4, 4), "cover", BLUE)
    assert near(pixel(grey, 2, 2), (200, 200, 200))


def test_big_jpeg_is_decoded_reduced_and_still_right(tmp_path: Path) -> None:
    path = save(halves((4000, 3000), RED, GREEN), tmp_path / "big.jpg", quality=90)
    img = decode_image(path, (400, 300), "contain", BLUE)
    assert img.size == (400, 300)
    assert near(pixel(img, 50, 150), RED, tol=20) and near(pixel(img, 350, 150), GREEN, tol=20)


# ------------------------------------------------------------------ bad files


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` but holds almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("dims", [(8000, 6000), (10000, 10000), (30000, 30000)])
def test_decompression_bombs_are_refused_naming_the_file(tmp_path: Path, dims: tuple[int, int]) -> None:
    # Our own limit, Pillow's warning zone and Pillow's own refusal all end in AssetError.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(*dims))
    started = time.perf_counter()
    with pytest.raises(AssetError, match="bomb.png"):
        decode_image(path, (100, 100), "contain", BLUE)
    assert time.perf_counter() - started < 0.5  # refused from the header, nothing allocated


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (100, 100), RED), tmp_path / "small.png")
    with pytest.raises(AssetError, match="small.png.*limit"):
        decode_image(path, (10, 10), "contain", BLUE, max_pixels=5000)


def test_truncated_corrupt_and_missing_files_raise_asset_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    halves((300, 200), RED, GREEN).save(buf, "JPEG")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + b"nonsense" * 40)
    for path in (truncated, garbage, tmp_path / "absent.png"):
        with pytest.raises(AssetError, match=path.name):
            decode_image(path, (50, 50), "cover", BLUE)


def test_bad_arguments_are_value_errors(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (4, 4)), tmp_path / "x.png")
    with pytest.raises(ValueError):
        decode_image(path, (0, 10), "contain", BLUE)
    with pytest.raises(ValueError):
        decode_image(path, (10, 10), "zoom", BLUE)


def _valid_files() -> list[bytes]:
    out = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP"):
        buf = io.BytesIO()
        halves((40, 30), RED, GREEN).save(buf, fmt)
        out.append(buf.getvalue())
    return out


VALID = _valid_files()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=600),
    st.tuples(st.sampled_from(VALID), st.floats(0, 1)).map(lambda t: t[0][: int(len(t[0]) * t[1])]),
    st.tuples(st.sampled_from(VALID), st.integers(0, 10_000), st.integers(0, 255)).map(
        lambda t: t[0][: t[1] % len(t[0])] + bytes([t[2]]) + t[0][t[1] % len(t[0]) + 1:]),
))
def test_any_bytes_decode_exactly_or_raise_asset_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.img"
        path.write_bytes(data)
        try:
            img = decode_image(path, (16, 12), "contain", BLUE)
        except AssetError as exc:
            assert "fuzz.img" in str(exc)
        else:
            assert img.size == (16, 12) and len(img.data) == 16 * 12 * 3


# ------------------------------------------------------------------ cache


def make_images(folder: Path, count: int, size: tuple[int, int] = (64, 48)) -> list[Path]:
    paths = []
    for i in range(count):
        paths.append(save(Image.new("RGB", size, (i * 8 % 256, 255 - i * 8 % 256, 77)), folder / f"img{i}.png"))
    return paths


def test_prefetch_decodes_in_the_background_and_get_returns_a_surface(tmp_path: Path) -> None:
    (path,) = make_images(tmp_path, 1)
    like = pygame.Surface((1, 1), 0, 32)
    with ImageCache(1 << 20) as cache:
        assert cache.get("a", like) is None
        assert cache.prefetch("a", path, (32, 24), "stretch", BLUE)
        wait_for(lambda: "a" in cache)
        surface = cache.get("a", like)
        assert surface is not None and surface.get_size() == (32, 24)
        assert surface.get_bitsize() == 32
        assert tuple(surface.get_at((5, 5)))[:3] == (0, 255, 77)
        assert cache.get("a", like) is surface  # converted once, then reused
        assert cache.bytes_used == surface.get_pitch() * 24


def test_failed_prefetch_is_reported_and_get_raises(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    reported: list[tuple[Hashable, AssetError]] = []
    done = threading.Event()

    def on_error(key: Hashable, error: AssetError) -> None:
        reported.append((key, error))
        done.set()

    with ImageCache(1 << 20, on_error=on_error) as cache:
        cache.prefetch("bad", bad, (10, 10), "contain", BLUE)
        assert done.wait(5)
        assert reported[0][0] == "bad" and "broken.jpg" in str(reported[0][1])
        with pytest.raises(AssetError, match="broken.jpg"):
            cache.get("bad")
        assert cache.get("bad") is None  # reported once; a later prefetch may retry
        with pytest.raises(AssetError, match="broken.jpg"):
            cache.load_now("bad", bad, (10, 10), "contain", BLUE)
        assert len(cache) == 0


def test_load_now_decodes_synchronously(tmp_path: Path) -> None:
    (path,) = make_images(tmp_path, 1)
    with ImageCache(1 << 20) as cache:
        surface = cache.load_now("k", path, (20, 10), "cover", BLUE)
        assert surface.get_size() == (20, 10) and "k" in cache
        assert cache.load_now("k", path, (20, 10), "cover", BLUE) is surface


def test_memory_stays_bounded_over_many_distinct_images(tmp_path: Path) -> None:
    paths = make_images(tmp_path, 30)
    size = (64, 48)
    per_image = 64 * 48 * 4
    like = pygame.Surface((1, 1), 0, 32)
    alive: list[weakref.ref[pygame.Surface]] = []
    with ImageCache(3 * per_image) as cache:
        for i, path in enumerate(paths):
            # Half through the background worker, half synchronously, like a real playlist.
            if i % 2:
                cache.prefetch(i, path, size, "contain", BLUE)
                wait_for(lambda: i in cache)
                surface = cache.get(i, like)
            else:
                surface = cache.load_now(i, path, size, "contain", BLUE, like=like)
            assert surface is not None
            alive.append(weakref.ref(surface))
            del surface
            assert cache.bytes_used <= 3 * per_image
            assert len(cache) <= 3
        gc.collect()
        still = [ref for ref in alive if ref() is not None]
        assert len(still) <= 3  # evicted surfaces are really freed
        # The most recently used goes first (pictures are shown in turn): the first ones
        # stay, with the last, until the cache is told they are no longer in use.
        assert alive.index(still[0]) == 0 and alive.index(still[-1]) == 29
        cache.retain(lambda key: key == 29)
        gc.collect()
        assert [alive.index(ref) for ref in alive if ref() is not None] == [29] and len(cache) == 1


def test_prefetch_never_blocks_when_the_queue_is_full(tmp_path: Path) -> None:
    path = save(halves((1600, 1200), RED, GREEN), tmp_path / "slow.png")
    with ImageCache(64 << 20, queue_size=1) as cache:
        results = [cache.prefetch(i, path, (800, 600), "contain", BLUE) for i in range(20)]
        # A blocking put would have waited its turn and queued every one of them.
        assert results[0] is True and False in results
        queued = [i for i, ok in enumerate(results) if ok]
        wait_for(lambda: not any(cache.pending(i) for i in queued))


def test_close_is_safe_twice_and_stops_prefetching(tmp_path: Path) -> None:
    (path,) = make_images(tmp_path, 1)
    cache = ImageCache(1 << 20)
    cache.prefetch("a", path, (8, 8), "contain", BLUE)
    cache.close()
    cache.close()
    assert cache.prefetch("b", path, (8, 8), "contain", BLUE) is False
