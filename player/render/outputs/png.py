"""The PNG output: the displayed picture kept in a file, for headless panels and tests.

Contract: the file at ``path`` is replaced atomically within 1 second of any change of
what is shown, and not more often than needed.  Concretely:

* a change is written at once when no write happened in the last ``min_interval``
  seconds (0.5 s by default), otherwise at the end of that window: the main loop wakes
  at :meth:`PngOutput.next_deadline` and calls :meth:`PngOutput.flush`;
* a burst of changes therefore costs at most one write per window, the last picture
  always being written;
* nothing is written while nothing changes (an empty dirty list, or a picture equal to
  the last one written);
* the main loop only copies the rows that changed since the last hand-off into one
  RGB buffer kept for the output's life (a blit, converted in C: about 2 ms for a whole
  1920x1080 frame, 6 MB held); encoding (zlib level 1 streamed into the file, no
  filtering: fast, still a real PNG) and the write happen on a worker thread. While the
  worker reads the buffer, the next hand-off waits (the loop polls every
  ``BUSY_POLL`` seconds), so memory never holds more than one picture;
* the write is the SD-card-safe sequence: temporary file in the same folder, fsync,
  ``os.replace``, fsync of the folder.  Readers see the old or the new file, whole;
* software dimming (:meth:`PngOutput.set_dim`) is applied to the rows as they are
  copied, so that the renderer needs no dimmed full-frame layer of its own;
* with ``colours`` (``display.led.colors`` set: ``mono``, ``rgb111``, ``rgb333``) the
  copied rows are first reduced to the LED panel's colours
  (:func:`player.render.colours.reduce_rows`, before the dimming, as the panel's own
  brightness comes after its colours), so that the file shows what the panel shows;
* with ``led_look`` (:class:`LedLook`) each pixel is written as a round LED dot on black
  (:func:`led_dots`: 6x6 file pixels per LED by default, a dark gap between dots, unlit
  LEDs faintly visible), the way the street sees an LED matrix. The file is then
  ``pitch`` times larger than the panel; the enlargement happens on the worker, once per
  written picture, and is meant for LED-sized panels (at most :data:`MAX_DOTS_PX` file
  pixels a side).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import struct
import tempfile
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import pygame
from PIL import Image, ImageDraw

from player.errors import OutputError
from player.render.colours import PanelColours, reduce_rows
from player.render.outputs.base import Output, Size, copy_colour, dim, dim_level, row_spans

log = logging.getLogger(__name__)

COMPRESS_LEVEL = 1  # zlib: ~5x faster than the default 6 for signage pictures
BUSY_POLL = 0.02  # s between checks for the worker while a picture waits for the buffer
_IDAT_BYTES = 1 << 16  # compressed bytes per IDAT chunk


MAX_DOTS_PX = 8192  # the largest side of a picture drawn as LED dots


@dataclass(frozen=True)
class LedLook:
    """How :func:`led_dots` draws a picture as an LED matrix: ``pitch`` file pixels per
    LED (2 to 32), ``gap`` dark pixels between neighbouring dots (less than ``pitch``),
    ``unlit`` the colour of an LED that is off (a faint grey shows the matrix's grid)."""

    pitch: int = 6
    gap: int = 1
    unlit: tuple[int, int, int] = (28, 28, 28)

    def __post_init__(self) -> None:
        if not 2 <= int(self.pitch) <= 32:
            raise ValueError(f"LED pitch must be 2 to 32 pixels, got {self.pitch!r}")
        if not 0 <= int(self.gap) < int(self.pitch):
            raise ValueError(f"LED gap must be 0 to {self.pitch - 1} pixels, got {self.gap!r}")
        if len(self.unlit) != 3 or not all(0 <= int(c) <= 255 for c in self.unlit):
            raise ValueError(f"unlit colour must be three values 0-255, got {self.unlit!r}")

    def size_of(self, size: Size) -> Size:
        """The size of a ``size`` picture drawn as dots; ValueError above :data:`MAX_DOTS_PX`."""
        w, h = size[0] * self.pitch, size[1] * self.pitch
        if max(w, h) > MAX_DOTS_PX:
            raise ValueError(f"a {size[0]}x{size[1]} picture as LED dots of {self.pitch} px would be {w}x{h} "
                             f"(at most {MAX_DOTS_PX} a side): the LED look is for LED-sized panels; "
                             "use a smaller pitch")
        return w, h


def png_dots_look(pitch: int) -> LedLook:
    """The LED look of ``display.led.png_dots`` (and of ``panelctl preview --led``): dots
    of ``pitch`` file pixels, a dark gap of a sixth of that (at least one pixel)."""
    return LedLook(pitch=pitch, gap=max(1, pitch // 6))


_OFF = [255] + [0] * 255


@lru_cache(maxsize=8)
def _dot_mask(size: Size, look: LedLook) -> Image.Image:
    """Coverage (mode L) of the round dots over a picture of ``size`` LEDs: each dot drawn
    four times larger and reduced, so that its edge is smooth."""
    pitch, big = look.pitch, 4 * look.pitch
    tile = Image.new("L", (big, big), 0)
    dot = 4 * (pitch - look.gap)  # the gap's columns and rows stay dark: right and bottom of each dot
    ImageDraw.Draw(tile).ellipse([0, 0, dot - 1, dot - 1], fill=255)
    tile = tile.resize((pitch, pitch), Image.Resampling.BOX)
    w, h = look.size_of(size)
    row = Image.new("L", (w, pitch), 0)
    for x in range(0, w, pitch):
        row.paste(tile, (x, 0))
    mask = Image.new("L", (w, h), 0)
    for y in range(0, h, pitch):
        mask.paste(row, (0, y))
    return mask


def led_dots(image: Image.Image, look: LedLook = LedLook()) -> Image.Image:
    """``image`` (one pixel per LED) as an LED matrix looks: each pixel a round dot of its
    colour on black, ``look.pitch`` times larger::

        shown = led_dots(Image.open("frame-128x64.png").convert("RGB"))   # 768x384
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    size = look.size_of(image.size)
    lit = image.resize(size, Image.Resampling.NEAREST)
    if any(look.unlit):
        off = lit.convert("L").point(_OFF)  # black pixels: LEDs that are off
        lit.paste(look.unlit, (0, 0, *size), off)
    return Image.composite(lit, Image.new("RGB", size, (0, 0, 0)), _dot_mask(image.size, look))


def write_atomically(path: Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Replace ``path`` with ``data`` so that a power cut leaves the old or new file.

    ``data`` is the content, or a function writing it into the open file (so that a
    large content need not be held in memory first).
    """
    folder = path.parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def encode_png(raw: bytes, size: Size, raw_mode: str = "BGRX") -> bytes:
    """PNG bytes of an RGB picture given as ``raw_mode`` pixels (pygame's "BGRA" bytes)."""
    img = Image.frombytes("RGB", size, raw, "raw", raw_mode)
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=COMPRESS_LEVEL)
    return buf.getvalue()


def _chunk(f: BinaryIO, kind: bytes, data: bytes = b"") -> None:
    f.write(struct.pack(">I", len(data)))
    f.write(kind)
    f.write(data)
    f.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))


