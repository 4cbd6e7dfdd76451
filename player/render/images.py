"""Image decoding (Pillow, any thread) and a byte-bounded cache of ready surfaces.

:func:`decode_image` turns a file into raw RGB pixels of exactly the requested
size: EXIF orientation applied, fitted with ``contain`` (letterboxed on the
background), ``cover`` (centre crop) or ``stretch``, transparency composited over
the background. It uses Pillow only, so it is safe in a worker thread.

A large picture is reduced while it is decoded, so that a panel's memory bounds what
it can show rather than the picture's size: a JPEG is decoded at 1/2, 1/4 or 1/8 of
its size by the JPEG decoder itself (Pillow's ``draft``); a PNG is decoded in strips
of rows, each box-averaged (``Image.reduce``) into a smaller picture before the next
strip is decoded, so the full-size pixels never exist at once (a 40 MP PNG would be
160 MB inside Pillow). Other formats, and interlaced PNGs (whose rows come in seven
passes over the whole picture), are decoded whole: they are refused above
:data:`MAX_WHOLE_PIXELS`.

:class:`ImageCache` decodes in one background thread and hands out pygame surfaces
on the calling (main) thread, which never decodes. Pictures are kept as packed RGB
(6 MB at 1920x1080, against 8 MB as a 32-bit surface), and room is made for a
picture and its decode's working pictures before it is decoded, so that what is held
never exceeds the bound. Pictures stay until room is needed, so a slide that comes
round again is not decoded again::

    cache = ImageCache(default_cache_bytes((1920, 1080)))
    cache.prefetch("poster", Path("poster.jpg"), (1920, 950), "contain", (0, 0, 0))
    ...
    surface = cache.get("poster")   # None while it is being decoded: show it later
"""

from __future__ import annotations

import math
import os
import struct
import threading
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Union

import pygame
from PIL import Image, ImageFile

from ..errors import AssetError

RGB = tuple[int, int, int]
FITS = ("contain", "cover", "stretch")
MAX_PIXELS = 40_000_000  # refuse sources above this (a 40 MP photo is already generous)
MAX_WHOLE_PIXELS = 16_000_000
"""Largest picture decoded whole (formats other than JPEG and non-interlaced PNG): 64 MB
of pixels inside Pillow, which with the rest of the player stays within 120 MB."""
REDUCED_PIXELS = 8_000_000
"""A large JPEG or PNG is reduced while decoding to at most this many pixels (32 MB),
and to no less than twice the size the panel needs when that is smaller."""

# EXIF orientation tag value -> the transpose that makes the picture upright
# (the same table as PIL.ImageOps.exif_transpose, applied here to the already
# resized picture, which is much cheaper than transposing the full-size source).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112


_STRIP_BYTES = 1 << 18  # packing works through strips of about this many bytes
_PNG_STRIP_BYTES = 1 << 21  # a PNG is decoded through strips of about this many bytes of rows


@dataclass(frozen=True)
class DecodedImage:
    """Packed RGB pixels (3 bytes per pixel, rows top to bottom) of ``size``."""

    size: tuple[int, int]
    data: bytes | bytearray

    @property
    def nbytes(self) -> int:
        return len(self.data)


