"""Image decoding (Pillow, any thread) and a byte-bounded cache of ready surfaces.

:func:`decode_image` turns a file into raw RGB pixels of exactly the requested
size: EXIF orientation applied, fitted with ``contain`` (letterboxed on the
background), ``cover`` (centre crop) or ``stretch``, transparency composited over
the background. It uses Pillow only, so it is safe in a worker thread.

:class:`ImageCache` decodes ahead in one background thread and hands out
pygame surfaces on the calling (main) thread. Pictures are kept as packed RGB (6 MB
at 1920x1080, against 8 MB as a 32-bit surface), and room is made for a picture
before it is decoded, so that what is held never exceeds the bound::

    cache = ImageCache(max_bytes=48 * 2**20)
    cache.prefetch("poster", Path("poster.jpg"), (1920, 950), "contain", (0, 0, 0))
    ...
    surface = cache.get("poster", like=frame) or cache.load_now(
        "poster", Path("poster.jpg"), (1920, 950), "contain", (0, 0, 0), like=frame)
"""

from __future__ import annotations

import math
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import pygame
from PIL import Image

from ..errors import AssetError

RGB = tuple[int, int, int]
FITS = ("contain", "cover", "stretch")
MAX_PIXELS = 40_000_000  # refuse sources above this (a 40 MP photo is already generous)

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


@dataclass(frozen=True)
class DecodedImage:
    """Packed RGB pixels (3 bytes per pixel, rows top to bottom) of ``size``."""

    size: tuple[int, int]
    data: bytes | bytearray

    @property
    def nbytes(self) -> int:
        return len(self.data)


def decode_image(path: Path, size: tuple[int, int], fit: str, background: RGB,
                 *, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Decode ``path`` into exactly ``size`` pixels, upright and opaque.

    Raises :class:`AssetError` naming the file when it is missing, unreadable,
    corrupt, truncated or larger than ``max_pixels``; ``ValueError`` for a bad
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
    orientation = _orientation(source)
    # Work in the file's own orientation: every fit is symmetric under the
    # final transpose, so only the target's width and height swap.
    swap = orientation in (5, 6, 7, 8)
    tw, th = (size[1], size[0]) if swap else size
    if source.format == "JPEG":
        need = _needed_source_size((w0, h0), (tw, th), fit)
        source.draft("RGB", need)  # DCT scaling: decode at 1/2, 1/4 or 1/8 when that suffices
    source.load()
    orientation = _orientation(source) or orientation  # PNG may carry EXIF after the pixels
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
        box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
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


def _resize(image: Image.Image, size: tuple[int, int],
            box: tuple[float, float, float, float] | None = None) -> Image.Image:
    """``image`` resampled to ``size`` (Lanczos); the image itself when nothing would change."""
    if image.size == size and (box is None or box == (0, 0, *size)):
        return image
    return image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


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


def _surface_bytes(surface: pygame.Surface) -> int:
    return surface.get_pitch() * surface.get_height()


class ImageCache:
    """Least-recently-used images, bounded in bytes of pixels, decoded ahead in one thread.

    Keys are chosen by the caller and must identify the picture *and* its
    rendering (asset, size, fit, background). Only the thread that calls
    :meth:`get` / :meth:`load_now` (the main loop) ever touches pygame.
    ``on_error`` is called from the worker thread when a prefetch fails; it
    must only hand the error over (e.g. put it on a queue). The failure is also
    kept so that :meth:`get` for that key raises it once.
    """

    def __init__(self, max_bytes: int, *, on_error: ErrorCallback | None = None, queue_size: int = 4,
                 max_pixels: int = MAX_PIXELS) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self._on_error = on_error
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._used = 0
        self._failed: OrderedDict[Hashable, AssetError] = OrderedDict()
        self._queued: set[Hashable] = set()
        self._graveyard: list[pygame.Surface] = []  # evicted by the worker, freed on the main thread
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
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

    def prefetch(self, key: Hashable, path: Path, size: tuple[int, int], fit: str, background: RGB) -> bool:
        """Queue a decode in the background; never blocks.

        Room for the new picture is made first (least recently used pictures go), so
        that the pixels held, including the one being decoded, stay within the bound.
        Returns False when the queue is full (the caller can fall back to
        :meth:`load_now` later), True when queued or already available.
        """
        self._bury()
        with self._lock:
            if self._closed:
                return False
            if key in self._entries or key in self._queued or key in self._failed:
                return True
            self._make_room(int(size[0]) * int(size[1]) * 3)
            try:
                self._jobs.put_nowait(_Job(key, Path(path), (int(size[0]), int(size[1])), fit,
                                           (int(background[0]), int(background[1]), int(background[2]))))
            except queue.Full:
                return False
            self._queued.add(key)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="image-decoder", daemon=True)
                self._worker.start()
        self._bury()
        return True

    def get(self, key: Hashable, like: pygame.Surface | None = None) -> pygame.Surface | None:
        """The ready surface for ``key``, or None if not decoded yet.

        With ``like``, the picture is converted once to ``like``'s pixel format (worth it
        for a picture blitted again and again). Without, it is the decoded 24-bit pixels
        themselves, wrapped without a copy (for a picture blitted once, e.g. into a
        scene: the blit converts on the fly and no second buffer is ever made).

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
            if isinstance(entry, pygame.Surface):
                return entry
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
        """The surface for ``key``, decoding synchronously if it is not ready. Main thread only.

        Raises :class:`AssetError` when the image cannot be decoded.
        """
        try:
            ready = self.get(key, like)
        except AssetError:
            ready = None  # retry: the file may have been replaced since
        if ready is not None:
            return ready
        with self._lock:
            self._queued.discard(key)  # a background decode of it, queued or running, is not wanted now
            self._make_room(int(size[0]) * int(size[1]) * 3)
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
        """Forget ``key``'s picture (it has been drawn where it is needed). Main thread."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._drop(entry)
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
            worker = self._worker
        if worker is not None:
            while True:
                try:
                    self._jobs.put(None, timeout=0.1)
                    break
                except queue.Full:
                    try:
                        self._jobs.get_nowait()  # drop a pending job to make room for the stop
                    except queue.Empty:
                        pass
            worker.join(timeout=5)
        self.clear()

    def __enter__(self) -> ImageCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- internals

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self._run_job(job)  # in its own frame: nothing decoded stays referenced while waiting

    def _run_job(self, job: _Job) -> None:
        with self._lock:
            if job.key not in self._queued or job.key in self._entries or self._closed:
                self._queued.discard(job.key)  # loaded meanwhile by load_now(), or closing
                return
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

    def _make_room(self, nbytes: int) -> None:
        """Evict least recently used entries until ``nbytes`` more fit within the bound (lock held)."""
        while self._entries and self._used + nbytes > self.max_bytes:
            self._drop(self._entries.pop(next(iter(self._entries))))

    def _trim(self, keep: Hashable) -> None:
        """Evict least recently used entries until within budget; ``keep`` always stays."""
        while self._used > self.max_bytes and len(self._entries) > 1:
            key = next(iter(self._entries))
            if key == keep:
                self._entries.move_to_end(key)
                key = next(iter(self._entries))
            self._drop(self._entries.pop(key))

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
