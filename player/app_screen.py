"""The screen on the main loop: sleep hours, wake-ups, and the alert brightness floor.

Each loop pass, after the alerts (:mod:`player.app_alerts`) have taken their
messages, :meth:`ScreenPart.tick` decides the screen's state (:func:`player.screen.decide`)
from the sleep windows, the active alerts and the crews' ``wake`` / ``sleep``
commands, and applies a change before the frame is drawn:

* to sleep: the output blanks its screen (fbdev ``FBIOBLANK``, LED matrix cleared,
  a black picture elsewhere) and the backlight is powered down; the loop then draws
  nothing and wakes only for messages and deadlines (idle CPU ≈ 0);
* to wake: the backlight and the screen come back, the brightness is set (with the
  alert floor when an alert woke it) and the whole frame is drawn at once.

``screen.asleep``, ``screen.woken`` and ``screen.on`` events tell the crews, and the
heartbeat's ``screen`` field says the state.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .screen import SleepHours, decide

if TYPE_CHECKING:
    from .app import Player

log = logging.getLogger("panel-player")

WAKE_DEFAULT_S = 900  # the wake command without seconds: long enough for a crew at the panel
MAX_SCHEDULE_SLEEP_S = 3600.0  # the loop re-reads the wall clock at least this often


class ScreenPart:
    def __init__(self, player: Player) -> None:
        self.p = player
        self.hours = SleepHours(player.cfg.display.sleep, player.tz)
        self.state = "on"
        self.how = ""  # how the output switched its picture off, for the heartbeat and the log
        self.woken_until: float | None = None  # monotonic; a wake (or identify) command
        self.slept_until: float | None = None  # monotonic, may be inf; a sleep command
        self.floor: int | None = None  # the alert brightness floor now in force
        self._change_at: float | None = None  # monotonic: the schedule's next change
        self._cause = "start"  # why the state may change now (a command, its end, the schedule)
        self._alert_woke = False  # an alert kept the screen on at the last pass

    # -- what the other parts ask ------------------------------------------------------
    @property
    def asleep(self) -> bool:
        return self.state == "asleep"

    def visible(self) -> bool:
        """Whether a person in the street can see the picture: a working display, on and lit."""
        brightness = self.p.ops.brightness
        return (not self.asleep and (brightness is None or brightness > 0)
                and bool(getattr(self.p.output, "healthy", True)))

    # -- start / stop -------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Before the first frame: the state at start-up, applied to the output."""
        self.tick(now, datetime.now(timezone.utc), first=True)

    def display_changed(self) -> None:
        """A new output: it starts with its picture on; switch it off again if asleep."""
        if self.asleep:
            self._power(False)

    def close(self) -> None:
        pass

    # -- commands -------------------------------------------------------------------------
    def wake(self, seconds: float | None, now: float, cause: str = "wake command") -> None:
        """Light the screen for ``seconds`` (default :data:`WAKE_DEFAULT_S`), sleep hours or not."""
        self.woken_until = now + (seconds or WAKE_DEFAULT_S)
        self.slept_until = None
        self._cause = cause

    def sleep(self, seconds: float | None, now: float) -> None:
        """Switch the screen off for ``seconds``, or else until the schedule next lights it
        (the end of the current or next sleep window; without windows, until ``wake``)."""
        if seconds is None:
            wall = datetime.now(timezone.utc)
            wake_at = self.hours.next_wake(wall)
            seconds = math.inf if wake_at is None else max(1.0, (wake_at - wall).total_seconds())
        self.slept_until = now + seconds
        self.woken_until = None
        self._cause = "sleep command"

    # -- time -------------------------------------------------------------------------------
    def tick(self, now: float, wall: datetime, first: bool = False) -> None:
        if self.woken_until is not None and now >= self.woken_until:
            self.woken_until, self._cause = None, "wake time over"
        if self.slept_until is not None and now >= self.slept_until:
            self.slept_until, self._cause = None, "sleep time over"
        if first or self._change_at is None or now >= self._change_at:
            change = self.hours.next_change(wall)
            wait = MAX_SCHEDULE_SLEEP_S if change is None else (change - wall).total_seconds()
            self._change_at = now + min(MAX_SCHEDULE_SLEEP_S, max(0.0, wait))
        top = self.p.alerts.board.top_level()
        alert_wakes = top is not None and self.p.cfg.alerts.wakes(top)
        state = decide(scheduled=self.hours.asleep(wall), alert_wakes=alert_wakes,
                       woken=self.woken_until is not None, slept=self.slept_until is not None)
        if state != self.state or first:
            self._switch(state, now, alert_wakes, first)
        self._cause = "schedule"
        self._alert_woke = alert_wakes
        floor = self.p.cfg.alerts.min_brightness if alert_wakes else None
        if floor != self.floor:
            self.floor = floor
            self.p.ops.update_brightness(now)

    def deadlines(self, now: float, wall: datetime) -> list[float | None]:
        return [self._change_at, self.woken_until, self.slept_until if self.slept_until != math.inf else None]

    def _switch(self, state: str, now: float, alert_wakes: bool, first: bool) -> None:
        from .net.protocol import event_screen

        was, self.state = self.state, state
        if state == "asleep":
            self.p.content.pause()
            self._power(False)
            cause = "alert ended" if self._alert_woke and self._cause == "schedule" else self._cause
            log.info("screen asleep (%s): %s", cause, self.how)
            self.p.event(event_screen("screen.asleep", cause, how=self.how))
        else:
            if was == "asleep" or first:
                self._power(True)
            alert = self.p.alerts.board.current(now) if alert_wakes else None
            cause = "alert" if alert is not None else self._cause
            if state == "woken":
                self.p.event(event_screen("screen.woken", cause, alert=alert.id if alert else None))
            elif not first:
                self.p.event(event_screen("screen.on", cause, alert=alert.id if alert else None))
            if was == "asleep" and not first:
                # After the frame that lights the screen: an alert must not wait for the
                # next slide's picture to be decoded.
                self.p.after_frame(lambda _shown_at: self.p.content.resume(time.monotonic()))
        self.p.ops.notable(f"screen {state}")

    def _power(self, on: bool) -> None:
        actuator = self.p.ops.actuator
        try:
            if on and actuator is not None:
                actuator.power(True)
            self.how = self.p.output.set_power(on)
            if not on and actuator is not None:
                actuator.power(False)
        except Exception as exc:  # the screen must still come on for an alert
            log.exception("switching the screen %s", "on" if on else "off")
            self.p.report_error(f"cannot switch the screen {'on' if on else 'off'}: {exc}")
        if on:
            self.p.renderer.invalidate()

    def heartbeat_fields(self) -> dict[str, Any]:
        return {"screen": self.state}
