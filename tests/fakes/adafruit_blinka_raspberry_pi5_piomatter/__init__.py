"""A working stand-in for Adafruit's Piomatter (``adafruit_blinka_raspberry_pi5_piomatter``
1.0, the Raspberry Pi 5 HUB75 driver), for tests only.

Same names, arguments and checks as the real extension module (read from its pybind11
source, ``src/pymain.cpp``, and headers):

* ``Orientation`` (Normal, R180, CCW, CW), ``Pinout`` (AdafruitMatrixBonnet[BGR],
  AdafruitMatrixHat[BGR] as aliases of the Bonnet, Active3[BGR]), ``Colorspace``
  (RGB888Packed: 3 bytes a pixel, RGB888: 4, RGB565: 2);
* ``Geometry(width, height, n_addr_lines, serpentine=True, rotation=Orientation.Normal,
  n_planes=10, n_temporal_planes=2)`` or ``Geometry(width, height, n_addr_lines, map,
  n_planes=10, n_temporal_planes=0, n_lanes=2)``, with the real errors (pixel count not a
  multiple of the row addresses, n_planes out of 1..10, temporal planes not below
  n_planes, a map of the wrong length or pointing outside the framebuffer);
* ``PioMatter(colorspace, pinout, framebuffer, geometry)``: the framebuffer is any
  writable buffer of exactly ``width * height`` pixels in the colorspace (else
  RuntimeError, with the real message); more lanes than the pinout has RGB pins for, or
  more than 5 address lines, are refused; it shows the framebuffer once when created;
  ``show()`` converts the framebuffer *at that moment* (the real one converts it into one
  of three buffers), so changing it afterwards changes nothing shown; ``fps``.

What it simulates of the panel: the pixel each lane shifts out at each row address,
through the geometry's map (:meth:`PioMatter.shown_pixel`, chains stacked top to
bottom), before the driver's gamma curve (2.2), which it does not apply.

Tests put ``tests/fakes`` on ``sys.path`` to import it.
"""

from __future__ import annotations

import enum
import errno as _errno
import os
from typing import Any


class Orientation(enum.Enum):
    Normal = 0
    R180 = 1
    CCW = 2
    CW = 3


class Pinout(enum.Enum):
    AdafruitMatrixBonnet = 0
    AdafruitMatrixBonnetBGR = 1
    AdafruitMatrixHat = 0  # the same board as far as the pins go: an alias, as in the real one
    AdafruitMatrixHatBGR = 1
    Active3 = 2
    Active3BGR = 3


class Colorspace(enum.Enum):
    RGB565 = 0
    RGB888 = 1
    RGB888Packed = 2


RGB_PINS = {0: 6, 1: 6, 2: 18, 3: 18}
"""RGB pins of each pinout (by value): 3 a lane."""
ADDRESS_PINS = 5
BYTES_PER_PIXEL = {Colorspace.RGB565: 2, Colorspace.RGB888: 4, Colorspace.RGB888Packed: 3}


