"""The Linux framebuffer output: frames copied into a memory-mapped ``/dev/fbN``.

SDL2 has no framebuffer-console driver, so on a headless Pi the player renders with
SDL's ``dummy`` driver and copies the picture here itself.

Geometry comes from the device, never from the config:

* ``/sys/class/graphics/fbN/virtual_size`` (``"1920,1080"``), ``bits_per_pixel`` and
  ``stride`` (bytes per row, which may be larger than ``width * bytes per pixel``);
* on a real device (a character special file) the ``FBIOGET_VSCREENINFO`` ioctl adds
  the visible resolution, the panning offset and the colour bitfields;
* where that ioctl is unavailable (a plain file in tests), the layouts the Pi's
  framebuffer reports are assumed: 16 bpp RGB565, 24 bpp RGB888 stored B,G,R and
  32 bpp XRGB8888 stored B,G,R,X (little-endian 0x00RRGGBB words).

Pixel conversion happens in C: when the frame's format is not the device's, the changed
rows are blitted, a strip of :data:`CONVERT_ROWS` rows at a time, into a small pygame
surface that has the device's depth and colour masks (a full-frame one would cost 4 to
8 MB for nothing); the bytes are then copied to the mapped memory, row by row when the
strides differ.  A frame already in the device's format (XRGB8888 on a 32-bit display)
is copied directly.  Only the rows covered by the dirty rectangles are written; the
first frame is always written whole.

Software dimming (:meth:`FbdevOutput.set_dim`) happens on the way too: the rows go
through a strip in the frame's own format, multiplied there, so that neither the
renderer nor this output needs a dimmed full-frame copy.

For development without a panel, :data:`SYSFS_ROOT_ENV` points the default sysfs root
at a fake tree (``<root>/class/graphics/fbN/…``) so that a plain file can stand for the
device; production leaves it unset.

Under KMS, ``/dev/fb0`` exists only if a screen was connected at boot:
:func:`open_fbdev` waits and retries for ``wait_s`` seconds, then raises
:class:`~player.errors.DisplayUnavailable`, whose message is fit for the heartbeat.
Kernel console blanking is not prevented here: boot with ``consoleblank=0``.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
import re
import stat
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pygame

from player.errors import DisplayUnavailable, OutputError
from player.render.outputs.base import Output, copy_colour, dim, dim_level, row_spans

log = logging.getLogger(__name__)

FBIOGET_VSCREENINFO = 0x4600
_VSCREENINFO = struct.Struct("=40I")  # struct fb_var_screeninfo: 160 bytes of __u32
SYSFS_ROOT_ENV = "PANEL_PLAYER_SYSFS_ROOT"  # development only: a fake sysfs tree
CONVERT_ROWS = 32  # rows per conversion strip (1920 px at 32 bpp: 240 kB)
FBIOBLANK = 0x4611
FB_BLANK_UNBLANK, FB_BLANK_POWERDOWN = 0, 4
KDSETMODE = 0x4B3A
KD_TEXT, KD_GRAPHICS = 0, 1

# (offset, length) of red, green, blue, transparency for each depth, as the Pi reports.
_STANDARD_FIELDS: dict[int, tuple[tuple[int, int], ...]] = {
    16: ((11, 5), (5, 6), (0, 5), (0, 0)),
    24: ((16, 8), (8, 8), (0, 8), (0, 0)),
    32: ((16, 8), (8, 8), (0, 8), (0, 0)),
}


@dataclass(frozen=True)
class FbInfo:
    """What the kernel says about a framebuffer."""

    width: int
    height: int
    bits_per_pixel: int
    stride: int
    fields: tuple[tuple[int, int], ...]  # (offset, length) for R, G, B, transparency
    offset: int = 0  # byte offset of the visible page (panning)

    @property
    def bytes_per_pixel(self) -> int:
        return self.bits_per_pixel // 8

    @property
    def masks(self) -> tuple[int, int, int, int]:
        r, g, b, a = (((1 << n) - 1) << off if n else 0 for off, n in self.fields)
        return (r, g, b, a)

    @property
    def map_length(self) -> int:
        return self.offset + self.stride * self.height

    def describe(self) -> str:
        kind = {16: "RGB565", 24: "RGB888", 32: "XRGB8888"}.get(self.bits_per_pixel, "?")
        return (f"{self.width}x{self.height} {self.bits_per_pixel} bpp "
                f"({kind}), stride {self.stride}")


def default_sysfs_root() -> Path:
    """``/sys``, or the fake tree named by ``PANEL_PLAYER_SYSFS_ROOT`` (development, benchmarks)."""
    fake = os.environ.get(SYSFS_ROOT_ENV)
    if fake:
        log.warning("%s=%s: reading framebuffer geometry from a fake sysfs tree", SYSFS_ROOT_ENV, fake)
        return Path(fake)
    return Path("/sys")


def sysfs_dir(device: str | os.PathLike[str], sysfs_root: Path) -> Path:
    """``<sysfs_root>/class/graphics/fbN`` for a device path such as ``/dev/fb0``."""
    name = Path(device).name
    if not re.fullmatch(r"fb\d+", name):
        real = Path(device).resolve().name  # e.g. a /dev/fb -> fb0 symlink
        if not re.fullmatch(r"fb\d+", real):
            raise OutputError(f"{device}: not a framebuffer device name (expected …/fbN)")
        name = real
    return sysfs_root / "class" / "graphics" / name


def _read(path: Path) -> str:
    return path.read_text(encoding="ascii").strip()


def read_info(device: str | os.PathLike[str], sysfs_root: Path = Path("/sys"),
              fd: int | None = None) -> FbInfo:
    """Read the geometry from sysfs, and the pixel layout from the device when it can.

    Raises DisplayUnavailable when the sysfs entry is absent, OutputError when it is
    unreadable or describes a format this player cannot write.
    """
    d = sysfs_dir(device, sysfs_root)
    if not d.is_dir():
        raise DisplayUnavailable(
            f"waiting for {device}: no framebuffer in {d.parent} (under KMS it exists "
            "only if a screen was connected at boot)")
    try:
        w_s, h_s = _read(d / "virtual_size").split(",")
        width, height = int(w_s), int(h_s)
        bpp = int(_read(d / "bits_per_pixel"))
        stride_file = d / "stride"
        stride = int(_read(stride_file)) if stride_file.exists() else width * bpp // 8
    except FileNotFoundError as e:
        raise DisplayUnavailable(f"waiting for {device}: {e.filename} is missing") from e
    except (OSError, ValueError) as e:
        raise OutputError(f"{device}: unreadable framebuffer geometry in {d}: {e}") from e
    if bpp not in _STANDARD_FIELDS:
        raise OutputError(f"{device}: {bpp} bits per pixel is not supported (16, 24, 32)")
    fields = _STANDARD_FIELDS[bpp]
    offset = 0
    if fd is not None:
        var = _vscreeninfo(fd)
        if var is not None:
            xres, yres, _, _, xoff, yoff, vbpp = var[:7]
            if vbpp == bpp and 0 < xres <= width and 0 < yres:
                width, height = xres, yres
                offset = yoff * stride + xoff * bpp // 8
                fields = tuple((var[i], var[i + 1]) for i in (8, 11, 14, 17))
    if width <= 0 or height <= 0 or stride < width * bpp // 8:
        raise OutputError(f"{device}: inconsistent geometry {width}x{height}, "
                          f"{bpp} bpp, stride {stride}")
    return FbInfo(width, height, bpp, stride, fields, offset)


def _vscreeninfo(fd: int) -> tuple[int, ...] | None:
    """The kernel's fb_var_screeninfo, or None when ``fd`` is not a framebuffer."""
    if not stat.S_ISCHR(os.fstat(fd).st_mode):
        return None
    buf = bytearray(_VSCREENINFO.size)
    try:
        fcntl.ioctl(fd, FBIOGET_VSCREENINFO, buf)
    except OSError as e:
        log.warning("FBIOGET_VSCREENINFO failed (%s); assuming the standard layout", e)
        return None
    return _VSCREENINFO.unpack(buf)


