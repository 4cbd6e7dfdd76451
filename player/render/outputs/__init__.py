"""Display outputs: where the main loop's frames go (CONTRACT §2 ``display.output``).

==========  ==============================================================
fbdev       ``/dev/fbN`` memory-mapped; size and pixel format from the device
sdl         a window on a desktop (x11/wayland), the whole screen under kmsdrm
png         ``display.path`` replaced atomically within 1 s of any change
ledmatrix   HUB75 LED panels through rpi-rgb-led-matrix (built on the Pi, Pi 1-4)
            or Adafruit's Piomatter (Pi 5): ``display.led.driver``
==========  ==============================================================

``display.led.colors`` (``mono``, ``rgb111``, ``rgb333``) reduces every frame to what the
LED panel can show (:mod:`player.render.colours`), in the ledmatrix output and in the
png output, which then shows what the panel would.

Example::

    init_display("png", (1920, 1080))
    with open_output("png", size=(1920, 1080), path=Path("/tmp/frame.png")) as out:
        frame = pygame.Surface(out.size).convert()
        out.show(frame, None)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pygame

from player.errors import OutputError
from player.render.outputs.base import Output, Size, clip_rects, row_spans
from player.render.outputs.fbdev import FbdevOutput, FbInfo, open_fbdev, read_info
from player.render.outputs.ledmatrix import (LedMatrixOutput, LedOptions, missing_driver, open_ledmatrix,
                                             resolve_driver)
from player.render.outputs.png import PngOutput, open_png, png_dots_look, write_atomically
from player.render.outputs.sdl import SdlOutput, open_sdl

if TYPE_CHECKING:
    from player.config import DisplayConfig

KINDS = ("fbdev", "sdl", "png", "ledmatrix")

__all__ = [
    "KINDS", "FbInfo", "FbdevOutput", "LedMatrixOutput", "LedOptions", "Output",
    "PngOutput", "SdlOutput", "Size", "clip_rects", "init_display", "missing_driver", "open_configured",
    "open_output", "read_info", "resolve_driver", "row_spans", "write_atomically",
]


def _platform_driver() -> str | None:
    """The SDL video driver for the sdl output, None to let SDL choose."""
    if os.environ.get("SDL_VIDEODRIVER"):
        return None  # the user (or a test) chose
    if os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY"):
        return None  # a desktop session: SDL picks x11 or wayland itself
    return "kmsdrm"  # a console without a desktop, e.g. Raspberry Pi OS Lite


def init_display(kind: str, size: Size | None = None) -> None:
    """Start pygame's display for an output of ``kind``.

    fbdev, png and ledmatrix render off-screen: SDL's ``dummy`` driver with a 1x1 mode,
    so that ``Surface.convert()`` works.  sdl uses the platform's driver (x11/wayland on
    a desktop, kmsdrm on a Pi console); the window itself is opened by
    :func:`open_output`.  Only ``pygame.display`` is started (``pygame.init()`` would
    open audio too).
    """
    if kind not in KINDS:
        raise OutputError(f"unknown display output {kind!r} (expected one of {', '.join(KINDS)})")
    if kind == "sdl":
        driver = _platform_driver()
    else:
        driver = "dummy"
    if driver is not None:
        if pygame.display.get_init() and pygame.display.get_driver() != driver:
            pygame.display.quit()
        os.environ["SDL_VIDEODRIVER"] = driver
    if not pygame.display.get_init():
        try:
            pygame.display.init()
        except pygame.error as e:
            raise OutputError(f"cannot start the display ({driver or 'SDL default'}): {e}. "
                              "Without a screen, use display.output png or fbdev") from e
    if kind != "sdl" and pygame.display.get_surface() is None:
        pygame.display.set_mode((1, 1))


def open_output(kind: str, *, size: Size | None, path: Path | None = None,
                device: str = "/dev/fb0", fps: int = 30,
                sysfs_root: Path | None = None, led: LedOptions | None = None,
                wait_s: float = 0) -> Output:
    """Open the output named by ``display.output``.

    ``size`` is required for png and sdl; fbdev and ledmatrix take theirs from the
    device (read ``output.size``).  ``wait_s`` is how long fbdev waits for its device.
    ``fps`` is accepted for symmetry with the config; frame pacing is the loop's job.
    ``sysfs_root`` (fbdev) defaults to ``/sys``, or for development to the fake tree
    named by the ``PANEL_PLAYER_SYSFS_ROOT`` environment variable (a plain file then
    stands for the device: ``display.device: /tmp/fb0``).

    ``led`` holds the LED matrix's options; its colours (``led.colors``) apply to the
    ledmatrix output and to png, which then shows what the panel shows; with
    ``led.png_dots`` png writes each pixel as an LED dot of that many file pixels.

    Raises DisplayUnavailable (fbdev device still absent after ``wait_s``),
    MissingDependency (the LED matrix driver's module is not installed; the message
    says how to install it; :func:`missing_driver` tells the same before anything is
    opened), OutputError (anything else that makes the output unusable).
    """
    del fps
    if kind == "png":
        look = png_dots_look(led.png_dots) if led is not None and led.png_dots else None
        return open_png(path, size, colours=led.colours if led is not None else None, led_look=look)
    if kind == "fbdev":
        out = open_fbdev(device, sysfs_root, wait_s)
        out.hide_console()
        return out
    if kind == "sdl":
        init_display("sdl", size)  # no-op when already started for sdl
        return open_sdl(size)
    if kind == "ledmatrix":
        return open_ledmatrix(led, size)
    raise OutputError(f"unknown display output {kind!r} (expected one of {', '.join(KINDS)})")


def open_configured(d: DisplayConfig, *, wait_s: float = 0, sysfs_root: Path | None = None) -> Output:
    """:func:`open_output` with the settings of the ``display:`` section ``d``."""
    led = LedOptions(rows=d.led.rows, cols=d.led.cols, chain_length=d.led.chain_length,
                     parallel=d.led.parallel, hardware_mapping=d.led.hardware_mapping,
                     gpio_slowdown=d.led.gpio_slowdown, pwm_bits=d.led.pwm_bits,
                     brightness=d.led.brightness, drop_privileges=d.led.drop_privileges,
                     driver=d.led.driver, colors=d.led.colors, mono_color=d.led.mono_color,
                     mono_threshold=d.led.mono_threshold, png_dots=d.led.png_dots)
    return open_output(d.output, size=d.size, path=d.path, device=d.device, fps=d.fps,
                       sysfs_root=sysfs_root, led=led, wait_s=wait_s)