def default_cache_bytes(frame: tuple[int, int], meminfo: Path = Path("/proc/meminfo")) -> int:
    """The decoded-image cache's size for a panel of ``frame`` pixels, from the device's memory.

    A thirty-second of the memory (at most a quarter of what is available now, at most
    256 MB), and never less than two full frames of 32-bit pixels: on a 512 MB Zero 2 W
    the two frames (16.6 MB at 1080p: the player stays within its 80 MB there), 64 MB on a
    2 GB Pi 4, 128 MB on a 4 GB one. Two frames when the memory cannot be read (not
    Linux). ``display.image_cache_mb`` overrides it.
    """
    floor = 2 * max(1, frame[0]) * max(1, frame[1]) * 4
    total = available = None
    try:
        with open(meminfo, encoding="ascii", errors="replace") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("MemTotal", "MemAvailable"):
                    kib = int(rest.split()[0]) * 1024
                    if name == "MemTotal":
                        total = kib
                    else:
                        available = kib
    except (OSError, ValueError, IndexError):
        return floor
    if total is None:
        return floor
    share = total // 32
    if available is not None:
        share = min(share, available // 4)
    return max(floor, min(share, 256 * 2**20))


def decode_image(path: Path, size: tuple[int, int], fit: str, background: RGB,
                 *, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Decode ``path`` into exactly ``size`` pixels, upright and opaque.

    Raises :class:`AssetError` naming the file when it is missing, unreadable,
    corrupt, truncated or larger than ``max_pixels`` (or, for a format that can only
    be decoded whole, than :data:`MAX_WHOLE_PIXELS`); ``ValueError`` for a bad
    ``fit`` or ``size``.
    """
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {size}")
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    try:
        with Image.open(path) as source:
            return _decode(source, size, fit, background, max_pixels, path)
    except AssetError:
        raise
    except FileNotFoundError:
        raise AssetError(f"image {path} not found") from None
    except Image.DecompressionBombError as exc:
        raise AssetError(f"image {path} refused: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure on untrusted bytes is a bad asset
        raise AssetError(f"cannot decode image {path}: {exc}") from None


def _decode(source: Image.Image, size: tuple[int, int], fit: str, background: RGB,
            max_pixels: int, path: Path) -> DecodedImage:
    w0, h0 = source.size
    if w0 * h0 > max_pixels:
        raise AssetError(f"image {path} refused: {w0}x{h0} pixels is more than the limit "
                         f"of {max_pixels} (decompression bomb guard)")
    if w0 <= 0 or h0 <= 0:
        raise AssetError(f"image {path} has no pixels")
    header = None
    if isinstance(source, ImageFile.ImageFile) and source.format == "PNG":
        header = _png_header(source.fp)
    # (Pillow's getexif() on a PNG decodes the whole picture to look for EXIF after it.)
    orientation = _orientation(source) if header is None else _png_orientation(getattr(source, "fp", None))
    # Work in the file's own orientation: every fit is symmetric under the
    # final transpose, so only the target's width and height swap.
    swap = orientation in (5, 6, 7, 8)
    tw, th = (size[1], size[0]) if swap else size
    need = _needed_source_size((w0, h0), (tw, th), fit)
    factor = _reduce_factor((w0, h0), need)
    if isinstance(source, ImageFile.ImageFile) and header is not None and not header.interlaced and factor > 1:
        image = _png_reduced(source, header, factor, background)
        source.close()
    else:
        if source.format == "JPEG":
            source.draft("RGB", _jpeg_draft_request((w0, h0), need))  # DCT scaling: 1/2, 1/4 or 1/8
        elif w0 * h0 > MAX_WHOLE_PIXELS:
            kind = "an interlaced PNG" if header is not None else f"a {source.format or 'picture'} file"
            raise AssetError(f"image {path} refused: {w0}x{h0} pixels is more than the {MAX_WHOLE_PIXELS} "
                             f"that {kind} can be decoded at within the panel's memory "
                             f"(JPEG and non-interlaced PNG are reduced while decoding, up to {MAX_PIXELS})")
        source.load()
        if header is None:
            orientation = _orientation(source) or orientation
        image = _opaque_or_rgba(source)
        if image is not source:
            source.close()  # the converted copy is all that is needed from here on
    w, h = image.size
    # At most two full pictures are alive at once (a 1920x1080 one is 8 MB inside
    # Pillow): each step drops its input as soon as its output exists.
    if fit == "stretch":
        fitted = _resize(image, (tw, th))
        offset = (0, 0)
    elif fit == "cover":
        k = max(tw / w, th / h)
        cw, ch = tw / k, th / k
        # (clamped: rounding may put an edge a hair outside the picture, which Pillow refuses)
        box = (max(0.0, (w - cw) / 2), max(0.0, (h - ch) / 2), min(float(w), (w + cw) / 2),
               min(float(h), (h + ch) / 2))
        fitted = _resize(image, (tw, th), box)
        offset = (0, 0)
    else:
        k = min(tw / w, th / h)
        fw, fh = max(1, min(tw, round(w * k))), max(1, min(th, round(h * k)))
        fitted = _resize(image, (fw, fh))
        offset = ((tw - fw) // 2, (th - fh) // 2)
    if fitted is not image:
        image.close()
    if fitted.mode == "RGB" and fitted.size == (tw, th):
        out = fitted
    else:
        out = Image.new("RGB", (tw, th), background)
        out.paste(fitted, offset, fitted if fitted.mode == "RGBA" else None)
        fitted.close()
    if orientation in _ORIENTATION:
        turned = out.transpose(_ORIENTATION[orientation])
        out.close()
        out = turned
    assert out.size == size
    try:
        return DecodedImage(size=size, data=_pack(out))
    finally:
        out.close()


JPEG_SHORTFALL = 0.85
"""A JPEG whose decode at the scale giving the needed size would exceed
:data:`REDUCED_PIXELS` is decoded at the next smaller scale when that gives at least
this share of the needed size (then enlarged by at most 1/0.85): a 40 MP JPEG shown
with ``cover`` is decoded at 2.5 MP instead of 10 (40 MB inside Pillow)."""


def _jpeg_draft_request(source: tuple[int, int], need: tuple[int, int]) -> tuple[int, int]:
    """The size to ask of the JPEG decoder's DCT scaling (``Image.draft``) for ``need``.

    Pillow's JPEG ``draft`` picks the largest scale (1/8, 1/4, 1/2) that keeps at least
    the size asked; see :data:`JPEG_SHORTFALL` for when a smaller one is asked instead.
    """
    (w, h), (nw, nh) = source, need
    room = min(w // max(1, nw), h // max(1, nh))
    scale = next((s for s in (8, 4, 2) if room >= s), 1)
    if scale < 8 and math.ceil(w / scale) * math.ceil(h / scale) > REDUCED_PIXELS:
        smaller = (w // (2 * scale), h // (2 * scale))
        if smaller[0] >= JPEG_SHORTFALL * nw and smaller[1] >= JPEG_SHORTFALL * nh:
            return smaller
    return need


def _reduce_factor(source: tuple[int, int], need: tuple[int, int]) -> int:
    """The integer factor a large picture is box-reduced by while decoding (1: not at all).

    The reduced picture keeps at least twice the needed size when it holds within
    :data:`REDUCED_PIXELS`, else as much as fits there, and never less than the
    needed size: the final Lanczos resampling then works on a picture of a few MB.
    """
    (w, h), (nw, nh) = source, need
    room = min(w / max(1, nw), h / max(1, nh))  # how many times larger than needed
    if room < 2:
        return 1
    factor = max(1, int(room / 2))
    while factor < int(room) and math.ceil(w / factor) * math.ceil(h / factor) > REDUCED_PIXELS:
        factor += 1
    return factor


# --------------------------------------------------------------------------- PNG in strips

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel

# Filtering works on bytes, ``bpp`` bytes per pixel (1 below 8 bits). Each strip of
# rows is unfiltered by Pillow's PNG decoder into a "carrier" picture whose pixels
# are exactly those bytes, so the raw rows (and the last one, which the next strip's
# filters refer to) can be read back. 16-bit samples are read twice, high bytes and
# low bytes.
_CARRIERS: dict[int, tuple[str, tuple[str, ...]]] = {
    1: ("L", ("L",)), 2: ("LA", ("LA",)), 3: ("RGB", ("RGB",)), 4: ("RGBA", ("RGBA",)),
    6: ("RGB", ("RGB;16B", "RGB;16L")), 8: ("RGBA", ("RGBA;16B", "RGBA;16L")),
}


@dataclass(frozen=True)
class _PngHeader:
    width: int
    height: int
    depth: int
    colour: int
    interlaced: bool

    @property
    def row_bytes(self) -> int:
        return (self.width * _PNG_CHANNELS[self.colour] * self.depth + 7) // 8

    @property
    def bpp(self) -> int:
        return max(1, _PNG_CHANNELS[self.colour] * self.depth // 8)


def _png_header(fp: IO[bytes] | None) -> _PngHeader | None:
    """The IHDR of the PNG open on ``fp`` (None if it cannot be read); the position is kept."""
    if fp is None:
        return None
    try:
        at = fp.tell()
        fp.seek(0)
        head = fp.read(29)
        fp.seek(at)
    except (OSError, ValueError):
        return None
    if len(head) < 29 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    if colour not in _PNG_CHANNELS or depth not in (1, 2, 4, 8, 16) or width <= 0 or height <= 0:
        return None
    header = _PngHeader(width, height, depth, colour, bool(interlace))
    return header if header.bpp in _CARRIERS else None


def _png_orientation(fp: IO[bytes] | None) -> int:
    """The EXIF orientation of a PNG (its eXIf chunk may come before or after the
    pixels), read by walking its chunks without decoding anything; 1 when none."""
    if fp is None:
        return 1
    try:
        at = fp.tell()
        try:
            fp.seek(8)
            for _ in range(100_000):
                head = fp.read(8)
                if len(head) < 8:
                    return 1
                length, kind = struct.unpack(">I4s", head)
                if kind == b"eXIf" and length <= 1 << 20:
                    exif = Image.Exif()
                    exif.load(fp.read(length))
                    value = exif.get(_EXIF_ORIENTATION, 1)
                    return value if isinstance(value, int) else 1
                if kind == b"IEND":
                    return 1
                fp.seek(length + 4, os.SEEK_CUR)
            return 1
        finally:
            fp.seek(at)
    except Exception:  # noqa: BLE001 - broken EXIF must not reject an otherwise good picture
        return 1


def _png_idat(fp: IO[bytes]) -> Iterator[bytes]:
    """The compressed pixel data of a PNG, chunk piece by chunk piece."""
    fp.seek(8)
    seen = False
    while True:
        head = fp.read(8)
        if len(head) < 8:
            raise ValueError("truncated PNG: no end of the pixel data")
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IDAT":
            seen = True
            left = length
            while left:
                piece = fp.read(min(left, 1 << 16))
                if not piece:
                    raise ValueError("truncated PNG data")
                left -= len(piece)
                yield piece
            fp.seek(4, os.SEEK_CUR)  # CRC
        elif kind == b"IEND" or (seen and kind != b"IDAT"):
            return
        else:
            fp.seek(length + 4, os.SEEK_CUR)


def _png_rows(fp: IO[bytes], header: _PngHeader, rows: int) -> Iterator[bytes]:
    """The filtered scanlines (a filter byte and ``row_bytes``), ``rows`` at a time, inflating
    no more than that ahead (a small file may inflate to gigabytes: never all at once)."""
    stride = header.row_bytes + 1
    left = header.height
    inflater = zlib.decompressobj()
    pending = bytearray()
    for piece in _png_idat(fp):
        data = piece
        while data and left:
            want = stride * min(rows, left)
            pending += inflater.decompress(data, max(1, want - len(pending)))
            data = inflater.unconsumed_tail
            while left and len(pending) >= stride * min(rows, left):
                n = min(rows, left)
                yield bytes(pending[:stride * n])
                del pending[:stride * n]
                left -= n
        if not left or inflater.eof:
            break
    if left:
        pending += inflater.flush()
        while left and len(pending) >= stride:
            n = min(rows, left, len(pending) // stride)
            yield bytes(pending[:stride * n])
            del pending[:stride * n]
            left -= n
    if left:
        raise ValueError(f"truncated PNG: {left} of {header.height} rows missing")


def _png_unfilter(filtered: bytes, seed: bytes, header: _PngHeader) -> bytes:
    """The raw bytes of ``filtered`` rows, ``seed`` being the raw row above them."""
    n = len(filtered) // (header.row_bytes + 1)
    mode, rawmodes = _CARRIERS[header.bpp]
    width = header.row_bytes // header.bpp
    stream = zlib.compress(b"\0" + seed + filtered, 0)  # stored: Pillow's decoder wants zlib
    planes = []
    for rawmode in rawmodes:
        with Image.frombytes(mode, (width, n + 1), stream, "zip", rawmode) as carrier:
            planes.append(carrier.tobytes("raw", mode))
    if len(planes) == 1:
        raw = planes[0]
    else:  # 16-bit samples: interleave the high and the low bytes
        both = bytearray(2 * len(planes[0]))
        both[0::2], both[1::2] = planes
        raw = bytes(both)
    return raw[header.row_bytes:]


def _png_reduced(source: ImageFile.ImageFile, header: _PngHeader, factor: int, background: RGB) -> Image.Image:
    """The PNG open as ``source``, box-reduced by ``factor`` and made opaque over
    ``background``, decoded strip by strip so that its full-size pixels never exist."""
    fp = source.fp
    assert fp is not None
    tile = source.tile[0] if source.tile else None
    rawmode = tile.args if tile is not None and isinstance(tile.args, str) else source.mode
    w, h = header.width, header.height
    reduced = Image.new("RGB", (math.ceil(w / factor), math.ceil(h / factor)), background)
    rows = max(1, _PNG_STRIP_BYTES // (header.row_bytes + 1) // factor) * factor
    seed = bytes(header.row_bytes)
    top = 0
    palette = source.palette
    transparency = source.info.get("transparency")
    for filtered in _png_rows(fp, header, rows):
        raw = _png_unfilter(filtered, seed, header)
        n = len(raw) // header.row_bytes
        seed = raw[-header.row_bytes:]
        strip = Image.frombytes(source.mode, (w, n), raw, "raw", rawmode)
        del raw
        if palette is not None and strip.mode == "P":
            strip.putpalette(palette.tobytes(), palette.mode)
        if transparency is not None:
            strip.info["transparency"] = transparency
        opaque = _opaque_or_rgba(strip)
        if opaque.mode == "RGBA":
            flat = Image.new("RGB", opaque.size, background)
            flat.paste(opaque, (0, 0), opaque)
            opaque = flat
        with opaque.reduce(factor) as small:
            reduced.paste(small, (0, top // factor))
        top += n
    return reduced


# --------------------------------------------------------------------------- fitting


_TWO_PASS_PIXELS = 4_000_000  # a larger source is resampled in two passes, freed in between


def _resize(image: Image.Image, size: tuple[int, int],
            box: tuple[float, float, float, float] | None = None) -> Image.Image:
    """``image`` resampled to ``size`` (Lanczos); the image itself when nothing would change.

    A large ``image`` (it belongs to the caller, who closes it after) is closed here
    already: Pillow resamples one way then the other, holding the source, the first
    pass and the result at once. Done as two calls, the first pass the smaller way
    round and on the rows (or columns) the second needs, the source is freed before
    the result exists: 8 to 25 MB less at the peak at 1920x1080. (The same filter;
    pixels may differ from Pillow's single call by the rounding of the 8-bit first
    pass, a level or two on a photograph.)
    """
    if image.size == size and (box is None or box == (0, 0, *size)):
        return image
    w, h = image.size
    tw, th = size
    x0, y0, x1, y1 = box if box is not None else (0.0, 0.0, float(w), float(h))
    if w * h <= _TWO_PASS_PIXELS or (x1 - x0) >= 3 * tw or (y1 - y0) >= 3 * th:
        # Small, or reduced first by an integer factor (reducing_gap): one call.
        return image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    lanczos = Image.Resampling.LANCZOS
    # Lanczos reaches 3 source pixels each side, times the scale when reducing.
    my = math.ceil(3 * max(1.0, (y1 - y0) / th)) + 2
    mx = math.ceil(3 * max(1.0, (x1 - x0) / tw)) + 2
    top, bottom = max(0, math.floor(y0) - my), min(h, math.ceil(y1) + my)
    left, right = max(0, math.floor(x0) - mx), min(w, math.ceil(x1) + mx)
    if tw * (bottom - top) <= (right - left) * th:  # across first
        first = image.resize((tw, bottom - top), lanczos, box=(x0, top, x1, bottom))
        second = (0.0, y0 - top, float(tw), y1 - top)
    else:  # down first
        first = image.resize((right - left, th), lanczos, box=(left, y0, right, y1))
        second = (x0 - left, 0.0, x1 - left, float(th))
    image.close()
    try:
        return first.resize(size, lanczos, box=second)
    finally:
        first.close()


def _pack(image: Image.Image) -> bytearray:
    """The pixels of an RGB ``image`` as packed bytes, without a second full-size copy.

    ``Image.tobytes`` gathers the picture in chunks and joins them (twice its size at
    the peak); here strips are packed straight into the one result buffer.
    """
    w, h = image.size
    row = w * 3
    data = bytearray(row * h)
    rows = max(1, _STRIP_BYTES // row)
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        with image.crop((0, top, w, bottom)) as strip:
            data[top * row:bottom * row] = strip.tobytes()
    return data


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - broken EXIF must not reject an otherwise good picture
        return 1
    return value if isinstance(value, int) else 1


def _needed_source_size(source: tuple[int, int], target: tuple[int, int], fit: str) -> tuple[int, int]:
    """The smallest decoded size that still gives full-quality output for ``fit``."""
    (w, h), (tw, th) = source, target
    if fit == "stretch":
        return tw, th
    k = max(tw / w, th / h) if fit == "cover" else min(tw / w, th / h)
    return max(1, math.ceil(w * k)), max(1, math.ceil(h * k))


def _opaque_or_rgba(image: Image.Image) -> Image.Image:
    """RGB, or RGBA when the picture has transparency (resized premultiplied by Pillow)."""
    if image.mode == "RGBA":
        return image
    if image.mode in ("LA", "La", "PA", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    if image.mode == "RGB":
        return image
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, I;16...


# --------------------------------------------------------------------------- cache

_Entry = Union[DecodedImage, pygame.Surface]
ErrorCallback = Callable[[Hashable, AssetError], None]


@dataclass(frozen=True)
class _Job:
    key: Hashable
    path: Path
    size: tuple[int, int]
    fit: str
    background: RGB


def _decode_bytes(size: tuple[int, int]) -> int:
    """Room a decode to ``size`` needs while it runs: the result (3 bytes a pixel) and
    Pillow's picture it is packed from (4 bytes a pixel), alive together at the end."""
    return int(size[0]) * int(size[1]) * 7


def _surface_bytes(surface: pygame.Surface) -> int:
    return surface.get_pitch() * surface.get_height()


class ImageCache:
    """Decoded images, bounded in bytes of pixels, decoded in one background thread.

    Keys are chosen by the caller and must identify the picture *and* its
    rendering (asset, size, fit, background). Only the thread that calls
    :meth:`get` (the main loop) ever touches pygame; decoding happens only in the
    worker thread (and in :meth:`load_now`, for tools that may wait).

    Pictures stay until room is needed for another. Then the most recently used one
    goes first: pictures are shown in turn, so the one just shown is the one needed
    last (with room for three of five pictures, two are never decoded again, where
    "least recently used" would decode every one each time round). Pictures no longer
    in use are dropped with :meth:`retain`.

    ``on_error`` is called from the worker thread when a decode fails; it must only
    hand the error over (e.g. put it on a queue). The failure is also kept so that
    :meth:`get` for that key raises it once.
    """

    def __init__(self, max_bytes: int, *, on_error: ErrorCallback | None = None, queue_size: int = 4,
                 max_pixels: int = MAX_PIXELS) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.decodes = 0  # pictures decoded (or failed) so far
        self._on_error = on_error
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._used = 0
        self._failed: OrderedDict[Hashable, AssetError] = OrderedDict()
        self._queued: set[Hashable] = set()  # waiting in _jobs or being decoded
        self._graveyard: list[pygame.Surface] = []  # evicted by the worker, freed on the main thread
        self._jobs: deque[_Job] = deque()
        self._queue_size = max(1, queue_size)
        self._worker: threading.Thread | None = None
        self._closed = False

    # ----------------------------------------------------------- public

    @property
    def bytes_used(self) -> int:
        """Bytes of pixels currently held (decoded buffers and surfaces)."""
        with self._lock:
            return self._used

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def pending(self, key: Hashable) -> bool:
        """True while ``key`` waits in the queue or is being decoded."""
        with self._lock:
            return key in self._queued

    def prefetch(self, key: Hashable, path: Path, size: tuple[int, int], fit: str, background: RGB,
                 *, urgent: bool = False) -> bool:
        """Queue a decode in the background; never blocks.

        Room for the new picture (and its decode's working picture) is made first, so
        that the pixels held, including the one being decoded, stay within the bound. ``urgent`` puts it at the head of the
        queue (a slide waits for it), making room in a full queue by dropping the last
        job. Returns False when the queue is full (not urgent) or the cache closed,
        True when queued or already available.
        """
        self._bury()
        with self._lock:
            if self._closed:
                return False
            if key in self._entries or key in self._failed:
                return True
            if key in self._queued:
                if urgent:
                    for job in self._jobs:
                        if job.key == key:
                            self._jobs.remove(job)
                            self._jobs.appendleft(job)
                            break
                return True
            if len(self._jobs) >= self._queue_size:
                if not urgent:
                    return False
                self._queued.discard(self._jobs.pop().key)
            self._make_room(_decode_bytes(size))
            job = _Job(key, Path(path), (int(size[0]), int(size[1])), fit,
                       (int(background[0]), int(background[1]), int(background[2])))
            if urgent:
                self._jobs.appendleft(job)
            else:
                self._jobs.append(job)
            self._queued.add(key)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="image-decoder", daemon=True)
                self._worker.start()
            self._wake.notify()
        self._bury()
        return True

    def get(self, key: Hashable, like: pygame.Surface | None = None) -> pygame.Surface | None:
        """The ready surface for ``key``, or None if not decoded yet.

        With ``like``, the picture is converted once to ``like``'s pixel format (worth it
        for a picture blitted again and again). Without, it is the decoded 24-bit pixels
        themselves, wrapped without a copy (for a picture blitted once in a while, e.g.
        into a scene: the blit converts on the fly and no second buffer is ever made).

        Raises :class:`AssetError` when the background decode of ``key`` failed.
        Main thread only. The surface stays owned by the cache: blit it, don't draw on it.
        """
        self._bury()
        with self._lock:
            error = self._failed.pop(key, None)
            if error is not None:
                raise error
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            if isinstance(entry, pygame.Surface) and (like is None or entry.get_bitsize() == like.get_bitsize()):
                return entry
        if isinstance(entry, pygame.Surface):
            return entry  # wrapped earlier without a copy: good enough for one more blit
        surface = _to_surface(entry, like)
        with self._lock:
            if self._entries.get(key) is entry:
                self._entries[key] = surface
                self._used += _surface_bytes(surface) - entry.nbytes
                self._trim(keep=key)
        self._bury()
        return surface

    def load_now(self, key: Hashable, path: Path, size: tuple[int, int], fit: str, background: RGB,
                 like: pygame.Surface | None = None) -> pygame.Surface:
        """The surface for ``key``, decoding synchronously if it is not ready.

        For tools and tests that may wait: the player's main loop never calls it (it
        shows a picture once :meth:`get` has it). Main thread only. Raises
        :class:`AssetError` when the image cannot be decoded.
        """
        try:
            ready = self.get(key, like)
        except AssetError:
            ready = None  # retry: the file may have been replaced since
        if ready is not None:
            return ready
        with self._lock:
            self._queued.discard(key)  # a background decode of it, queued or running, is not wanted now
            self._make_room(_decode_bytes(size))
            self.decodes += 1
        self._bury()
        decoded = decode_image(Path(path), size, fit, background, max_pixels=self.max_pixels)
        surface = _to_surface(decoded, like)
        del decoded
        with self._lock:
            self._failed.pop(key, None)
            self._store(key, surface, _surface_bytes(surface))
            self._trim(keep=key)
        self._bury()
        return surface

    def discard(self, key: Hashable) -> None:
        """Forget ``key``'s picture. Main thread."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._drop(entry)
        self._bury()

    def retain(self, keep: Callable[[Hashable], bool]) -> None:
        """Forget every picture whose key ``keep`` refuses (no longer in use). Main thread."""
        with self._lock:
            for key in [k for k in self._entries if not keep(k)]:
                self._drop(self._entries.pop(key))
            for key in [k for k in self._failed if not keep(k)]:
                del self._failed[key]
        self._bury()

    def clear(self) -> None:
        """Forget every picture (main thread)."""
        with self._lock:
            self._entries.clear()
            self._failed.clear()
            self._used = 0
        self._bury()

    def close(self) -> None:
        """Stop the worker thread; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.clear()
            self._wake.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join(timeout=5)
        self.clear()

    def __enter__(self) -> ImageCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- internals

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._jobs and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                job = self._jobs.popleft()
            self._run_job(job)  # in its own frame: nothing decoded stays referenced while waiting

    def _run_job(self, job: _Job) -> None:
        with self._lock:
            if job.key not in self._queued or job.key in self._entries or self._closed:
                self._queued.discard(job.key)  # loaded meanwhile by load_now(), or closing
                return
            self.decodes += 1
        result: DecodedImage | AssetError
        try:
            result = decode_image(job.path, job.size, job.fit, job.background, max_pixels=self.max_pixels)
        except AssetError as exc:
            result = exc
        except ValueError as exc:
            result = AssetError(f"image {job.path}: {exc}")
        with self._lock:
            wanted = job.key in self._queued
            self._queued.discard(job.key)
            if not wanted:
                return  # load_now() did it meanwhile: no second copy, no report
            if isinstance(result, DecodedImage) and job.key not in self._entries and not self._closed:
                self._store(job.key, result, result.nbytes)
                self._trim(keep=job.key)
            elif isinstance(result, AssetError):
                self._failed[job.key] = result
                while len(self._failed) > 64:
                    self._failed.popitem(last=False)
        if isinstance(result, AssetError) and self._on_error is not None:
            try:
                self._on_error(job.key, result)
            except Exception:  # noqa: BLE001 - a faulty reporter must not kill the decoder thread
                pass

    def _store(self, key: Hashable, entry: _Entry, nbytes: int) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._drop(old)
        self._entries[key] = entry
        self._used += nbytes

    def _victim(self, keep: Hashable = None) -> Hashable:
        """The entry to evict: the most recently used one but ``keep`` (lock held)."""
        for key in reversed(self._entries):
            if key != keep:
                return key
        return keep

    def _make_room(self, nbytes: int) -> None:
        """Evict entries until ``nbytes`` more fit within the bound (lock held)."""
        while self._entries and self._used + nbytes > self.max_bytes:
            self._drop(self._entries.pop(self._victim()))

    def _trim(self, keep: Hashable) -> None:
        """Evict entries until within budget; ``keep`` always stays (lock held)."""
        while self._used > self.max_bytes and len(self._entries) > 1:
            self._drop(self._entries.pop(self._victim(keep)))

    def _drop(self, entry: _Entry) -> None:
        if isinstance(entry, pygame.Surface):
            self._used -= _surface_bytes(entry)
            self._graveyard.append(entry)
        else:
            self._used -= entry.nbytes

    def _bury(self) -> None:
        """Release evicted surfaces on the main thread (pygame objects are freed here only)."""
        if self._graveyard:
            with self._lock:
                self._graveyard.clear()


def _to_surface(decoded: DecodedImage, like: pygame.Surface | None) -> pygame.Surface:
    """``decoded`` wrapped as a 24-bit surface (it keeps the buffer alive), or a copy in ``like``'s format."""
    raw = pygame.image.frombuffer(decoded.data, decoded.size, "RGB")
    return raw if like is None else raw.convert(like)
