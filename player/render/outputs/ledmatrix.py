"""The LED matrix output: HUB75 panels driven by rpi-rgb-led-matrix or Adafruit's Piomatter.

``display.led.driver`` chooses the driver library (:func:`resolve_driver`):

==============  ===========================================================================
``rgbmatrix``   hzeller's rpi-rgb-led-matrix, Raspberry Pi 1 to 4; built from source on
                the Pi (it is not on PyPI)
``piomatter``   Adafruit's Piomatter (``adafruit-blinka-raspberry-pi5-piomatter`` on
                PyPI), Raspberry Pi 5: the panels are driven by the RP1's PIO
                (:mod:`player.render.outputs.piomatter`)
``auto``        Piomatter on a Raspberry Pi 5 (``/proc/device-tree/model``, else the
                ``Model`` line of ``/proc/cpuinfo``), rpi-rgb-led-matrix otherwise
==============  ===========================================================================

Either module is imported only inside :func:`open_ledmatrix`; without it the player says
how to install it. :func:`missing_driver` asks the same question before anything is
opened, for ``panel-player check`` and for ``run`` (which then shows the error instead of
restarting in a loop)::

    problem = missing_driver("auto")
    if problem is not None:
        print(problem)   # what is missing, for which Python, and how to install it

Each frame becomes an RGB Pillow image, reduced to the panel's colours
(``display.led.colors``, :mod:`player.render.colours`), is drawn on the off-screen
canvas and swapped in on the next refresh (double buffering).  rpi-rgb-led-matrix
applies brightness when pixels are drawn, not when they are shown, so
:meth:`LedMatrixOutput.set_brightness` redraws the last picture.  The library drops root
to ``daemon`` after start-up unless ``drop_privileges`` is False, which is our default:
the player still has files to write.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pygame
from PIL import Image

from player.errors import MissingDependency, OutputError
from player.render.colours import DEFAULT_MONO, DEFAULT_THRESHOLD, PanelColours, reduce_image
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
PIP_HINT = (
    "It is on PyPI; install it into that Python:\n"
    "  sudo {python} -m pip install adafruit-blinka-raspberry-pi5-piomatter\n"
    "(it drives the panels through the Raspberry Pi 5's /dev/pio0, which needs a current "
    "Raspberry Pi OS firmware and kernel), or set display.led.driver: rgbmatrix on a "
    "Raspberry Pi 1 to 4, or choose another display.output: fbdev, sdl or png."
)
MISSING = ("display.output: ledmatrix: the Python module '{module}' of {library} "
           "is not installed for {python}.\n")
BROKEN = ("display.output: ledmatrix: the Python module '{module}' of {library} "
          "is installed for {python} but does not load ({error}); {again}.\n")


@dataclass(frozen=True)
class Driver:
    """A driver library ``display.led.driver`` can name: its module and how to install it."""

    name: str
    module: str
    library: str
    hint: str  # how to install it, with {python}
    again: str  # what to do when it is installed but broken


DRIVERS: dict[str, Driver] = {
    "rgbmatrix": Driver("rgbmatrix", "rgbmatrix", "rpi-rgb-led-matrix", BUILD_HINT, "build it again"),
    "piomatter": Driver("piomatter", "adafruit_blinka_raspberry_pi5_piomatter",
                        "Adafruit's Piomatter (the Raspberry Pi 5 driver)", PIP_HINT, "install it again"),
}
DRIVER_SETTINGS = ("auto", *DRIVERS)
MODEL_ENV = "PANEL_PLAYER_BOARD_MODEL"
"""Development: the board model to assume instead of reading ``/proc``."""
PI5_MODELS = re.compile(r"Raspberry Pi (5|500|Compute Module 5)\b")


def board_model(proc: Path = Path("/proc")) -> str:
    """The board's model, e.g. ``"Raspberry Pi 5 Model B Rev 1.0"``; ``""`` when unknown.

    Read from ``device-tree/model``, else the ``Model`` line of ``cpuinfo``, under
    ``proc``; ``$PANEL_PLAYER_BOARD_MODEL``, when set, is taken instead (development).
    """
    forced = os.environ.get(MODEL_ENV)
    if forced is not None:
        return forced.strip()
    try:
        return (proc / "device-tree" / "model").read_bytes().split(b"\0")[0].decode("utf-8", "replace").strip()
    except OSError:
        pass
    try:
        for line in (proc / "cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() == "Model":
                return value.strip()
    except OSError:
        pass
    return ""


def is_pi5(model: str) -> bool:
    """True for the boards whose GPIO is behind the RP1 chip: Pi 5, Pi 500, Compute Module 5."""
    return PI5_MODELS.search(model) is not None


def resolve_driver(setting: str = "auto", model: str | None = None) -> str:
    """The driver ``display.led.driver: setting`` means on this board: ``rgbmatrix`` or
    ``piomatter``. ``model`` is the board's model (default: :func:`board_model`).

    >>> resolve_driver("auto", model="Raspberry Pi 5 Model B Rev 1.0")
    'piomatter'
    >>> resolve_driver("auto", model="Raspberry Pi 4 Model B Rev 1.5")
    'rgbmatrix'
    """
    if setting == "auto":
        return "piomatter" if is_pi5(board_model() if model is None else model) else "rgbmatrix"
    if setting not in DRIVERS:
        raise OutputError(f"display.led.driver: expected one of {', '.join(DRIVER_SETTINGS)}, got {setting!r}")
    return setting


def driver_message(driver: str, error: ImportError) -> str:
    """Why the module of ``driver`` (``rgbmatrix``, ``piomatter``) did not import, and how
    to install it."""
    d = DRIVERS[driver]
    python = sys.executable or "python3"
    if isinstance(error, ModuleNotFoundError) and error.name == d.module:
        head = MISSING.format(module=d.module, library=d.library, python=python)
    else:  # found but broken: built for another Python, a missing .so, a library it links
        head = BROKEN.format(module=d.module, library=d.library, python=python, error=error, again=d.again)
    return head + d.hint.format(python=python)


def missing_driver(driver: str = "auto", *, model: str | None = None) -> str | None:
    """None when the LED matrix driver that ``display.led.driver: driver`` selects can be
    imported by this Python, else why not (``model``: see :func:`resolve_driver`).

    The message names the missing module and this interpreter, and says how to
    install it (the pip package for Piomatter, the build for rpi-rgb-led-matrix). The
    import touches no hardware. A module that failed to import is tried again at the
    next call; call ``importlib.invalidate_caches()`` first when it may have been
    installed since. Example::

        if cfg.display.output == "ledmatrix" and (problem := missing_driver(cfg.display.led.driver)):
            raise SystemExit(problem)
    """
    name = resolve_driver(driver, model)
    try:
        importlib.import_module(DRIVERS[name].module)
    except ImportError as e:
        return driver_message(name, e)
    return None


_PLAYER: dict[str, Any] = {"driver_option": False}


@dataclass(frozen=True)
class LedOptions:
    """Panel wiring and timing, named as ``rgbmatrix.RGBMatrixOptions`` names them, then
    the player's own choices: which driver, which colours the panel shows.

    None leaves the library's default.  Example for two 64x32 panels on an Adafruit
    HAT: ``LedOptions(rows=32, cols=64, chain_length=2, hardware_mapping="adafruit-hat",
    gpio_slowdown=4)``; a single-colour amber panel adds ``colors="mono",
    mono_color="#ffb000"``.
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
    # Not options of the driver library (apply() leaves them out):
    driver: str = field(default="auto", metadata=_PLAYER)
    colors: str = field(default="rgb", metadata=_PLAYER)
    mono_color: str = field(default=DEFAULT_MONO, metadata=_PLAYER)
    mono_threshold: int = field(default=DEFAULT_THRESHOLD, metadata=_PLAYER)
    png_dots: int = field(default=0, metadata=_PLAYER)  # the png output's LED look (0: plain pixels)

    def apply(self, options: Any) -> None:
        """Copy every set driver option onto an ``RGBMatrixOptions``."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and f.metadata.get("driver_option", True):
                setattr(options, f.name, int(value) if isinstance(value, bool) else value)

    @property
    def size(self) -> Size:
        """Pixels of the assembled panel, before any pixel mapper."""
        return (self.cols * self.chain_length, self.rows * self.parallel)

    @property
    def colours(self) -> PanelColours:
        """What the panel can show (``colors``, ``mono_color``, ``mono_threshold``);
        OutputError naming the key when one is not valid."""
        try:
            return PanelColours.from_settings(self.colors, self.mono_color, self.mono_threshold)
        except (ValueError, TypeError) as e:
            raise OutputError(f"display.led.colors/mono_color: {e}") from e


def frame_to_image(frame: pygame.Surface) -> Image.Image:
    """The frame as an RGB Pillow image (conversion done in C)."""
    return Image.frombytes("RGB", frame.get_size(), pygame.image.tobytes(frame, "RGB"))


def _clamp_percent(percent: float) -> int:
    return max(0, min(100, round(percent)))


class LedMatrixOutput(Output):
    """Shows frames on an ``rgbmatrix.RGBMatrix``.  Build it with :func:`open_ledmatrix`.

    ``colours``: what the panel shows; each frame is reduced to them before it is drawn.
    """

    name = "ledmatrix"
    driver = "rgbmatrix"

    def __init__(self, matrix: Any, brightness: int = 100, colours: PanelColours | None = None) -> None:
        super().__init__((matrix.width, matrix.height))
        self.matrix = matrix
        self.colours = colours or PanelColours()
        self._canvas = matrix.CreateFrameCanvas()
        self._last: Image.Image | None = None
        self.brightness = _clamp_percent(brightness)
        matrix.brightness = self.brightness
        self.status = f"ok: LED matrix {self.size[0]}x{self.size[1]} (rpi-rgb-led-matrix)"

    def show(self, frame: pygame.Surface, dirty: Sequence[pygame.Rect] | None) -> float:
        self._check_frame(frame)
        # The back canvas holds an older frame, so it is always redrawn whole.
        if dirty is None or len(dirty) > 0 or self._last is None:
            self._last = reduce_image(frame_to_image(frame), self.colours)
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


def open_ledmatrix(led: LedOptions | None = None, size: Size | None = None, *,
                   model: str | None = None) -> Output:
    """Start the driver ``led.driver`` selects (``model``: see :func:`resolve_driver`).

    ``size``, when given, must match the panel's.  Raises MissingDependency (the
    driver's module is not installed; the message says how to install it) or
    OutputError (the driver did not start, or the options do not suit it).
    """
    led = led or LedOptions()
    colours = led.colours
    if resolve_driver(led.driver, model) == "piomatter":
        from player.render.outputs.piomatter import open_piomatter

        out: Output = open_piomatter(led, colours)
    else:
        out = _open_rgbmatrix(led, colours)
    if size is not None and tuple(size) != out.size:
        log.warning("display.size %dx%d ignored: the LED matrix is %dx%d", size[0], size[1], *out.size)
    if colours.active:
        log.info("LED matrix colours: %s", colours.describe())
    return out


def _open_rgbmatrix(led: LedOptions, colours: PanelColours) -> LedMatrixOutput:
    try:
        import rgbmatrix  # type: ignore[import-not-found]
    except ImportError as e:
        raise MissingDependency(driver_message("rgbmatrix", e)) from e
    options = rgbmatrix.RGBMatrixOptions()
    led.apply(options)
    try:
        matrix = rgbmatrix.RGBMatrix(options=options)
    except Exception as e:
        raise OutputError(
            f"output ledmatrix: the driver did not start ({e}); it needs root for the "
            "GPIO, and the options must match the panels (rows, cols, hardware_mapping)"
        ) from e
    return LedMatrixOutput(matrix, led.brightness, colours)
