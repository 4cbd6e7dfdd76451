"""The LED matrix output: HUB75 panels driven by rpi-rgb-led-matrix (``rgbmatrix``).

``rgbmatrix`` is built from source on the Pi (it is not on PyPI), so it is imported
only inside :func:`open_ledmatrix`; without it the player says how to build it.
:func:`missing_driver` asks the same question before anything is opened, for
``panel-player check`` and for ``run`` (which then shows the error instead of
restarting in a loop)::

    problem = missing_driver()
    if problem is not None:
        print(problem)   # what is missing, for which Python, and how to install it

Each frame becomes an RGB Pillow image, is drawn on the off-screen canvas and swapped
in on the next refresh (double buffering).  The library applies brightness when pixels
are drawn, not when they are shown, so :meth:`LedMatrixOutput.set_brightness` redraws
the last picture.  The library drops root to ``daemon`` after start-up unless
``drop_privileges`` is False, which is our default: the player still has files to write.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import pygame
from PIL import Image

from player.errors import MissingDependency, OutputError
from player.render.outputs.base import Output, Size

log = logging.getLogger(__name__)

# Since February 2026 the binding is built by pip (scikit-build-core and CMake) from the
# repository's root; older checkouts still have `make build-python`.
BUILD_HINT = (
    "It is not on PyPI and must be built on the Raspberry Pi, into that Python:\n"
    "  sudo apt-get install -y git build-essential cmake python3-dev\n"
    "  sudo {python} -m pip install git+https://github.com/hzeller/rpi-rgb-led-matrix\n"
    "(a checkout from before February 2026 builds with "
    "`make build-python PYTHON={python} && sudo make install-python PYTHON={python}`; "
    "details: bindings/python/README.md in that repository), "
    "or choose another display.output: fbdev, sdl or png."
)
MISSING = ("display.output: ledmatrix: the Python module '{module}' of rpi-rgb-led-matrix "
           "is not installed for {python}.\n")
BROKEN = ("display.output: ledmatrix: the Python module '{module}' of rpi-rgb-led-matrix "
          "is installed for {python} but does not load ({error}); build it again.\n")
# display.led.driver (CONTRACT §9) will name others; each entry: the module to import.
DRIVERS = {"rgbmatrix": "rgbmatrix"}


def _driver_message(module: str, error: ImportError) -> str:
    python = sys.executable or "python3"
    if isinstance(error, ModuleNotFoundError) and error.name == module:
        head = MISSING.format(module=module, python=python)
    else:  # found but broken: built for another Python, a missing .so, a library it links
        head = BROKEN.format(module=module, python=python, error=error)
    return head + BUILD_HINT.format(python=python)


def missing_driver(driver: str = "rgbmatrix") -> str | None:
    """None when the LED matrix driver ``driver`` can be imported by this Python, else why not.

    The message names the missing module and this interpreter, and says how to
    build and install it. The import touches no hardware. A module that failed
    to import is tried again at the next call; call ``importlib.invalidate_caches()``
    first when it may have been installed since. Example::

        if cfg.display.output == "ledmatrix" and (problem := missing_driver()):
            raise SystemExit(problem)
    """
    module = DRIVERS[driver]
    try:
        importlib.import_module(module)
    except ImportError as e:
        return _driver_message(module, e)
    return None


@dataclass(frozen=True)
class LedOptions:
    """Panel wiring and timing, named as ``rgbmatrix.RGBMatrixOptions`` names them.

    None leaves the library's default.  Example for two 64x32 panels on an Adafruit
    HAT: ``LedOptions(rows=32, cols=64, chain_length=2, hardware_mapping="adafruit-hat",
    gpio_slowdown=4)``.
    """

    rows: int = 32
    cols: int = 64
    chain_length: int = 1
    parallel: int = 1
    hardware_mapping: str = "regular"
    gpio_slowdown: int | None = None
    pwm_bits: int | None = None
    pwm_lsb_nanoseconds: int | None = None
    pwm_dither_bits: int | None = None
    brightness: int = 100
    scan_mode: int | None = None
    row_address_type: int | None = None
    multiplexing: int | None = None
    led_rgb_sequence: str | None = None
    pixel_mapper_config: str | None = None
    panel_type: str | None = None
    limit_refresh_rate_hz: int | None = None
    disable_hardware_pulsing: bool | None = None
    drop_privileges: bool = False

    def apply(self, options: Any) -> None:
        """Copy every set field onto an ``RGBMatrixOptions``."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                setattr(options, f.name, int(value) if isinstance(value, bool) else value)

    @property
    def size(self) -> Size:
        """Pixels of the assembled panel, before any pixel mapper."""
        return (self.cols * self.chain_length, self.rows * self.parallel)