class FbdevOutput(Output):
    """Writes frames into a memory-mapped framebuffer.  Build it with :func:`open_fbdev`."""

    name = "fbdev"

    def __init__(self, device: str, info: FbInfo, fd: int, mm: mmap.mmap) -> None:
        super().__init__((info.width, info.height))
        self.device = device
        self.info = info
        self._fd = fd
        self._mm = mm
        self._conv: pygame.Surface | None = None  # conversion strip, made at the first foreign frame
        self._dim_strip: pygame.Surface | None = None  # in the frame's format, while dimming
        self._dim_level = 255  # software dimming: colours are multiplied by this / 255
        self._first = True
        self._direct: pygame.Surface | None = None  # the mapped page as a surface (XRGB8888)
        self._direct_view: memoryview | None = None
        self._tty_fd: int | None = None
        self.sysfs: Path | None = None  # <sysfs>/class/graphics/fbN, for blanking
        self.status = f"ok: {device} {info.describe()}"

    def show(self, frame: pygame.Surface, dirty: Sequence[pygame.Rect] | None) -> float:
        self._check_frame(frame)
        spans = row_spans(None if self._first else dirty, self.size)
        if spans:
            try:
                if self._dim_level < 255:
                    self._dim_and_copy(frame, spans)
                elif self._same_format(frame):
                    for top, bottom in spans:
                        self._copy(frame, top, top, bottom - top)
                else:
                    self._convert_and_copy(frame, spans)
            except (OSError, ValueError) as e:
                self.healthy = False
                self.status = f"error writing {self.device}: {e}"
                raise OutputError(self.status) from e
            self._first = False
        return self._shown()

    def direct_surface(self) -> pygame.Surface | None:
        """The visible page of the mapped framebuffer as a surface, on a 32-bit XRGB8888
        display that shows the frames as drawn (not dimmed, not blanked): drawing there
        is one copy instead of two (into the frame, then here)."""
        if self._first or self._dim_level < 255 or not self.powered or self.closed or not self.healthy:
            return None
        if self._direct is None:
            info = self.info
            if info.bits_per_pixel != 32 or info.fields[:3] != _STANDARD_FIELDS[32][:3]:
                return None
            self._direct_view = memoryview(self._mm)[info.offset:info.offset + info.stride * info.height]
            # B,G,R,X bytes; pygame names the fourth byte alpha, which the display ignores.
            self._direct = pygame.image.frombuffer(self._direct_view, self.size, "BGRA", pitch=info.stride)
        return self._direct

    def show_direct(self, rects: Sequence[pygame.Rect]) -> float:
        if self.closed:
            raise OutputError("fbdev output is closed")
        return self._shown()  # the pixels are already in the device's memory

    def set_dim(self, factor: float) -> None:
        """Show frames with their colours multiplied by ``factor`` (0..1, 1 = as drawn).

        The next frame is written whole, whatever its dirty rectangles say.
        """
        level = dim_level(factor)
        if level != self._dim_level:
            self._dim_level = level
            self._first = True
            if level == 255:
                self._dim_strip = None

    def set_power(self, on: bool) -> str:
        """Blank the screen (``FB_BLANK_POWERDOWN``: the display's DPMS off, where the
        driver supports it) through the ``FBIOBLANK`` ioctl, else the sysfs ``blank``
        attribute; a black picture when neither is available."""
        level = FB_BLANK_UNBLANK if on else FB_BLANK_POWERDOWN
        self._first = True  # the next frame is written whole
        try:
            fcntl.ioctl(self._fd, FBIOBLANK, level)
            self.powered = on
            return "picture shown" if on else f"{self.device} blanked (FBIOBLANK)"
        except OSError as e:
            log.debug("FBIOBLANK on %s: %s", self.device, e)
        if self.sysfs is not None:
            try:
                (self.sysfs / "blank").write_text(f"{level}\n", encoding="ascii")
                self.powered = on
                return "picture shown" if on else f"{self.device} blanked ({self.sysfs / 'blank'})"
            except OSError as e:
                log.debug("cannot write %s: %s", self.sysfs / "blank", e)
        return super().set_power(on)

    def _same_format(self, frame: pygame.Surface) -> bool:
        return (frame.get_bitsize() == self.info.bits_per_pixel
                and frame.get_masks() == self.info.masks)

    def _conversion_strip(self) -> pygame.Surface:
        """A few rows in the device's format, made at the first frame that needs them."""
        if self._conv is None:
            flags = pygame.SRCALPHA if self.info.masks[3] else 0
            rows = min(CONVERT_ROWS, self.size[1])
            self._conv = pygame.Surface((self.size[0], rows), flags, self.info.bits_per_pixel, self.info.masks)
        return self._conv

    def _convert_and_copy(self, frame: pygame.Surface, spans: list[tuple[int, int]]) -> None:
        conv = self._conversion_strip()
        width, rows = self.size[0], conv.get_height()
        for top, bottom in spans:
            for y in range(top, bottom, rows):
                n = min(rows, bottom - y)
                # Frames are opaque pictures; a per-pixel alpha would blend onto stale rows.
                conv.blit(frame, (0, 0), pygame.Rect(0, y, width, n))
                self._copy(conv, 0, y, n)

    def _dim_and_copy(self, frame: pygame.Surface, spans: list[tuple[int, int]]) -> None:
        # Multiplied in the frame's format, before any conversion to a shallower device
        # format, so that the result is the same as dimming the frame itself.
        # The frame's format without its alpha (copy_colour copies colour only).
        bits, masks = frame.get_bitsize(), frame.get_masks()[:3] + (0,)
        strip = self._dim_strip
        if strip is None or strip.get_bitsize() != bits or strip.get_masks() != masks:
            rows = min(CONVERT_ROWS, self.size[1])
            strip = self._dim_strip = pygame.Surface((self.size[0], rows), 0, bits, masks)
        conv = None if self._same_format(strip) else self._conversion_strip()
        width, rows = self.size[0], strip.get_height()
        for top, bottom in spans:
            for y in range(top, bottom, rows):
                n = min(rows, bottom - y)
                area = pygame.Rect(0, 0, width, n)
                copy_colour(frame, pygame.Rect(0, y, width, n), strip, (0, 0))
                dim(strip, self._dim_level, area)
                if conv is None:
                    self._copy(strip, 0, y, n)
                else:
                    conv.blit(strip, (0, 0), area)
                    self._copy(conv, 0, y, n)

    def _copy(self, src: pygame.Surface, src_top: int, top: int, count: int) -> None:
        """Copy ``count`` rows of ``src`` from ``src_top`` to the device rows from ``top``."""
        stride, base = self.info.stride, self.info.offset
        pitch = src.get_pitch()
        row_bytes = self.size[0] * self.info.bytes_per_pixel
        mm = self._mm
        # The view locks the surface; it must be released before the next blit.
        with memoryview(src.get_buffer()) as view:  # type: ignore[arg-type]  # BufferProxy has the buffer protocol
            if pitch == stride:
                mm[base + top * stride:base + (top + count) * stride] = (
                    view[src_top * pitch:(src_top + count) * pitch])
                return
            for i in range(count):
                dst = base + (top + i) * stride
                at = (src_top + i) * pitch
                mm[dst:dst + row_bytes] = view[at:at + row_bytes]

    def hide_console(self, tty: str = "/dev/tty0") -> bool:
        """Stop the text console drawing (cursor, messages) over the picture.

        Only for a real framebuffer device; needs access to ``tty``.  Undone by close().
        """
        try:
            if not stat.S_ISCHR(os.fstat(self._fd).st_mode):
                return False
            fd = os.open(tty, os.O_RDWR | os.O_CLOEXEC | os.O_NOCTTY)
        except OSError as e:
            log.info("cannot hide the text console on %s: %s", tty, e)
            return False
        try:
            fcntl.ioctl(fd, KDSETMODE, KD_GRAPHICS)
        except OSError as e:
            log.info("cannot switch %s to graphics mode: %s", tty, e)
            os.close(fd)
            return False
        self._tty_fd = fd
        return True

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        if self._tty_fd is not None:
            try:
                fcntl.ioctl(self._tty_fd, KDSETMODE, KD_TEXT)
            except OSError:
                pass
            os.close(self._tty_fd)
            self._tty_fd = None
        self._direct = None  # the surface and the view hold the mapping: released first
        try:
            if self._direct_view is not None:
                self._direct_view.release()
                self._direct_view = None
            self._mm.close()
        except BufferError:  # a surface on the mapping is still referenced: unmapped when freed
            log.warning("%s: the mapping is still in use; it is released with its last user", self.device)
        os.close(self._fd)
        self.healthy = False
        self.status = "closed"


