"""Simulating stand-ins for the panel's hardware, for development and tests.

They behave like the hardware rather than returning canned answers:

- :class:`SimulatedADC` is an MCP3008 / MCP3002 answering gpiozero's SPI
  transfers bit by bit on gpiozero's mock pins; the light level on each
  channel is an analogue voltage (0..1 of the reference), converted with
  optional noise of a few steps like a real divider, and it can be broken
  (:meth:`~SimulatedADC.disconnect`, :meth:`~SimulatedADC.freeze`).
- :class:`HungReader` is a light sensor on a bus that stops answering.
- :func:`make_backlight_tree` lays out a ``/sys/class/backlight/NAME`` folder.

Only imported when gpiozero's mock pin factory is active (or by tests).

Example::

    Device.pin_factory = MockFactory()
    chip = SimulatedADC.attach(port=0, device=0, model="mcp3008")
    chip.set_level(0, 0.25)
    MCP3008(channel=0).value      # ≈ 0.25
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockSPIDevice

from player.errors import SensorError

# Raspberry Pi SPI0/SPI1 pins (BCM numbers): clock, mosi, miso, chip selects.
SPI_PINS: dict[int, tuple[int, int, int, tuple[int, ...]]] = {
    0: (11, 10, 9, (8, 7)),
    1: (21, 20, 19, (18, 17, 16)),
}

# model -> (channels, configuration bits after the start bit, idle clocks
# before the null bit). Layouts from the Microchip data sheets, as gpiozero
# clocks them: MCP3008 "1 S C2 C1 C0 | sample | 0 | B9..B0",
# MCP3002 "1 S C MSBF | 0 | B9..B0".
_MODELS: dict[str, tuple[int, int, int]] = {"mcp3008": (8, 4, 1), "mcp3002": (2, 3, 0)}


class SimulatedADC(MockSPIDevice):
    """A 10-bit MCP3xxx ADC on gpiozero's mock SPI pins.

    Create it (with :meth:`attach`) *before* the gpiozero ``MCP3008`` that reads
    it: the chip claims the clock and select pins in their SPI-aware mock form.
    """

    def __init__(self, clock_pin: int, mosi_pin: int, miso_pin: int, select_pin: int, *,
                 model: str = "mcp3008", noise_steps: int = 0, seed: int | None = 0,
                 pin_factory: Any = None) -> None:
        if model not in _MODELS:
            raise ValueError(f"unknown ADC model {model!r}")
        super().__init__(clock_pin, mosi_pin, miso_pin, select_pin, pin_factory=pin_factory)
        self.model = model
        self.channels, self._config_bits, self._idle_bits = _MODELS[model]
        self.levels = [0.5] * self.channels
        self.noise_steps = noise_steps
        self.rng = random.Random(seed)
        self._lock = threading.Lock()
        self._frozen_code: int | None = None
        self._last_code = 0
        self._disconnected: set[int] = set()
        self.conversions = 0

    @classmethod
    def attach(cls, *, port: int = 0, device: int = 0, model: str = "mcp3008",
               noise_steps: int = 0, seed: int | None = 0) -> SimulatedADC:
        """Attach a chip to hardware SPI ``port``/``device``'s pins of the mock factory."""
        factory = Device.pin_factory
        if not isinstance(factory, MockFactory):
            raise SensorError("the simulated ADC needs gpiozero's mock pin factory (GPIOZERO_PIN_FACTORY=mock)")
        clock, mosi, miso, selects = SPI_PINS[port]
        return cls(clock, mosi, miso, selects[device], model=model, noise_steps=noise_steps,
                   seed=seed, pin_factory=factory)

    # -- the world around the chip -----------------------------------------
    def set_level(self, channel: int, level: float) -> None:
        """Set the voltage on ``channel`` as a fraction of the reference (clamped to 0..1)."""
        with self._lock:
            self.levels[channel] = min(1.0, max(0.0, level))

    def disconnect(self, channel: int) -> None:
        """The sensor's wire is cut: the input is pulled to ground and reads 0."""
        with self._lock:
            self._disconnected.add(channel)

    def reconnect(self, channel: int) -> None:
        with self._lock:
            self._disconnected.discard(channel)

    def freeze(self) -> None:
        """The converter latches up: every conversion returns the last result."""
        with self._lock:
            self._frozen_code = self._last_code

    def thaw(self) -> None:
        with self._lock:
            self._frozen_code = None

    def _convert(self, channel: int) -> int:
        with self._lock:
            self.conversions += 1
            if self._frozen_code is not None:
                return self._frozen_code
            if channel in self._disconnected or channel >= self.channels:
                code = 0
            else:
                code = round(self.levels[channel] * 1023)
                if self.noise_steps:
                    code += self.rng.randint(-self.noise_steps, self.noise_steps)
            code = min(1023, max(0, code))
            self._last_code = code
            return code

    # -- SPI slave side ------------------------------------------------------
    def on_bit(self) -> None:
        bits = self.rx_buf
        try:
            start = bits.index(1)
        except ValueError:
            return
        if len(bits) != start + 1 + self._config_bits:
            return
        config = [int(b) for b in bits[start + 1:]]
        if not config[0]:
            # Differential mode: a light divider is always single-ended here.
            channel = self.channels
        else:
            width = 3 if self.channels == 8 else 1
            channel = int("".join(map(str, config[1:1 + width])), 2)
        self.tx_buf.extend([0] * self._idle_bits)
        self.tx_buf.append(0)  # null bit
        self.tx_word(self._convert(channel), 10)


class HungReader:
    """A light sensor whose bus hangs: :meth:`read` blocks until :meth:`release`.

    ``calls`` counts reads started; ``value`` is returned once released.
    """

    def __init__(self, value: float = 0.5) -> None:
        self.value = value
        self.calls = 0
        self._released = threading.Event()
        self.closed = False

    def read(self) -> float:
        self.calls += 1
        self._released.wait()
        if self.closed:
            raise SensorError("closed")
        return self.value

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self.closed = True
        self._released.set()


def make_backlight_tree(root: Path, name: str = "10-0045", max_brightness: int = 255,
                        brightness: int = 0) -> Path:
    """Create ``root/NAME`` shaped like ``/sys/class/backlight/NAME``; return the folder."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "max_brightness").write_text(f"{max_brightness}\n")
    (folder / "brightness").write_text(f"{brightness}\n")
    (folder / "actual_brightness").write_text(f"{brightness}\n")
    (folder / "bl_power").write_text("0\n")
    return folder
