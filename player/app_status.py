"""The ``STATUS=`` line systemd shows (``systemctl status panel-player``): what is on screen, and the link.

Sent only when it changes (a slide, an alert, sleep, the MQTT link), never per frame::

    playing hiver-2026 v3 (slide marche); MQTT connected
    ALERT crue-1 (critical) on screen; MQTT reconnecting since 14:02 (lost 3 times)
    asleep until 06:30; MQTT connected

The main loop calls :meth:`StatusLine.update` after its timed work; nothing is
sent before ``READY=1`` (whose own status names the first content).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import Player


class StatusLine:
    """Composes the status line and sends it through the player's notifier when it changed."""

    def __init__(self) -> None:
        self.last: str | None = None
        self.sent = 0
        self._was_connected = False
        self._lost = 0
        self._down_since: datetime | None = None

    def update(self, p: Player, now: float, wall: datetime) -> bool:
        """Send the line if it differs from the last one sent; True when sent."""
        if not p.ops.ready_sent:
            return False
        text = f"{self.screen_part(p, now, wall)}; {self.link_part(p, wall)}"
        if text == self.last:
            return False
        self.last = text
        if not p.ops.notifier.status(text):
            return False
        self.sent += 1
        return True

    def screen_part(self, p: Player, now: float, wall: datetime) -> str:
        screen = p.screen
        if screen.asleep:
            if screen.slept_until is not None:
                if screen.slept_until == math.inf:
                    return "asleep (sleep command)"
                until = wall + timedelta(seconds=max(0.0, screen.slept_until - now))
                return f"asleep until {self._clock(p, until, wall)} (sleep command)"
            wake = screen.hours.next_wake(wall)
            return f"asleep until {self._clock(p, wake, wall)}" if wake is not None else "asleep"
        alert = p.alerts.shown
        if alert is not None:
            text = f"ALERT {alert.id} ({alert.level}) on screen"
            others = len(p.alerts.ids()) - 1
            if others > 0:
                text += f", {others} more active"
        else:
            current = p.content.manager.current
            if current is None:
                text = "idle screen"
            else:
                playlist = current.playlist
                text = f"playing {playlist.id} v{playlist.version}"
                if current.source == "bundled":
                    text += " (bundled)"
                slide = p.content.slide_id
                if slide:
                    text += f" (slide {slide})"
        if screen.state == "woken":
            text += " (woken)"
        if not getattr(p.output, "healthy", True):
            text += f"; display: {getattr(p.output, 'status', '') or 'not working'}"
        return text

    def link_part(self, p: Player, wall: datetime) -> str:
        if not p.cfg.mqtt.enabled:
            return "MQTT off"
        if p.ops.connected:
            self._was_connected = True
            self._down_since = None
            return "MQTT connected"
        if not self._was_connected:
            status = p.ops.link_status
            return "MQTT connecting" + (f" ({status})" if status and status != "connecting" else "")
        if self._down_since is None:
            self._down_since = wall
            self._lost += 1
        times = "1 time" if self._lost == 1 else f"{self._lost} times"
        return f"MQTT reconnecting since {self._clock(p, self._down_since, wall)} (lost {times})"

    @staticmethod
    def _clock(p: Player, when: datetime, wall: datetime) -> str:
        """``HH:MM`` on the panel's clock, with the weekday when it is not today."""
        local, today = when.astimezone(p.tz), wall.astimezone(p.tz)
        return local.strftime("%H:%M") if local.date() == today.date() else local.strftime("%a %H:%M")
