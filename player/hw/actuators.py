"""What a brightness percentage drives: a backlight, a PWM pin, the LED matrix, or the picture.

Every actuator has ``set(percent)`` (0..100), ``power(on)`` and ``close()`` (safe
twice); ``set`` does nothing when the value is unchanged, so the main loop may call
it on every update. ``power(False)`` switches the light source off for the sleep
hours (backlight ``bl_power``, PWM duty 0) and ``power(True)`` restores the last
level; the software dimmer and the LED matrix leave that to their output, which
blanks itself.

Example::

    actuator = open_actuator(cfg.actuator, set_dim=renderer.set_dim)
    actuator.set(controller.update(...))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from player.errors import ConfigError, OutputError
from player.hw.config import ActuatorConfig


class Actuator(Protocol):
    def set(self, percent: int) -> None: ...

    def power(self, on: bool) -> None: ...

    def close(self) -> None: ...


def _check(percent: float) -> float:
    if not 0 <= percent <= 100:
        raise ValueError(f"brightness must be 0..100, got {percent!r}")
    return float(percent)


class SysfsBacklight:
    """A ``/sys/class/backlight/NAME`` folder: writes ``brightness`` scaled to ``max_brightness``.

    The service user needs write access to ``brightness`` and ``bl_power`` (a udev
    rule giving them to the ``video`` group). Asleep, ``bl_power`` is set to 4
    (``FB_BLANK_POWERDOWN``: the backlight off), or, where the driver has no
    ``bl_power``, ``brightness`` to 0.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.max_brightness = int((self.path / "max_brightness").read_text().strip())
        except (OSError, ValueError) as exc:
            raise OutputError(f"backlight {self.path}: cannot read max_brightness ({exc})") from exc
        if self.max_brightness <= 0:
            raise OutputError(f"backlight {self.path}: max_brightness is {self.max_brightness}")
        self.last: int | None = None
        self.on = True

    def set(self, percent: int) -> None:
        raw = round(_check(percent) * self.max_brightness / 100)
        if raw == self.last:
            return
        if self.on or (self.path / "bl_power").exists():
            self._write("brightness", raw)
        self.last = raw

    def power(self, on: bool) -> None:
        if on == self.on:
            return
        if (self.path / "bl_power").exists():
            self._write("bl_power", 0 if on else 4)
        elif self.last is not None or not on:
            self._write("brightness", (self.last or 0) if on else 0)
        self.on = on

    def _write(self, name: str, value: int) -> None:
        try:
            # sysfs attributes take one write of the whole value; no temporary file here.
            with open(self.path / name, "w") as f:
                f.write(f"{value}\n")
        except OSError as exc:
            raise OutputError(f"backlight {self.path}: cannot write {name} ({exc})") from exc

    def close(self) -> None:
        pass


class PwmBacklight:
    """A PWM pin (gpiozero ``PWMOutputDevice``) whose duty cycle is the brightness."""

    def __init__(self, pin: int | str, *, frequency: float = 1000.0, active_high: bool = True,
                 pin_factory: Any = None) -> None:
        import gpiozero

        self.device: Any = gpiozero.PWMOutputDevice(pin, active_high=active_high, initial_value=0,
                                                    frequency=int(frequency), pin_factory=pin_factory)
        self.last: float | None = None
        self.on = True

    def set(self, percent: int) -> None:
        value = _check(percent) / 100
        if value != self.last and self.device is not None:
            if self.on:
                self.device.value = value
            self.last = value

    def power(self, on: bool) -> None:
        """Off: duty cycle 0 (the backlight dark); on: the last level again."""
        if on != self.on and self.device is not None:
            self.device.value = (self.last or 0.0) if on else 0.0
        self.on = on

    def close(self) -> None:
        if self.device is not None:
            self.device.close()
            self.device = None


class SoftwareDimmer:
    """Dims the picture itself: ``factor`` (0..1) for the renderer, passed to ``set_dim`` if given."""

    def __init__(self, set_dim: Callable[[float], None] | None = None) -> None:
        self.factor = 1.0
        self._set_dim = set_dim

    def set(self, percent: int) -> None:
        factor = _check(percent) / 100
        if factor != self.factor:
            self.factor = factor
            if self._set_dim is not None:
                self._set_dim(factor)

    def power(self, on: bool) -> None:
        """Nothing to switch: the output blanks itself while the screen sleeps."""

    def close(self) -> None:
        self._set_dim = None


class LedMatrixBrightness:
    """The LED matrix output's own brightness (``Output.set_brightness(percent)``).

    The matrix applies it to pixels drawn afterwards, so the output redraws.
    """

    def __init__(self, set_brightness: Callable[[int], None]) -> None:
        self._set_brightness: Callable[[int], None] | None = set_brightness
        self.last: int | None = None

    def set(self, percent: int) -> None:
        value = int(round(_check(percent)))
        if value != self.last and self._set_brightness is not None:
            self._set_brightness(value)
            self.last = value

    def power(self, on: bool) -> None:
        """Nothing to switch: the matrix output clears itself while the screen sleeps."""

    def close(self) -> None:
        self._set_brightness = None


def open_actuator(cfg: ActuatorConfig, *, set_dim: Callable[[float], None] | None = None,
                  set_matrix_brightness: Callable[[int], None] | None = None,
                  pin_factory: Any = None) -> Actuator:
    """The actuator chosen by ``brightness.actuator``."""
    if cfg.type == "backlight":
        if not cfg.path:
            raise ConfigError(["brightness.actuator.path: required"])
        return SysfsBacklight(cfg.path)
    if cfg.type == "pwm":
        if cfg.pin is None:
            raise ConfigError(["brightness.actuator.pin: required"])
        return PwmBacklight(cfg.pin, frequency=cfg.frequency, active_high=cfg.active_high,
                            pin_factory=pin_factory)
    if cfg.type == "ledmatrix":
        if set_matrix_brightness is None:
            raise ConfigError(["brightness.actuator.type: ledmatrix needs display.output: ledmatrix"])
        return LedMatrixBrightness(set_matrix_brightness)
    return SoftwareDimmer(set_dim)