def _open_once(device: str, sysfs_root: Path) -> FbdevOutput:
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError as e:
        raise DisplayUnavailable(
            f"waiting for {device}: no such device (under KMS the framebuffer exists "
            "only if a screen was connected at boot)") from e
    except PermissionError as e:
        raise OutputError(f"{device}: permission denied (add the player's user to the "
                          "'video' group)") from e
    except OSError as e:
        if e.errno in (errno.ENODEV, errno.ENXIO):
            raise DisplayUnavailable(f"waiting for {device}: {e.strerror}") from e
        raise OutputError(f"{device}: {e}") from e
    try:
        info = read_info(device, sysfs_root, fd)
        try:
            mm = mmap.mmap(fd, info.map_length, mmap.MAP_SHARED,
                           mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError) as e:
            raise OutputError(f"{device}: cannot map {info.map_length} bytes "
                              f"({info.describe()}): {e}") from e
        out = FbdevOutput(device, info, fd, mm)
        out.sysfs = sysfs_dir(device, sysfs_root)
        return out
    except BaseException:
        os.close(fd)
        raise


def open_fbdev(device: str = "/dev/fb0", sysfs_root: Path | None = None,
               wait_s: float = 0, poll_s: float = 0.1) -> FbdevOutput:
    """Open ``device``, waiting up to ``wait_s`` seconds for it to appear.

    ``sysfs_root`` defaults to :func:`default_sysfs_root`.

    Raises DisplayUnavailable (still absent after ``wait_s``; retry later) or
    OutputError (present but unusable).
    """
    deadline = time.monotonic() + max(0.0, wait_s)
    if sysfs_root is None:
        sysfs_root = default_sysfs_root()
    while True:
        try:
            return _open_once(device, sysfs_root)
        except DisplayUnavailable:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
            time.sleep(min(poll_s, remaining))
