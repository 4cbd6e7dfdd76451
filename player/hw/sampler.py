"""Reads the sensors off the main loop and posts :class:`SensorReadings`.

Each sensor has its own reader thread; a round asks all of them at once and
waits at most ``sensors.timeout`` seconds. A sensor that raises, hangs or
returns garbage yields ``None`` for its figure and, past the rules below, a
fault; the other figures still arrive. A hung reader is not asked again until
it returns, so a dead bus costs one blocked thread, never more.

Light sensor fault rules (see :class:`LightHealth`), with fault codes:

- ``light: read failed`` / ``light: timed out`` / ``light: out of range``:
  ``fail_after`` consecutive reads raised, took longer than the time-out, or
  returned a non-number or a value outside ``[min_valid, max_valid]``.
- ``light: disconnected``: the raw reading sat at a rail (exactly 0.0 or 1.0)
  for ``rail_after_s`` seconds: an open or shorted divider.
- ``light: stuck``: every raw reading was exactly identical for
  ``stuck_after_s`` seconds; a live LDR divider moves by at least one ADC step.

The codes are stable strings so the heartbeat's error list can count them.

Example::

    inbox: queue.Queue[object] = queue.Queue()
    sampler = Sampler(sensors, cfg, inbox)
    sampler.start()           # posts SensorReadings every cfg.interval seconds
    ...
    sampler.stop()
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from player.hw.config import LightConfig, SensorsConfig
from player.hw.sensors import Sensors

log = logging.getLogger(__name__)

_PENDING = object()


@dataclass(frozen=True)
class SensorReadings:
    """One round of readings; ``None`` where a figure is unknown."""

    ambient: float | None
    cpu_temp_c: float | None
    door_open: bool | None
    throttled: dict[str, bool] | None
    faults: tuple[str, ...] = ()
    mono: float = 0.0

    @property
    def light_ok(self) -> bool:
        """False while the light sensor has a fault (brightness then follows its schedule)."""
        return not any(f.startswith("light:") for f in self.faults)


class LightHealth:
    """Applies the fault rules of this module to successive light readings."""

    def __init__(self, cfg: LightConfig) -> None:
        self.cfg = cfg
        self._bad = 0
        self._last_problem = ""
        self._last_value: float | None = None
        self._same_since = 0.0
        self._rail_since: float | None = None

    def observe(self, value: Any, problem: str | None, now: float) -> tuple[float | None, str | None]:
        """Feed one read (a value, or ``problem`` when it failed); return ``(ambient, fault)``.

        ``ambient`` is the usable level (inverted if configured), ``None`` when
        this read is unusable.
        """
        cfg = self.cfg
        if problem is None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not cfg.min_valid <= value <= cfg.max_valid:
                problem = "light: out of range"
        if problem is not None:
            self._bad += 1
            self._last_problem = problem
            self._last_value = None
            self._rail_since = None
            return None, problem if self._bad >= cfg.fail_after else None
        self._bad = 0
        value = float(value)
        if value != self._last_value:
            self._same_since = now
            self._last_value = value
        if value in (0.0, 1.0):
            if self._rail_since is None:
                self._rail_since = now
            if cfg.rail_after_s and now - self._rail_since >= cfg.rail_after_s:
                return None, "light: disconnected"
        else:
            self._rail_since = None
        if cfg.stuck_after_s and now - self._same_since >= cfg.stuck_after_s:
            return None, "light: stuck"
        return (1.0 - value if cfg.invert else value), None


class _Reader:
    """One daemon thread that performs a sensor's reads on request."""

    def __init__(self, name: str, read: Callable[[], Any]) -> None:
        self.name = name
        self._read = read
        self._cond = threading.Condition()
        self._asked = False
        self._result: Any = _PENDING
        self._error: str | None = None
        self._closed = False
        self.busy = False
        self._thread = threading.Thread(target=self._run, name=f"sensor-{name}", daemon=True)
        self._thread.start()

    def ask(self) -> bool:
        """Start a read; False while the previous one has not returned (hung)."""
        with self._cond:
            if self.busy:
                return False
            self.busy, self._asked, self._result, self._error = True, True, _PENDING, None
            self._cond.notify_all()
            return True

    def wait(self, deadline: float) -> tuple[Any, str | None]:
        """``(value, None)``, ``(None, "failed: …")`` or ``(None, "timed out")``."""
        with self._cond:
            while self._result is _PENDING and self._error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, "timed out"
                self._cond.wait(left)
            return (None, self._error) if self._error is not None else (self._result, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._asked and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                self._asked = False
            try:
                value, error = self._read(), None
            except Exception as exc:
                value, error = None, f"read failed ({type(exc).__name__}: {exc})"
            with self._cond:
                self._result, self._error = value, error
                self.busy = False
                self._cond.notify_all()


class Sampler:
    """Samples ``sensors`` every ``cfg.interval`` seconds onto ``out``.

    ``clock`` (monotonic seconds) is injectable so fault rules can be tested
    without waiting; :meth:`sample_once` runs one round synchronously.
    """

    def __init__(self, sensors: Sensors, cfg: SensorsConfig, out: queue.Queue[Any], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sensors = sensors
        self.cfg = cfg
        self.out = out
        self.clock = clock
        self.light_health = LightHealth(cfg.light)
        self.last: SensorReadings | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._readers: dict[str, _Reader] = {}
        for name in ("light", "cpu_temp", "throttle"):
            part = getattr(sensors, name)
            if part is not None:
                self._readers[name] = _Reader(name, part.read)
        if sensors.door is not None:
            sensors.door.on_change(self._door_changed)

    def sample_once(self) -> SensorReadings:
        """Read every sensor (in parallel, bounded by the time-out) and post the result."""
        deadline = time.monotonic() + self.cfg.timeout
        asked = {name: reader.ask() for name, reader in self._readers.items()}
        results: dict[str, tuple[Any, str | None]] = {}
        for name, reader in self._readers.items():
            results[name] = reader.wait(deadline) if asked[name] else (None, "timed out")
        now = self.clock()
        faults: list[str] = list(self.sensors.open_faults)

        ambient = None
        if "light" in results:
            value, problem = results["light"]
            code = None
            if problem is not None:
                code = "light: timed out" if problem == "timed out" else "light: read failed"
            ambient, fault = self.light_health.observe(value, code, now)
            if problem:
                log.warning("light sensor: %s", problem)
            if fault:
                faults.append(fault)

        cpu = None
        if "cpu_temp" in results:
            value, problem = results["cpu_temp"]
            if problem is None and isinstance(value, float) and math.isfinite(value):
                cpu = round(value, 1)
            else:
                faults.append("cpu_temp: timed out" if problem == "timed out" else "cpu_temp: read failed")

        throttled = None
        if "throttle" in results:
            value, problem = results["throttle"]
            throttled = value if problem is None and isinstance(value, dict) else None

        door = self._door_state(faults)
        readings = SensorReadings(ambient=ambient, cpu_temp_c=cpu, door_open=door, throttled=throttled,
                                  faults=tuple(dict.fromkeys(faults)), mono=now)
        with self._lock:
            self.last = readings
        self.out.put(readings)
        return readings

    def _door_state(self, faults: list[str]) -> bool | None:
        door = self.sensors.door
        if door is None:
            return None
        try:
            return bool(door.is_open)
        except Exception as exc:
            log.warning("door switch: %s", exc)
            faults.append("door: read failed")
            return None

    def _door_changed(self, is_open: bool) -> None:
        # Runs in gpiozero's thread: post at once, with the other figures as last read.
        with self._lock:
            base = self.last or SensorReadings(None, None, None, None, tuple(self.sensors.open_faults))
            readings = replace(base, door_open=is_open, mono=self.clock())
            self.last = readings
        self.out.put(readings)

    # -- thread ------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sensor-sampler", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception:  # never let the sampler die: the loop would silently lose sensors
                log.exception("sensor sampling failed")
            self._wake.wait(self.cfg.interval)
            self._wake.clear()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sampling and the reader threads (a hung reader is abandoned, as a daemon)."""
        self._stop.set()
        self._wake.set()
        if self.sensors.door is not None:
            self.sensors.door.on_change(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for reader in self._readers.values():
            reader.close()