def frame_to_image(frame: pygame.Surface) -> Image.Image:
    """The frame as an RGB Pillow image (conversion done in C)."""
    return Image.frombytes("RGB", frame.get_size(), pygame.image.tobytes(frame, "RGB"))


def _clamp_percent(percent: float) -> int:
    return max(0, min(100, round(percent)))


class LedMatrixOutput(Output):
    """Shows frames on an ``rgbmatrix.RGBMatrix``.  Build it with :func:`open_ledmatrix`."""

    name = "ledmatrix"

    def __init__(self, matrix: Any, brightness: int = 100) -> None:
        super().__init__((matrix.width, matrix.height))
        self.matrix = matrix
        self._canvas = matrix.CreateFrameCanvas()
        self._last: Image.Image | None = None
        self.brightness = _clamp_percent(brightness)
        matrix.brightness = self.brightness
        self.status = f"ok: LED matrix {self.size[0]}x{self.size[1]}"

    def show(self, frame: pygame.Surface, dirty: Sequence[pygame.Rect] | None) -> float:
        self._check_frame(frame)
        # The back canvas holds an older frame, so it is always redrawn whole.
        if dirty is None or len(dirty) > 0 or self._last is None:
            self._last = frame_to_image(frame)
            self._draw(self._last)
        return self._shown()

    def set_brightness(self, percent: float) -> bool:
        level = _clamp_percent(percent)
        if level != self.brightness and not self.closed:
            self.brightness = level
            if self.powered:  # asleep, the level waits for set_power(True)
                self.matrix.brightness = level
                if self._last is not None:
                    self._draw(self._last)
        return True

    def set_power(self, on: bool) -> str:
        """Asleep: the matrix cleared at brightness 0 (every LED off); awake: the last
        picture drawn again at the current brightness."""
        if self.closed:
            return "closed"
        self.powered = on
        if on:
            self.matrix.brightness = self.brightness
            if self._last is not None:
                self._draw(self._last)
            return "picture shown"
        self.matrix.brightness = 0
        self.matrix.Clear()
        return "LED matrix cleared at brightness 0"

    def _draw(self, image: Image.Image) -> None:
        self._canvas.SetImage(image, 0, 0)
        self._canvas = self.matrix.SwapOnVSync(self._canvas)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        try:
            self.matrix.Clear()
        except Exception as e:  # the panel may already be gone; closing must not fail
            log.warning("LED matrix clear failed: %s", e)
        self._last = None
        self.healthy = False
        self.status = "closed"


def open_ledmatrix(led: LedOptions | None = None, size: Size | None = None) -> LedMatrixOutput:
    """Start the matrix driver.  ``size``, when given, must match the panel's."""
    try:
        import rgbmatrix  # type: ignore[import-not-found]
    except ImportError as e:
        raise MissingDependency(_driver_message("rgbmatrix", e)) from e
    led = led or LedOptions()
    options = rgbmatrix.RGBMatrixOptions()
    led.apply(options)
    try:
        matrix = rgbmatrix.RGBMatrix(options=options)
    except Exception as e:
        raise OutputError(
            f"output ledmatrix: the driver did not start ({e}); it needs root for the "
            "GPIO, and the options must match the panels (rows, cols, hardware_mapping)"
        ) from e
    real = (matrix.width, matrix.height)
    if size is not None and tuple(size) != real:
        log.warning("display.size %dx%d ignored: the LED matrix is %dx%d",
                    size[0], size[1], *real)
    return LedMatrixOutput(matrix, led.brightness)
