"""The LED matrix output on a Raspberry Pi 5: Adafruit's Piomatter (``display.led.driver``).

The Pi 5's GPIO sits behind its RP1 chip, which rpi-rgb-led-matrix cannot drive; Piomatter
(``pip install adafruit-blinka-raspberry-pi5-piomatter``, module
``adafruit_blinka_raspberry_pi5_piomatter``) clocks the panels out of the RP1's PIO.
Its API, as of version 1.0::

    geometry = piomatter.Geometry(width=64, height=32, n_addr_lines=4, n_planes=10,
                                  n_temporal_planes=0, rotation=piomatter.Orientation.Normal)
    framebuffer = bytearray(64 * 32 * 3)          # any writable buffer of the exact size
    matrix = piomatter.PioMatter(colorspace=piomatter.Colorspace.RGB888Packed,
                                 pinout=piomatter.Pinout.AdafruitMatrixBonnet,
                                 framebuffer=framebuffer, geometry=geometry)
    framebuffer[:] = picture                      # then
    matrix.show()                                 # converts and queues it (triple buffered)

How ``display.led`` maps onto it:

* ``rows`` gives the address lines: ``rows = 2 << n_addr_lines`` (16 rows: 3, 32: 4,
  64: 5); other heights (and rpi-rgb-led-matrix's multiplexing options) are refused;
* ``cols`` x ``chain_length`` is the width; ``parallel`` chains are lanes of an Active-3
  style board (``n_lanes`` = 2 a chain, up to 3 chains), mapped chain 1 on top;
* ``hardware_mapping``: ``regular`` is ``Pinout.Active3BGR``, the very GPIOs of
  rpi-rgb-led-matrix's ``regular`` wiring (R1 on GPIO 11, B1 on GPIO 7);
  ``adafruit-hat`` and ``adafruit-hat-pwm`` are ``Pinout.AdafruitMatrixBonnet`` (Adafruit's
  Bonnet and HAT); the other mappings have no Piomatter pinout;
* ``pwm_bits`` is ``n_planes`` (at most 10); temporal planes are off (no shimmer);
* ``brightness``: Piomatter has none, so the output scales the picture as it copies it
  into the framebuffer (the same multiplication as the PNG output's software dimming);
* ``gpio_slowdown`` does not apply (PIO timing), and ``drop_privileges`` neither: the
  player needs read-write access to ``/dev/pio0`` (group ``gpio``, see docs/install.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pygame

from player.errors import MissingDependency, OutputError
from player.render.colours import PanelColours, reduce_rows
from player.render.outputs.base import Output, Size, copy_colour, dim, dim_level

if TYPE_CHECKING:
    from player.render.outputs.ledmatrix import LedOptions

log = logging.getLogger(__name__)

PINOUTS = {"regular": "Active3BGR", "adafruit-hat": "AdafruitMatrixBonnet",
           "adafruit-hat-pwm": "AdafruitMatrixBonnet"}
"""``display.led.hardware_mapping`` → the ``piomatter.Pinout`` wired the same way."""
LANES = {"Active3BGR": 6, "AdafruitMatrixBonnet": 2}
"""Colour lanes (3 RGB pins each; two a chain) of each pinout."""
MAX_PLANES = 10
MAX_ADDRESS_LINES = 5


def wiring_problems(rows: int, parallel: int, hardware_mapping: str) -> list[str]:
    """What in these ``display.led`` settings Piomatter cannot drive, each naming its key
    (for ``check`` when the config names the driver, and before the driver starts)."""
    problems = []
    pinout = PINOUTS.get(hardware_mapping)
    if pinout is None:
        problems.append(f"display.led.hardware_mapping: {hardware_mapping} has no Piomatter pinout; "
                        f"with the Raspberry Pi 5 driver use {', '.join(PINOUTS)}")
    elif 2 * parallel > LANES[pinout]:
        problems.append(f"display.led.parallel: {parallel} chains need hardware_mapping regular "
                        f"(an Active-3 style board, up to {LANES['Active3BGR'] // 2} chains) with the "
                        "Raspberry Pi 5 driver")
    n = (rows // 2).bit_length() - 1
    if rows < 4 or 2 << n != rows or n > MAX_ADDRESS_LINES:
        problems.append(f"display.led.rows: {rows} rows cannot be driven by Piomatter: it addresses "
                        "panels of 2 << n rows (8, 16, 32 or 64) with 1 to 5 address lines")
    return problems


def address_lines(rows: int) -> int:
    """The ``n_addr_lines`` of a panel ``rows`` high (``rows == 2 << n``)."""
    return (rows // 2).bit_length() - 1


def lane_map(width: int, height: int, n_addr_lines: int, n_lanes: int) -> list[int]:
    """Framebuffer index of each pixel in the order the lanes shift them out: for each row
    address, for each column, each lane in turn (lane 2k and 2k+1: top and bottom half of
    chain k+1, chains stacked top to bottom)."""
    half = 1 << n_addr_lines
    if height != n_lanes * half:
        raise OutputError(f"display.led: {n_lanes} lanes of {half} rows make {n_lanes * half} rows, "
                          f"not {height}")
    return [x + width * (address + lane * half)
            for address in range(half) for x in range(width) for lane in range(n_lanes)]


class PiomatterOutput(Output):
    """Shows frames on a ``piomatter.PioMatter`` over ``framebuffer`` (packed RGB).

    Each frame is copied into the output's own picture, reduced to ``colours``, copied
    into the framebuffer dimmed to the brightness, and handed to the driver with
    ``show()``. Build it with :func:`open_piomatter`.
    """

    name = "ledmatrix"
    driver = "piomatter"

    def __init__(self, matrix: Any, framebuffer: bytearray, size: Size, brightness: int = 100,
                 colours: PanelColours | None = None) -> None:
        super().__init__(size)
        if len(framebuffer) != self.size[0] * self.size[1] * 3:
            raise OutputError("output ledmatrix: the Piomatter framebuffer does not match the panel's size")
        self.matrix = matrix
        self.colours = colours or PanelColours()
        self.framebuffer = framebuffer
        self._screen = pygame.image.frombuffer(framebuffer, self.size, "RGB")
        self._pixels = bytearray(len(framebuffer))  # the last picture, reduced, not dimmed
        self._picture = pygame.image.frombuffer(self._pixels, self.size, "RGB")
        self._has_picture = False
        self.brightness = max(0, min(100, round(brightness)))
        self.status = f"ok: LED matrix {self.size[0]}x{self.size[1]} (Piomatter)"

    def show(self, frame: pygame.Surface, dirty: Sequence[pygame.Rect] | None) -> float:
        self._check_frame(frame)
        if dirty is None or len(dirty) > 0 or not self._has_picture:
            copy_colour(frame, pygame.Rect((0, 0), self.size), self._picture, (0, 0))
            reduce_rows(self._pixels, self.size[0], 0, self.size[1], self.colours)
            self._has_picture = True
            if self.powered:
                self._present()
        return self._shown()

    def set_brightness(self, percent: float) -> bool:
        """Applied by this output (Piomatter has no brightness): the picture is copied
        again, scaled, at once."""
        level = max(0, min(100, round(percent)))
        if level != self.brightness and not self.closed:
            self.brightness = level
            if self.powered and self._has_picture:
                self._present()
        return True

    def set_power(self, on: bool) -> str:
        """Asleep: every LED off (a black framebuffer shown); awake: the last picture again."""
        if self.closed:
            return "closed"
        self.powered = on
        if on:
            if self._has_picture:
                self._present()
            return "picture shown"
        self._blank()
        return "LED matrix blanked (every LED off)"

    def _present(self) -> None:
        self.framebuffer[:] = self._pixels
        level = dim_level(self.brightness / 100)
        if level < 255:
            dim(self._screen, level)
        self._push()

    def _blank(self) -> None:
        self.framebuffer[:] = bytes(len(self.framebuffer))
        self._push()

    def _push(self) -> None:
        try:
            self.matrix.show()
        except OSError as e:  # reported by the driver's thread: say so, keep the loop going
            self.healthy = False
            self.status = f"error: Piomatter: {e}"
            log.error("LED matrix: %s", self.status)
            return
        if not self.healthy:
            self.healthy = True
            self.status = f"ok: LED matrix {self.size[0]}x{self.size[1]} (Piomatter)"

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        try:
            self._blank()
        except Exception as e:  # the panel may already be gone; closing must not fail
            log.warning("LED matrix clear failed: %s", e)
        self.matrix = None  # the driver stops its thread and frees the PIO when released
        self.healthy = False
        self.status = "closed"


def open_piomatter(led: LedOptions, colours: PanelColours | None = None) -> PiomatterOutput:
    """Start Piomatter for the panels ``led`` describes; see the module docstring."""
    from player.render.outputs.ledmatrix import driver_message

    try:
        import adafruit_blinka_raspberry_pi5_piomatter as piomatter  # type: ignore[import-not-found]
    except ImportError as e:
        raise MissingDependency(driver_message("piomatter", e)) from e
    problems = wiring_problems(led.rows, led.parallel, led.hardware_mapping)
    if problems:
        raise OutputError("; ".join(problems))
    pinout = PINOUTS[led.hardware_mapping]
    n_lanes = 2 * led.parallel
    n_addr_lines = address_lines(led.rows)
    width, height = led.size
    planes = max(1, min(MAX_PLANES, led.pwm_bits or MAX_PLANES))
    try:
        if led.parallel == 1:
            geometry = piomatter.Geometry(width=width, height=height, n_addr_lines=n_addr_lines,
                                          rotation=piomatter.Orientation.Normal, n_planes=planes,
                                          n_temporal_planes=0)
        else:
            geometry = piomatter.Geometry(width=width, height=height, n_addr_lines=n_addr_lines,
                                          map=lane_map(width, height, n_addr_lines, n_lanes),
                                          n_planes=planes, n_temporal_planes=0, n_lanes=n_lanes)
        framebuffer = bytearray(width * height * 3)
        matrix = piomatter.PioMatter(colorspace=piomatter.Colorspace.RGB888Packed,
                                     pinout=getattr(piomatter.Pinout, pinout),
                                     framebuffer=framebuffer, geometry=geometry)
    except OutputError:
        raise
    except Exception as e:
        raise OutputError(
            f"output ledmatrix: the Piomatter driver did not start ({e}); it needs a Raspberry Pi 5 "
            "with /dev/pio0 (current firmware and kernel) that the player may open (group gpio), "
            "and the options must match the panels (rows, cols, hardware_mapping)"
        ) from e
    return PiomatterOutput(matrix, framebuffer, (width, height), led.brightness, colours)
