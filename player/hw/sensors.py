"""The panel's sensors behind small interfaces, real ones over gpiozero 2.x.

gpiozero is imported inside the factories only. With gpiozero's mock pin
factory (``GPIOZERO_PIN_FACTORY=mock``) :func:`open_sensors` attaches a
simulated ADC (:class:`player.hw.fakes.SimulatedADC`) to the SPI pins, so the
whole chain (SPI transfer, conversion, fault detection) runs in development
and CI; ``Sensors.simulation`` lets a test or a demo move the light level.

Reads may block or raise; :mod:`player.hw.sampler` calls them off the main
loop with time-outs.

Example::

    with open_sensors(cfg) as sensors:
        if sensors.light:
            level = sensors.light.read()     # 0..1, or SensorError
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from player.errors import SensorError
from player.hw.config import FIRMWARE_THROTTLE, THERMAL_ZONE0, DoorConfig, LightConfig, SensorsConfig

log = logging.getLogger(__name__)

DoorCallback = Callable[[bool], None]


class LightSensorReader(Protocol):
    def read(self) -> float:
        """The raw light reading, 0..1; raises :class:`SensorError`."""

    def close(self) -> None: ...


class CpuTemp(Protocol):
    def read(self) -> float:
        """Degrees Celsius; raises :class:`SensorError`."""

    def close(self) -> None: ...


class Door(Protocol):
    @property
    def is_open(self) -> bool: ...

    def on_change(self, callback: DoorCallback | None) -> None:
        """``callback(is_open)`` runs in gpiozero's thread on every change."""

    def close(self) -> None: ...


class Throttle(Protocol):
    def read(self) -> dict[str, bool] | None:
        """The firmware's under-voltage / throttling flags, ``None`` when unreadable."""


# -- light -----------------------------------------------------------------

class GpioLight:
    """A gpiozero analogue input (``MCP3008``, ``MCP3002``, ``LightSensor``)."""

    def __init__(self, device: Any) -> None:
        self.device = device
        bits = getattr(device, "bits", None)
        self._full_scale = 2**bits - 1 if isinstance(bits, int) and hasattr(device, "raw_value") else 0

    def read(self) -> float:
        try:
            if self._full_scale:
                # The raw code keeps the rails exact: gpiozero's MCP3xxx ``value``
                # maps code 0 to 1/2047, never 0.0, hiding a cut wire.
                value = self.device.raw_value / self._full_scale
            else:
                value = float(self.device.value)
        except Exception as exc:
            raise SensorError(f"light: {type(exc).__name__}: {exc}") from exc
        if not math.isfinite(value):
            raise SensorError(f"light: not a number ({value!r})")
        return value

    def close(self) -> None:
        self.device.close()


def open_light(cfg: LightConfig, pin_factory: Any = None) -> GpioLight | None:
    """The configured light sensor, or ``None`` for ``type: none``."""
    if cfg.type == "none":
        return None
    import gpiozero

    if cfg.type == "lightsensor":
        return GpioLight(gpiozero.LightSensor(cfg.pin, pin_factory=pin_factory))
    cls = gpiozero.MCP3008 if cfg.type == "mcp3008" else gpiozero.MCP3002
    return GpioLight(cls(channel=cfg.channel, port=cfg.port, device=cfg.device, pin_factory=pin_factory))


# -- CPU temperature --------------------------------------------------------

