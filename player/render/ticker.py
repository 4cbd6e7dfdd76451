"""A news ticker: items scrolling right to left at a constant speed in pixels per second.

    ticker = Ticker(painter, ["Collecte des encombrants jeudi"], (1920, 80), (255, 255, 255),
                    (0, 51, 102), speed=120.0, start=time.monotonic())
    ticker.draw(screen, band, time.monotonic())        # every frame
    wake_at = ticker.next_frame(time.monotonic())      # when the picture next changes

The position is a function of the clock, not of the number of frames drawn, so a slow or
irregular frame rate never changes the speed. The text is rendered once into a strip
(``item • item • ``) and each frame blits one or two slices of it, wrapping seamlessly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pygame

from player.render.fonts import Color
from player.render.text import TextPainter, converted

SEPARATOR = "  •  "
MAX_STRIP_PIXELS = 4 * 2**20
"""The most pixels a strip may hold (16 MB at 32 bits per pixel): a longer text is drawn
smaller, down to the font's smallest size, then cut short with "…"."""
MAX_STRIP_WIDTH = 60_000
"""The widest strip, in pixels: FreeType cannot draw a line of 65,536 pixels or more."""


class Ticker:
    """Scrolls items right-to-left at a constant speed in pixels per second, whatever the frame rate.

    ``size`` is the band's (width, height); the text is sized to fill its height.
    ``background`` None leaves the band transparent: the caller then repaints beneath it
    every frame. ``start`` is the monotonic time at which the scrolling began.
    """

    animating: bool

    def __init__(
        self,
        painter: TextPainter,
        items: Sequence[str],
        size: tuple[int, int],
        color: Color,
        background: tuple[int, int, int] | None,
        speed: float,
        start: float,
    ) -> None:
        if speed < 0 or not math.isfinite(speed):
            raise ValueError(f"ticker speed must be a finite number >= 0 px/s, got {speed}")
        self.speed = float(speed)
        self.start = start
        self.size = (max(0, size[0]), max(0, size[1]))
        self.background = background
        texts = [t for t in (painter.prepare(i).replace("\n", " ") for i in items) if t]
        height = self.size[1]
        self.text = "".join(t + SEPARATOR for t in texts)
        self.period = 0
        self.strip: pygame.Surface | None = None
        self._top = 0  # the strip's first row in the band (the line is centred in it)
        if self.text and height > 0:
            px = self._size_within_budget(painter, height)
            line = painter.face.render(self.text, px, color, painter.antialias)
            # 0 when the font draws nothing for the text: no strip then (an empty one would
            # never advance while drawn).
            self.period = line.get_width()
            if self.period > 0:
                # The strip holds the line's rows only; the band's others are filled when drawn.
                top = (height - line.get_height()) // 2
                self._top = max(0, top)
                rows = min(height, line.get_height())
                if background is None:
                    strip = pygame.Surface((self.period, rows), pygame.SRCALPHA)
                    strip.fill((0, 0, 0, 0))
                else:
                    strip = pygame.Surface((self.period, rows))
                    strip.fill(background)
                strip.blit(line, (0, min(0, top)))
                self.strip = converted(strip, alpha=background is None)
        self.animating = self.period > 0 and self.speed > 0

    def _size_within_budget(self, painter: TextPainter, height: int) -> int:
        """The size filling the band's height, or a smaller one (and :attr:`text` cut short)
        when the strip would exceed :data:`MAX_STRIP_PIXELS` or :data:`MAX_STRIP_WIDTH`."""
        face = painter.face

        def excess(px: int) -> float:
            """How many times too large the strip would be at ``px`` (1 or less: it fits)."""
            width = face.width(self.text, px)
            return max(width * min(height, face.line_height(px)) / MAX_STRIP_PIXELS, width / MAX_STRIP_WIDTH)

        px = painter.line_px(self.text, 1 << 30, height)
        for _ in range(12):
            over = excess(px)
            if over <= 1:
                return px
            # Width and height both shrink with the size, on the sizes the font has.
            smaller = face.sizes(max(1, int(px / math.sqrt(over))))[-1]
            if smaller >= px:
                break
            px = smaller
        text = self.text
        over = excess(px)
        while over > 1 and len(text) > 1:
            text = text[:max(1, min(len(text) - 1, int(len(text) / over * 0.95)))]
            self.text = text.rstrip() + "…" + SEPARATOR
            over = excess(px)
        return px

    def offset(self, now: float) -> int:
        """Pixel offset into the strip at monotonic time ``now`` (0 when not animating)."""
        if not self.animating:
            return 0
        return int((now - self.start) * self.speed) % self.period

    def draw(self, surface: pygame.Surface, dest: pygame.Rect, now: float) -> None:
        """Paint the band into ``dest`` (clipped to it) as it is at time ``now``."""
        if self.strip is None:
            if self.background is not None:
                surface.fill(self.background, dest)
            return
        top = min(self._top, dest.h)
        rows = min(self.strip.get_height(), dest.h - top)
        src_x = self.offset(now)
        x, right = dest.x, dest.right
        while rows > 0 and x < right:
            w = min(self.period - src_x, right - x)
            surface.blit(self.strip, (x, dest.y + top), (src_x, 0, w, rows))
            x += w
            src_x = 0
        if self.background is not None:
            if top > 0:
                surface.fill(self.background, (dest.x, dest.y, dest.w, top))
            below = top + max(0, rows)
            if below < dest.h:
                surface.fill(self.background, (dest.x, dest.y + below, dest.w, dest.h - below))

    def next_frame(self, now: float) -> float | None:
        """Monotonic time of the next whole-pixel step after ``now``; None if static."""
        if not self.animating:
            return None
        steps = math.floor((now - self.start) * self.speed) + 1
        # A hair late rather than early: waking before the step would draw an unchanged frame.
        return self.start + steps / self.speed + 1e-7
