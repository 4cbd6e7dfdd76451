"""A working stand-in for rpi-rgb-led-matrix's ``rgbmatrix`` module, for tests only.

It simulates what the player relies on, with the real library's behaviour:

* ``RGBMatrixOptions`` with the real attribute names; unknown names are refused;
* ``RGBMatrix(options=...)`` sized ``cols*chain_length`` x ``rows*parallel``;
* canvases with ``SetPixel``, ``SetImage`` (RGB images only, like the real one),
  ``Fill``, ``Clear``; ``CreateFrameCanvas`` and ``SwapOnVSync`` double buffering;
* brightness applied when a pixel is *drawn* (the real library bakes it into the PWM
  bit planes), so a brightness change shows only after a redraw.

Tests read what the panel shows with ``matrix.shown_pixel(x, y)`` / ``shown_rows()``.
Tests put ``tests/fakes`` on ``sys.path`` to import it.
"""

from __future__ import annotations

from typing import Any

_OPTION_DEFAULTS: dict[str, Any] = {
    "hardware_mapping": "regular", "rows": 32, "cols": 32, "chain_length": 1,
    "parallel": 1, "pwm_bits": 11, "pwm_lsb_nanoseconds": 130, "pwm_dither_bits": 0,
    "brightness": 100, "scan_mode": 0, "row_address_type": 0, "multiplexing": 0,
    "disable_hardware_pulsing": False, "show_refresh_rate": False,
    "inverse_colors": False, "led_rgb_sequence": "RGB", "pixel_mapper_config": "",
    "panel_type": "", "limit_refresh_rate_hz": 0, "gpio_slowdown": 1, "daemon": 0,
    "drop_privileges": 1, "do_gpio_init": True,
}

HARDWARE_MAPPINGS = ("regular", "adafruit-hat", "adafruit-hat-pwm", "regular-pi1",
                     "classic", "classic-pi1", "compute-module")


class RGBMatrixOptions:
    """Options with the real binding's names and defaults."""

    def __init__(self) -> None:
        for name, value in _OPTION_DEFAULTS.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _OPTION_DEFAULTS:
            raise AttributeError(f"'rgbmatrix.core.RGBMatrixOptions' object has no "
                                 f"attribute '{name}'")
        if isinstance(value, bool) and not isinstance(_OPTION_DEFAULTS[name], bool):
            value = int(value)  # the binding stores uint8 fields
        object.__setattr__(self, name, value)


def _scale(value: int, brightness: int) -> int:
    return value * brightness // 100


class FrameCanvas:
    """A frame buffer holding each pixel as it will be lit (brightness baked in)."""

    def __init__(self, width: int, height: int, brightness: int) -> None:
        self.width = width
        self.height = height
        self.brightness = brightness
        self._pixels = bytearray(width * height * 3)
        self.images_set = 0

    def SetPixel(self, x: int, y: int, red: int, green: int, blue: int) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            b = self.brightness
            self._pixels[i:i + 3] = bytes((_scale(red, b), _scale(green, b), _scale(blue, b)))

    def Fill(self, red: int, green: int, blue: int) -> None:
        for y in range(self.height):
            for x in range(self.width):
                self.SetPixel(x, y, red, green, blue)

    def Clear(self) -> None:
        self._pixels[:] = bytes(len(self._pixels))

    def SetImage(self, image: Any, offset_x: int = 0, offset_y: int = 0,
                 unsafe: bool = True) -> None:
        if image.mode != "RGB":
            raise Exception("Currently, only RGB mode is supported for SetImage().")
        w, h = image.size
        data = image.tobytes()
        for y in range(max(0, -offset_y), min(h, self.height - offset_y)):
            for x in range(max(0, -offset_x), min(w, self.width - offset_x)):
                i = (y * w + x) * 3
                self.SetPixel(x + offset_x, y + offset_y, data[i], data[i + 1], data[i + 2])
        self.images_set += 1

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        i = (y * self.width + x) * 3
        return (self._pixels[i], self._pixels[i + 1], self._pixels[i + 2])


class RGBMatrix:
    """The panel: shows one canvas, swaps in another on (simulated) vertical sync."""

    def __init__(self, rows: int | None = None, chains: int | None = None,
                 parallel: int | None = None, options: RGBMatrixOptions | None = None) -> None:
        options = options or RGBMatrixOptions()
        if rows is not None:
            options.rows = rows
        if chains is not None:
            options.chain_length = chains
        if parallel is not None:
            options.parallel = parallel
        if options.hardware_mapping not in HARDWARE_MAPPINGS:
            raise Exception("RGBMatrix creation failed")
        self.options = options
        self.width = options.cols * options.chain_length
        self.height = options.rows * options.parallel
        self._brightness = options.brightness
        self._canvases: list[FrameCanvas] = []
        self._shown = self._new_canvas()
        self.swaps = 0
        self.cleared = 0

    def _new_canvas(self) -> FrameCanvas:
        c = FrameCanvas(self.width, self.height, self._brightness)
        self._canvases.append(c)
        return c

    def CreateFrameCanvas(self) -> FrameCanvas:
        return self._new_canvas()

    def SwapOnVSync(self, canvas: FrameCanvas | None, framerate_fraction: int = 1) -> FrameCanvas:
        previous = self._shown
        if canvas is not None:
            if canvas not in self._canvases:
                raise Exception("C++ SwapOnVSync failed")
            self._shown = canvas
            self.swaps += 1
        return previous

    @property
    def brightness(self) -> int:
        return self._brightness

    @brightness.setter
    def brightness(self, value: int) -> None:
        value = int(value)
        if not 0 <= value <= 255:
            raise OverflowError("value too large to convert to uint8_t")
        # Like the library: future drawing on every canvas uses the new level.
        self._brightness = min(value, 100)
        for c in self._canvases:
            c.brightness = self._brightness

    def SetPixel(self, x: int, y: int, red: int, green: int, blue: int) -> None:
        self._shown.SetPixel(x, y, red, green, blue)

    def SetImage(self, image: Any, offset_x: int = 0, offset_y: int = 0,
                 unsafe: bool = True) -> None:
        self._shown.SetImage(image, offset_x, offset_y, unsafe)

    def Fill(self, red: int, green: int, blue: int) -> None:
        self._shown.Fill(red, green, blue)

    def Clear(self) -> None:
        self._shown.Clear()
        self.cleared += 1

    # -- for tests: what the LEDs show --------------------------------------------

    def shown_pixel(self, x: int, y: int) -> tuple[int, int, int]:
        return self._shown.pixel(x, y)

    def shown_rows(self) -> list[list[tuple[int, int, int]]]:
        return [[self._shown.pixel(x, y) for x in range(self.width)]
                for y in range(self.height)]
