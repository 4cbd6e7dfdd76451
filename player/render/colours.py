"""Colour reduction for LED panels that show few colours (``display.led.colors``).

Some HUB75 panels have one colour of LED (amber or red street panels), others are driven
with so few PWM bits that each channel is merely on or off. The renderer still draws in
full colour; the picture is reduced by :func:`reduce_image` where it leaves the renderer
for the LED output, and for the PNG output when ``display.led.colors`` is set, so that
the PNG shows what the panel shows::

    colours = PanelColours("mono", mono_color=(255, 176, 0))
    shown = reduce_image(Image.open("slide.png").convert("RGB"), colours)
    # every pixel of ``shown`` is (0, 0, 0) or (255, 176, 0)

The modes:

==========  ==============================================================================
``rgb``     unchanged (the default)
``mono``    every pixel off or the panel's colour: lit where the luminance (ITU-R 601:
            0.299 R + 0.587 G + 0.114 B, as Pillow's ``convert("L")``) is at least
            ``threshold`` (128 by default). Photos are thresholded too, not dithered:
            the frame is reduced as a whole, and dithering would also break anti-aliased
            text and flat mid-tone backgrounds into flickering dot patterns
``rgb111``  each channel on or off (at 128): the 8 colours of 1 PWM bit
``rgb333``  3 bits per channel (0, 36, 73, 109, 146, 182, 219, 255): 512 colours
==========  ==============================================================================

Everything is done by Pillow in C (a luminance conversion, a look-up table, a palette):
a 128x64 panel's frame costs well under a millisecond, a whole 1920x1080 frame 10 to
15 ms (mono, on a desktop PC), so the reduction suits the PNG mirror of an LED panel
rather than a full-HD screen.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from PIL import Image

Color = tuple[int, int, int]

MODES = ("rgb", "mono", "rgb111", "rgb333")
DEFAULT_MONO = "#ffb000"
"""Amber, the usual colour of single-colour street panels."""
DEFAULT_THRESHOLD = 128
BLACK: Color = (0, 0, 0)
_HEX = re.compile(r"#[0-9a-fA-F]{6}")


def parse_hex(text: str) -> Color:
    """``"#ffb000"`` → ``(255, 176, 0)``; ValueError for anything else."""
    if not isinstance(text, str) or not _HEX.fullmatch(text):
        raise ValueError(f"expected a colour as #rrggbb, got {text!r}")
    return (int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16))


def _level(bits: int, value: int) -> int:
    """``value`` (0-255) to the nearest of the ``2**bits`` evenly spaced levels."""
    steps = (1 << bits) - 1
    return ((value * steps + 127) // 255 * 255 + steps // 2) // steps


@dataclass(frozen=True)
class PanelColours:
    """What a panel can show: ``mode`` (one of :data:`MODES`), the lit colour of a
    ``mono`` panel and the luminance (1-255) from which a pixel is lit."""

    mode: str = "rgb"
    mono_color: Color = (255, 176, 0)
    threshold: int = DEFAULT_THRESHOLD

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"colour mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if len(self.mono_color) != 3 or not all(0 <= int(c) <= 255 for c in self.mono_color):
            raise ValueError(f"mono_color must be three values 0-255, got {self.mono_color!r}")
        if not 1 <= int(self.threshold) <= 255:
            raise ValueError(f"threshold must be 1 to 255, got {self.threshold!r}")

    @classmethod
    def from_settings(cls, mode: str, mono_color: str = DEFAULT_MONO,
                      threshold: int = DEFAULT_THRESHOLD) -> PanelColours:
        """From the config's words: ``PanelColours.from_settings("mono", "#ff2000")``."""
        return cls(mode, parse_hex(mono_color), int(threshold))

    @property
    def active(self) -> bool:
        """False when pictures go through unchanged (``rgb``)."""
        return self.mode != "rgb"

    def allows(self, colour: Sequence[int]) -> bool:
        """True when ``colour`` (r, g, b) is one a reduced picture may contain."""
        rgb = tuple(int(c) for c in colour[:3])
        if self.mode == "mono":
            return rgb in (BLACK, tuple(self.mono_color))
        if self.mode == "rgb111":
            return all(c in (0, 255) for c in rgb)
        if self.mode == "rgb333":
            return all(_level(3, c) == c for c in rgb)
        return True

    def describe(self) -> str:
        """In words, for logs and ``check --preflight``."""
        if self.mode == "mono":
            r, g, b = self.mono_color
            return f"mono #{r:02x}{g:02x}{b:02x} (lit from luminance {self.threshold})"
        return self.mode


RGB = PanelColours()
"""Full colour: nothing is reduced."""


@functools.lru_cache(maxsize=16)
def _tables(colours: PanelColours) -> tuple[list[int], list[int]]:
    """(look-up table, palette) of ``colours``. ``mono``: luminance to 0 (off) or 255 (lit),
    and the palette giving index 255 the panel's colour; else the per-channel table."""
    if colours.mode == "mono":
        palette = [0] * 768
        palette[765:768] = colours.mono_color
        return [255 if v >= colours.threshold else 0 for v in range(256)], palette
    bits = 1 if colours.mode == "rgb111" else 3
    return [_level(bits, v) for v in range(256)] * 3, []


def reduce_image(image: Image.Image, colours: PanelColours) -> Image.Image:
    """``image`` (mode RGB) as the panel of ``colours`` shows it: a new RGB image, or
    ``image`` itself for ``rgb``."""
    if not colours.active:
        return image
    if image.mode != "RGB":
        image = image.convert("RGB")
    table, palette = _tables(colours)
    if colours.mode == "mono":
        # Lit or not as an index into a two-colour palette: one C pass per step.
        lit = image.convert("L").point(table).convert("P")
        lit.putpalette(palette)
        return lit.convert("RGB")
    return image.point(table)


def reduce_rows(pixels: bytearray | memoryview, width: int, top: int, bottom: int,
                colours: PanelColours) -> None:
    """Reduce rows ``[top, bottom)`` of packed RGB ``pixels`` (``width`` pixels a row) in place."""
    if not colours.active or bottom <= top or width <= 0:
        return
    view = memoryview(pixels).cast("B")
    start, end = top * width * 3, bottom * width * 3
    rows = Image.frombuffer("RGB", (width, bottom - top), cast(bytes, view[start:end]), "raw", "RGB", 0, 1)
    view[start:end] = reduce_image(rows, colours).tobytes()