class FileCpuTemp:
    """A millidegree sensor file (a thermal zone, or any file of that format).

    Read directly rather than through gpiozero ``CPUTemperature``: that class
    needs a working pin factory, which a machine without GPIO lacks, and the
    temperature is wanted there too.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> float:
        try:
            text = Path(self.path).read_text().strip()
            value = int(text) / 1000
        except (OSError, ValueError) as exc:
            raise SensorError(f"cpu_temp: cannot read {self.path}: {exc}") from exc
        if not -60.0 <= value <= 200.0:
            raise SensorError(f"cpu_temp: implausible reading {value!r}")
        return value

    def close(self) -> None:
        pass


# -- door ------------------------------------------------------------------

class GpioDoor:
    """A door switch on a gpiozero ``Button``."""

    def __init__(self, cfg: DoorConfig, pin_factory: Any = None) -> None:
        import gpiozero

        self._open_when_pressed = cfg.open_when == "pressed"
        self._callback: DoorCallback | None = None
        self.button = gpiozero.Button(cfg.pin, pull_up=cfg.pull_up, bounce_time=cfg.bounce_s or None,
                                      pin_factory=pin_factory)
        self.button.when_pressed = self._changed
        self.button.when_released = self._changed

    @property
    def is_open(self) -> bool:
        return bool(self.button.is_pressed) == self._open_when_pressed

    def on_change(self, callback: DoorCallback | None) -> None:
        self._callback = callback

    def _changed(self) -> None:
        callback = self._callback
        if callback is not None:
            try:
                callback(self.is_open)
            except Exception:  # a gpiozero callback must never die silently
                log.exception("door callback failed")

    def close(self) -> None:
        self._callback = None
        self.button.close()


# -- throttling ------------------------------------------------------------

class FileThrottle:
    """The Pi firmware's ``get_throttled`` flags (a hexadecimal number)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> dict[str, bool] | None:
        try:
            bits = int(Path(self.path).read_text().strip(), 16)
        except (OSError, ValueError):
            return None
        return {
            "under_voltage": bool(bits & 0x1),
            "freq_capped": bool(bits & 0x2),
            "throttled": bool(bits & 0x4),
            "soft_temp_limit": bool(bits & 0x8),
            "under_voltage_occurred": bool(bits & 0x10000),
            "throttled_occurred": bool(bits & 0x40000),
        }

    def close(self) -> None:
        pass


def throttle_path(setting: str | None) -> str | None:
    """The throttle file to read for ``sensors.throttle.file``, or ``None``."""
    if setting is None:
        return None
    if setting == "auto":
        return FIRMWARE_THROTTLE if os.path.exists(FIRMWARE_THROTTLE) else None
    return setting


# -- all together ----------------------------------------------------------

@dataclass
class Sensors:
    """The open sensors (``None`` when absent); close it (or use ``with``)."""

    light: LightSensorReader | None = None
    cpu_temp: CpuTemp | None = None
    door: Door | None = None
    throttle: Throttle | None = None
    simulation: Any = None  # the SimulatedADC in mock mode
    open_faults: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Close every device; safe to call twice."""
        for name in ("door", "light", "cpu_temp", "throttle", "simulation"):
            part = getattr(self, name)
            setattr(self, name, None)
            if part is not None and hasattr(part, "close"):
                try:
                    part.close()
                except Exception:
                    log.exception("closing %s failed", name)

    def __enter__(self) -> Sensors:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mock_pins_active() -> bool:
    """Whether gpiozero uses its mock pin factory (set up from the environment if needed)."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    if Device.pin_factory is None and os.environ.get("GPIOZERO_PIN_FACTORY", "").startswith("mock"):
        Device.ensure_pin_factory()
    return isinstance(Device.pin_factory, MockFactory)


def open_sensors(cfg: SensorsConfig, pin_factory: Any = None) -> Sensors:
    """Open every configured sensor.

    A sensor that cannot be opened (no GPIO on this machine, SPI disabled, …)
    is left out and described in ``open_faults``: the panel keeps displaying,
    and brightness falls back to its schedule.
    """
    sensors = Sensors()
    try:
        if cfg.light.type in ("mcp3008", "mcp3002") and pin_factory is None and mock_pins_active():
            from player.hw.fakes import SimulatedADC

            sensors.simulation = SimulatedADC.attach(port=cfg.light.port, device=cfg.light.device,
                                                     model=cfg.light.type, noise_steps=2, seed=None)
        sensors.light = _guarded("light", lambda: open_light(cfg.light, pin_factory), sensors.open_faults)
        # The default thermal zone is absent on some development machines:
        # the figure is then simply unknown (null), not a fault.
        if cfg.cpu_temp_file is not None and (cfg.cpu_temp_file != THERMAL_ZONE0
                                              or os.path.exists(THERMAL_ZONE0)):
            temp_path: str = cfg.cpu_temp_file
            sensors.cpu_temp = _guarded("cpu_temp", lambda: FileCpuTemp(temp_path), sensors.open_faults)
        if cfg.door is not None:
            door = cfg.door
            sensors.door = _guarded("door", lambda: GpioDoor(door, pin_factory), sensors.open_faults)
        path = throttle_path(cfg.throttle_file)
        sensors.throttle = FileThrottle(path) if path else None
    except BaseException:
        sensors.close()
        raise
    return sensors


def _guarded(name: str, make: Callable[[], Any], faults: list[str]) -> Any:
    try:
        return make()
    except Exception as exc:
        log.warning("%s sensor unavailable: %s", name, exc)
        faults.append(f"{name}: unavailable ({type(exc).__name__}: {exc})")
        return None
