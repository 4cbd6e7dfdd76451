"""Brightness from ambient light, schedule, temperature and the operator: pure logic.

Order of the rules, applied on every :meth:`BrightnessController.update`:

1. A manual override (the ``brightness`` command) wins until it times out.
2. Otherwise, with a working light sensor: the median of the last ``median``
   readings (a one-reading spike such as headlights vanishes), smoothed
   exponentially (time constant ``smoothing``), mapped through ``curve`` and
   capped by the ``night`` schedule. A missed reading keeps the last level.
3. Without one (none configured, or a fault: reported by :attr:`fault`): the
   ``fallback`` schedule (``day`` / ``night`` percent), also night-capped.
4. The result is kept within ``min``..``max``; the override too.
4b. An alert floor (``alerts.min_brightness`` while an alert at or above
   ``alerts.wake_level`` is on screen) lifts the result to at least that, over
   the night cap, the sensor, the override and ``max``: people in the street must
   be able to read it.
5. Thermal derating: above ``derate.above_c`` the output is capped at
   ``max - per_degree × (temp - above_c)``, never below ``derate.floor``.
   It applies to the override and the alert floor as well: it protects the
   hardware (:attr:`BrightnessController.below_floor` then says the alert floor
   was not reached).
6. Hysteresis: a change smaller than ``hysteresis`` points is not applied,
   unless the source changed or the value reaches ``min``/``max``.

Example::

    ctl = BrightnessController(cfg)
    percent = ctl.update(0.4, time.monotonic(), datetime.now(tz), 52.0, sensor_ok=True)
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from datetime import datetime
from typing import Any

from player.hw.config import BrightnessConfig

SOURCES = ("sensor", "schedule", "override")


def interpolate(curve: tuple[tuple[float, float], ...], ambient: float) -> float:
    """Piecewise-linear ``curve`` at ``ambient``; flat beyond its first and last points."""
    if ambient <= curve[0][0]:
        return curve[0][1]
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if ambient <= x1:
            return y0 + (y1 - y0) * (ambient - x0) / (x1 - x0)
    return curve[-1][1]


class BrightnessController:
    """Turns readings into a brightness percentage; holds no I/O and no clock."""

    def __init__(self, cfg: BrightnessConfig) -> None:
        self.cfg = cfg
        self.percent: int | None = None
        self.source = "schedule"
        self.fault = False
        self.derated = False
        self.night_capped = False
        self.floored = False  # the alert floor lifted the level
        self.below_floor = False  # the alert floor asked for more than derating allows
        self.smoothed: float | None = None
        self._window: deque[float] = deque(maxlen=cfg.median)
        self._last_sample: float | None = None
        self._override: tuple[float, float] | None = None  # (percent, until monotonic)

    def _restart_filter(self) -> None:
        self.smoothed = None
        self._window.clear()
        self._last_sample = None

    # -- operator --------------------------------------------------------
    def override(self, value: float, seconds: float | None, now_mono: float) -> None:
        """Hold ``value`` percent for ``seconds`` (from the ``brightness`` command);
        ``None``: until the next override or a restart."""
        if seconds is None:
            seconds = math.inf
        if not (0 <= value <= 100) or not seconds > 0 or math.isnan(seconds):
            raise ValueError("override needs 0 <= value <= 100 and seconds > 0")
        self._override = (float(value), now_mono + seconds)

    def clear_override(self) -> None:
        self._override = None

    def override_until(self) -> float | None:
        """Monotonic time the override ends (the main loop adds it to its deadlines)."""
        if self._override is None or not math.isfinite(self._override[1]):
            return None
        return self._override[1]

    # -- the rules -------------------------------------------------------
    def update(self, ambient: float | None, now_mono: float, local_time: datetime,
               cpu_temp: float | None, sensor_ok: bool, floor: int | None = None) -> int:
        """The brightness (percent) to apply now.

        ``ambient`` is the latest light level (0..1) or ``None`` when there is no
        fresh reading; ``sensor_ok`` is False while the light sensor has a fault;
        pass True when no sensor is configured (the schedule is then the normal
        mode, not a fault). ``floor``: the alert floor in percent, or None.
        """
        cfg = self.cfg
        self.fault = not sensor_ok
        if not sensor_ok:
            self._restart_filter()  # start afresh from the first good reading
        elif ambient is not None:
            self._window.append(min(1.0, max(0.0, ambient)))
            level = statistics.median(self._window)
            if self.smoothed is None or self._last_sample is None or cfg.smoothing <= 0:
                self.smoothed = level
            else:
                dt = max(0.0, now_mono - self._last_sample)
                self.smoothed += (level - self.smoothed) * (1.0 - math.exp(-dt / cfg.smoothing))
            self._last_sample = now_mono

        clock = local_time.time()
        cap = cfg.night.max if cfg.night is not None and cfg.night.hours.contains(clock) else None
        if self._override is not None and now_mono >= self._override[1]:
            self._override = None
        if self._override is not None:
            source, target = "override", self._override[0]
            self.night_capped = False
        else:
            if self.smoothed is not None:
                source, target = "sensor", interpolate(cfg.curve, self.smoothed)
            else:
                fb = cfg.fallback
                source, target = "schedule", float(fb.night if fb.hours.contains(clock) else fb.day)
            self.night_capped = cap is not None and target > cap
            if cap is not None and target > cap:
                target = float(cap)
        target = min(float(cfg.max), max(float(cfg.min), target))
        was_floored = self.floored
        self.floored = floor is not None and target < floor
        if floor is not None and target < floor:
            target = float(floor)

        self.derated = False
        if cfg.derate is not None and cpu_temp is not None and cpu_temp > cfg.derate.above_c:
            limit = max(float(cfg.derate.floor), cfg.max - cfg.derate.per_degree * (cpu_temp - cfg.derate.above_c))
            if target > limit:
                target, self.derated = limit, True
        self.below_floor = floor is not None and round(target) < floor

        candidate = int(round(target))
        if (self.percent is None or source != self.source or self.floored != was_floored
                or abs(candidate - self.percent) >= cfg.hysteresis
                or (candidate != self.percent and candidate in (cfg.min, cfg.max))):
            self.percent = candidate
        self.source = source
        return self.percent

    @property
    def state(self) -> dict[str, Any]:
        """Figures for the heartbeat (``brightness_source`` and friends)."""
        return {
            "brightness": self.percent,
            "brightness_source": self.source,
            "brightness_fault": self.fault,
            "derated": self.derated,
            "night_capped": self.night_capped,
            "alert_floor": self.floored,
            "below_alert_floor": self.below_floor,
        }