def _panel_map(width: int, height: int, n_addr_lines: int, serpentine: bool,
               rotation: Orientation) -> list[int]:
    """The order in which a single connector (2 lanes) shifts the framebuffer's pixels out."""
    if rotation in (Orientation.CCW, Orientation.CW):
        raise NotImplementedError("the stand-in simulates Normal and R180 orientations only")
    panel_height = 2 << n_addr_lines
    if height % panel_height:
        raise ValueError("Overall height does not evenly divide calculated panel height")
    half = 1 << n_addr_lines
    across = width * (height // panel_height)

    def index(x: int, y: int) -> int:
        if rotation is Orientation.R180:
            x, y = width - x - 1, height - y - 1
        return x + width * y

    order: list[int] = []
    for i in range(half):
        for j in range(across):
            panel, x = divmod(j, width)
            if serpentine and panel % 2:
                x = width - x - 1
                top = (panel + 1) * panel_height - i - 1
                bottom = top - half
            else:
                top = panel * panel_height + i
                bottom = top + half
            order += [index(x, top), index(x, bottom)]
    return order


def _check_planes(n_planes: int, n_temporal_planes: int) -> None:
    if not 1 <= n_planes <= 10:
        raise ValueError("n_planes out of range")
    if n_temporal_planes >= 2 and n_temporal_planes >= n_planes:
        raise ValueError("n_temporal_planes can't exceed n_planes")


class Geometry:
    """The size and wiring of the panels (see the module docstring for the two forms)."""

    def __init__(self, width: int, height: int, n_addr_lines: int, serpentine: bool | None = None,
                 rotation: Orientation | None = None, n_planes: int = 10,
                 n_temporal_planes: int | None = None, *, map: list[int] | None = None,
                 n_lanes: int | None = None) -> None:
        if map is not None:
            if serpentine is not None or rotation is not None:
                raise TypeError("__init__(): incompatible constructor arguments")
            lanes = 2 if n_lanes is None else int(n_lanes)
            temporal = 0 if n_temporal_planes is None else int(n_temporal_planes)
            n_lines = lanes << n_addr_lines
            across = width * height // n_lines
            if any(not 0 <= int(i) < width * height for i in map):
                raise IndexError("Map element out of range")
            order = [int(i) for i in map]
        else:
            if n_lanes is not None:
                raise TypeError("__init__(): incompatible constructor arguments")
            if rotation is not None and not isinstance(rotation, Orientation):
                raise TypeError("__init__(): incompatible constructor arguments")
            lanes = 2
            temporal = 2 if n_temporal_planes is None else int(n_temporal_planes)
            n_lines = 2 << n_addr_lines
            if (width * height) % n_lines:
                raise RuntimeError(f"Total pixel count {width * height} must be a multiple of {n_lines}, "
                                   f"the number of distinct row addresses for {n_addr_lines}")
            across = width * height // n_lines
            order = _panel_map(width, height, n_addr_lines, True if serpentine is None else serpentine,
                               rotation or Orientation.Normal)
        _check_planes(int(n_planes), temporal)
        if len(order) != (lanes << n_addr_lines) * across:
            raise ValueError("map size does not match calculated pixel count")
        self._width, self._height = int(width), int(height)
        self.n_addr_lines, self.n_lanes, self.pixels_across = int(n_addr_lines), lanes, across
        self.n_planes, self.n_temporal_planes = int(n_planes), temporal
        self.order = order

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height


class PioMatter:
    """The driver: holds the framebuffer, shows what it holds at each ``show()``."""

    def __init__(self, colorspace: Colorspace, pinout: Pinout, framebuffer: Any, geometry: Geometry) -> None:
        if not isinstance(colorspace, Colorspace) or not isinstance(pinout, Pinout) \
                or not isinstance(geometry, Geometry):
            raise TypeError("__init__(): incompatible constructor arguments")
        view = memoryview(framebuffer)  # the real binding keeps a buffer export too
        if view.readonly:
            raise TypeError("the framebuffer must be writable")
        rgb_pins = RGB_PINS[pinout.value]
        if geometry.n_lanes * 3 > rgb_pins:
            raise RuntimeError(f"Geometry lane count {geometry.n_lanes} exceeds the pinout with "
                               f"{rgb_pins} rgb pins ({rgb_pins // 3} lanes)")
        n_pixels = geometry.width * geometry.height
        size = BYTES_PER_PIXEL[colorspace]
        if view.nbytes != n_pixels * size:
            raise RuntimeError(f"Framebuffer size must be {n_pixels * size} bytes ({n_pixels} elements of "
                               f"{size} bytes each), got a buffer of {view.nbytes} bytes")
        if geometry.n_addr_lines > ADDRESS_PINS:
            raise RuntimeError("too many address lines requested")
        if os.environ.get("PIOMATTER_STANDIN_NO_PIO"):  # a Pi without /dev/pio0
            raise RuntimeError("pio_open: No such file or directory")
        self.colorspace, self.pinout, self.geometry = colorspace, pinout, geometry
        self._buffer = view.cast("B")
        self._shown: list[tuple[int, int, int]] = []
        self._pending_errno = 0
        self.shows = 0
        self.show()

    def show(self) -> None:
        err, self._pending_errno = self._pending_errno, 0
        if err:
            raise OSError(err, os.strerror(err))
        self._shown = self._convert(bytes(self._buffer))
        self.shows += 1

    @property
    def fps(self) -> float:
        return 120.0

    def _convert(self, data: bytes) -> list[tuple[int, int, int]]:
        n = self.geometry.width * self.geometry.height
        if self.colorspace is Colorspace.RGB888Packed:
            return [(data[i], data[i + 1], data[i + 2]) for i in range(0, 3 * n, 3)]
        if self.colorspace is Colorspace.RGB888:  # native-endian uint32 0x00RRGGBB
            words = memoryview(data).cast("I")
            return [((w >> 16) & 255, (w >> 8) & 255, w & 255) for w in words]
        words = memoryview(data).cast("H")
        out = []
        for w in words:
            r, g, b = (w >> 11) & 31, (w >> 5) & 63, w & 31
            out.append(((r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)))
        return out

    # -- for tests -----------------------------------------------------------------------

    def fail_next_show(self, code: int = _errno.EIO) -> None:
        """The driver's thread hit an error: the next ``show()`` raises it (OSError)."""
        self._pending_errno = code

    def shown_framebuffer(self) -> list[tuple[int, int, int]]:
        """The pixels of the last ``show()``, in framebuffer order."""
        return list(self._shown)

    def shown_pixel(self, x: int, y: int) -> tuple[int, int, int]:
        """What the LED at column ``x`` of row ``y`` shows, chains stacked top to bottom:
        the pixel lane ``y // half`` shifts out at position ``x`` of row address ``y % half``."""
        g = self.geometry
        half = 1 << g.n_addr_lines
        lane, address = divmod(y, half)
        return self._shown[g.order[(address * g.pixels_across + x) * g.n_lanes + lane]]

    def panel_rows(self) -> list[list[tuple[int, int, int]]]:
        """Every LED's colour, as :meth:`shown_pixel` (for a single chain of one row of
        panels and for stacked chains: the picture as the framebuffer holds it)."""
        g = self.geometry
        rows = g.n_lanes << g.n_addr_lines
        return [[self.shown_pixel(x, y) for x in range(g.pixels_across)] for y in range(rows)]
