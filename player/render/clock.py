"""The clock zone: the time in the panel's timezone, and the date in French when it fits.

    clock = Clock(painter, ZoneInfo("Europe/Paris"))
    clock.draw(screen, zone, datetime.now(timezone.utc), (255, 255, 255))
    wake_at = clock.next_change(datetime.now(timezone.utc))   # the next minute

:meth:`Clock.text` tries, in order: the time and the full date on one line, then on two
lines, then the same with the short date, and finally the time alone. It takes the first
whose time is still at least :data:`MIN_TIME_SHARE` of the size the time alone would get,
so adding the date never shrinks the time to a footnote.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

import pygame

from player.render.fonts import Color
from player.render.text import TextPainter

DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
SHORT_DAYS = ("lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim.")
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
          "septembre", "octobre", "novembre", "décembre")
SHORT_MONTHS = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août",
                "sept.", "oct.", "nov.", "déc.")
MIN_TIME_SHARE = 0.6


def _day(d: datetime) -> str:
    return "1er" if d.day == 1 else str(d.day)


def french_date(d: datetime) -> str:
    """``"mercredi 25 novembre 2026"`` (``"1er"`` for the first of the month)."""
    return f"{DAYS[d.weekday()]} {_day(d)} {MONTHS[d.month - 1]} {d.year}"


def french_short_date(d: datetime) -> str:
    """``"mer. 25 nov."``, the usual French abbreviations (``mars``, ``mai``, ``juin``,
    ``août`` are not shortened)."""
    return f"{SHORT_DAYS[d.weekday()]} {_day(d)} {SHORT_MONTHS[d.month - 1]}"


class Clock:
    """Draws the time (``18:34``) and, room permitting, the date, in timezone ``tz``."""

    def __init__(self, painter: TextPainter, tz: tzinfo) -> None:
        self.painter = painter
        self.tz = tz

    def local(self, now: datetime) -> datetime:
        """``now`` (aware) in the clock's timezone."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("Clock needs an aware datetime (with a timezone)")
        return now.astimezone(self.tz)

    def _one_line_px(self, text: str, width: int, height: int) -> int:
        """Size ``text`` gets on one line, 0 when it does not fit at any size."""
        painter, face = self.painter, self.painter.face
        text = painter.prepare(text)
        px = painter.line_px(text, width, height)
        if face.width(text, px) > width or face.line_height(px) > height:
            return 0
        return px

    def text(self, now: datetime, width: int, height: int) -> str:
        """What :meth:`draw` shows: ``"18:34"``, ``"18:34  mer. 25 nov."`` (one line) or
        ``"18:34\\nmercredi 25 novembre 2026"`` (time above date)."""
        local = self.local(now)
        time = f"{local.hour:02d}:{local.minute:02d}"
        alone = self._one_line_px(time, width, height)
        if alone == 0:
            return time
        wanted = alone * MIN_TIME_SHARE
        for date in (french_date(local), french_short_date(local)):
            one_line = f"{time}  {date}"
            if self._one_line_px(one_line, width, height) >= wanted:
                return one_line
            fitted = self.painter.fit(time, date, width, height)
            if not fitted.truncated and fitted.title_px >= wanted and fitted.body_lines:
                if len(fitted.body_lines) == 1 and len(fitted.title_lines) == 1:
                    return f"{time}\n{date}"
        return time

    def next_change(self, now: datetime) -> datetime:
        """The next minute boundary after ``now``, in ``now``'s timezone."""
        # In UTC: wall-clock arithmetic would land in the hour skipped by a DST change.
        utc = self.local(now).astimezone(timezone.utc)
        return (utc.replace(second=0, microsecond=0) + timedelta(minutes=1)).astimezone(now.tzinfo)

    def draw(self, surface: pygame.Surface, rect: pygame.Rect, now: datetime, color: Color,
             align: str = "center") -> pygame.Rect:
        """Draw :meth:`text` into ``rect``; returns the ink rectangle."""
        shown = self.text(now, rect.w, rect.h)
        if "\n" in shown:
            time, date = shown.split("\n", 1)
            return self.painter.draw(surface, rect, time, date, color, align)
        return self.painter.draw_line(surface, rect, shown, color, align)