def write_png(f: BinaryIO, rgb: bytes | bytearray | memoryview, size: Size) -> None:
    """Write packed 8-bit RGB rows (``size[0] * 3`` bytes each) to ``f`` as a PNG, streaming.

    Memory beyond ``rgb`` is zlib's state and one IDAT chunk.
    """
    w, h = size
    row = w * 3
    if len(rgb) != row * h:
        raise ValueError(f"{len(rgb)} bytes are not {w}x{h} RGB pixels")
    f.write(b"\x89PNG\r\n\x1a\n")
    _chunk(f, b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    packer = zlib.compressobj(COMPRESS_LEVEL)
    pending: list[bytes] = []
    size_pending = 0
    no_filter = b"\x00"
    with memoryview(rgb) as view:
        for y in range(h + 1):
            out = (packer.compress(no_filter) + packer.compress(view[y * row:(y + 1) * row]) if y < h
                   else packer.flush())
            if out:
                pending.append(out)
                size_pending += len(out)
            if size_pending >= _IDAT_BYTES or (y == h and pending):
                _chunk(f, b"IDAT", b"".join(pending))
                pending, size_pending = [], 0
    _chunk(f, b"IEND")


class PngOutput(Output):
    """Keeps ``path`` showing the current picture.  Build it with :func:`open_png`.

    ``colours``: the LED panel's colours the picture is reduced to (None: as drawn).
    ``led_look``: write each pixel as an LED dot (:func:`led_dots`); None: one file pixel
    per pixel.
    """

    name = "png"

    def __init__(self, path: Path, size: Size, min_interval: float = 0.5,
                 colours: PanelColours | None = None, led_look: LedLook | None = None) -> None:
        super().__init__(size)
        if min_interval < 0 or min_interval > 0.9:
            raise ValueError("min_interval must be within [0, 0.9] s to honour the 1 s rule")
        self.led_look = led_look
        self.file_size = led_look.size_of(size) if led_look is not None else size  # ValueError: too large
        self.path = Path(path)
        self.min_interval = min_interval
        self.colours = colours if colours is not None and colours.active else None
        self.writes = 0  # files written (observable in tests and statistics)
        self._frame: pygame.Surface | None = None  # the last frame shown, not yet copied
        self._seen: weakref.ref[pygame.Surface] | None = None  # the surface the changes are tracked on
        self._dirty: list[pygame.Rect] | None = []  # changed since the last copy; None: all
        self._last_submit = float("-inf")  # monotonic time of the last hand-off
        self._pixels: bytearray | None = None  # RGB rows: the picture handed to the worker
        self._copy: pygame.Surface | None = None  # a 24-bit surface over _pixels (main thread)
        self._last_digest: bytes | None = None  # of the picture last written (worker)
        self._cond = threading.Condition()
        self._job = False  # the buffer holds a picture waiting for the worker
        self._busy = False  # the worker is reading the buffer
        self._dim_level = 255  # software dimming: colours are multiplied by this / 255
        self._stop = False
        self._worker = threading.Thread(target=self._run, name="png-output", daemon=True)
        self._worker.start()
        self.status = f"ok: writing {self.path}"

    # -- main-loop side -----------------------------------------------------------

    def show(self, frame: pygame.Surface, dirty: Sequence[pygame.Rect] | None) -> float:
        """Hand ``frame`` over; returns ``time.time()`` once its changed rows are copied
        into the output's buffer (the picture the file will show). A frame handed over
        within ``min_interval`` of the last copy, or while the worker reads the buffer,
        is copied later (:meth:`flush`): its time is then that of the hand-off."""
        self._check_frame(frame)
        shown_at = self._shown()
        if dirty is not None and len(dirty) == 0:
            return shown_at
        if self._seen is None or frame is not self._seen() or dirty is None or self._dirty is None:
            self._dirty = None
        else:
            self._dirty.extend(dirty)
        self._frame = frame
        self._seen = weakref.ref(frame)
        now = time.monotonic()
        if now - self._last_submit >= self.min_interval and self._submit(now):
            return time.time()  # after the copy
        return shown_at

    def set_dim(self, factor: float) -> None:
        """Show frames with their colours multiplied by ``factor`` (0..1, 1 = as drawn).

        Applied to every row copied from then on; the caller hands over the whole frame
        next (the renderer does), and until then nothing half-dimmed is written.
        """
        level = dim_level(factor)
        if level != self._dim_level:
            self._dim_level = level
            self._dirty = None  # every row must be copied again at the new level

    def next_deadline(self) -> float | None:
        if self._frame is None:
            return None
        due = self._last_submit + self.min_interval
        if self._busy:
            return max(due, time.monotonic() + BUSY_POLL)
        return due

    def flush(self, now: float) -> None:
        """Save the last shown frame if its window has ended.

        Call it between frames: the frame surface must hold a finished picture.
        """
        if self._frame is not None and now - self._last_submit >= self.min_interval:
            self._submit(now)

    def _submit(self, now: float) -> bool:
        """Copy the changed rows into the buffer and wake the worker; False while it is busy."""
        frame = self._frame
        assert frame is not None
        with self._cond:
            if self._busy:
                return False  # it reads the buffer: try again at the next deadline
            if self._copy is None:
                self._pixels = bytearray(self.size[0] * self.size[1] * 3)
                self._copy = pygame.image.frombuffer(self._pixels, self.size, "RGB")
                self._dirty = None
            self._copy_rows(frame, self._copy)
            self._job = True  # a picture still waiting is superseded: it was in the same buffer
            self._cond.notify()
        self._frame = None
        self._dirty = []
        self._last_submit = now
        return True

    def _copy_rows(self, frame: pygame.Surface, copy: pygame.Surface) -> None:
        width = self.size[0]
        for top, bottom in row_spans(self._dirty, self.size):
            area = pygame.Rect(0, top, width, bottom - top)
            copy_colour(frame, area, copy, area.topleft)
            if self.colours is not None:
                assert self._pixels is not None
                reduce_rows(self._pixels, width, top, bottom, self.colours)
            if self._dim_level < 255:
                dim(copy, self._dim_level, area)

    def _wait_worker(self, deadline: float) -> bool:
        with self._cond:
            while self._job or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Block until every picture due for writing is on disk; False on timeout.

        Main thread: a picture that waited for the worker is handed over here.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self._wait_worker(deadline):
                return False
            now = time.monotonic()
            if self._frame is None or now - self._last_submit < self.min_interval:
                return True
            self._submit(now)

    def close(self) -> None:
        """Write the last picture if it is pending, then stop the worker."""
        if self.closed:
            return
        if self._frame is not None and self._worker.is_alive():
            self._wait_worker(time.monotonic() + 10)
            self._submit(time.monotonic())
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._worker.join(timeout=10)
        self._copy = None
        self._pixels = None
        super().close()

    # -- worker side ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._job and not self._stop:
                    self._cond.wait()
                if not self._job:
                    return
                self._job = False
                self._busy = True
                pixels = self._pixels
            try:
                assert pixels is not None
                self._save(pixels)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _save(self, pixels: bytearray) -> None:
        digest = hashlib.blake2b(pixels, digest_size=16).digest()
        if digest == self._last_digest:
            return
        picture: bytes | bytearray = pixels
        if self.led_look is not None:
            # bytes(): the dots must not read the buffer once the main loop may refill it
            small = Image.frombytes("RGB", self.size, bytes(pixels))
            picture = led_dots(small, self.led_look).tobytes()
        try:
            write_atomically(self.path, lambda f: write_png(f, picture, self.file_size))
        except Exception as e:  # the loop must go on; the heartbeat reports it
            self.healthy = False
            self.status = f"error writing {self.path}: {e}"
            log.error("%s", self.status)
            return
        self._last_digest = digest
        self.writes += 1
        if not self.healthy:
            self.healthy = True
            self.status = f"ok: writing {self.path}"


def open_png(path: Path | None, size: Size | None, min_interval: float = 0.5,
             colours: PanelColours | None = None, led_look: LedLook | None = None) -> PngOutput:
    """A PNG output; ``display.path`` and ``display.size`` are required; ``colours``: the
    LED panel's colours to show the picture in (``display.led.colors``), None for all;
    ``led_look``: write the picture as LED dots (None: plain pixels)."""
    if path is None:
        raise OutputError("output png needs display.path (where to write the picture)")
    if size is None:
        raise OutputError("output png needs display.size, e.g. [1920, 1080]")
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"output png: folder {path.parent} does not exist")
    if led_look is not None:
        try:
            led_look.size_of(size)
        except ValueError as exc:
            raise OutputError(f"output png: {exc}") from None
    return PngOutput(path, size, min_interval, colours, led_look)
