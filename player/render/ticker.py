"""A news ticker: items scrolling right to left at a constant speed in pixels per second.

    ticker = Ticker(painter, ["Collecte des encombrants jeudi"], (1920, 80), (255, 255, 255),
                    (0, 51, 102), speed=120.0, start=time.monotonic())
    ticker.draw(screen, band, time.monotonic())        # every frame
    wake_at = ticker.next_frame(time.monotonic())      # when the picture next changes

The position is a function of the clock, not of the number of frames drawn, so a slow or
irregular frame rate never changes the speed. The line (``item • item • ``) is cut into
pieces at most :data:`PIECE_WIDTH` pixels wide, each rendered into a strip when it first
scrolls into view and kept while memory allows; each frame blits the slices of the one or
two pieces in view, wrapping seamlessly from the line's end to its start.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import OrderedDict
from collections.abc import Sequence

import pygame

from player.render.fonts import Color, FontFace
from player.render.text import TextPainter, converted

SEPARATOR = "  •  "
PIECE_WIDTH = 4096
"""The widest piece of the line rendered at once, in pixels. The line is cut into pieces
at spaces (a word wider than this, a long address, at characters) and each is rendered
when it first scrolls into view: FreeType cannot draw a line of 65,536 pixels or more,
and a long text at full size would not fit in memory as one strip."""
MAX_STRIP_PIXELS = 4 * 2**20
"""The most pixels of rendered pieces kept (16 MB at 32 bits per pixel); the pieces
least recently drawn go first, but never those one frame needs."""


class Ticker:
    """Scrolls items right-to-left at a constant speed in pixels per second, whatever the frame rate.

    ``size`` is the band's (width, height); the text is sized to fill its height, whatever
    its length (every item any playlist may hold scrolls whole, to its last word).
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
        self.color = color
        texts = [t for t in (painter.prepare(i).replace("\n", " ") for i in items) if t]
        height = self.size[1]
        self.text = "".join(t + SEPARATOR for t in texts)
        self.period = 0  # pixels of the whole line: the loop's length
        self.pieces: list[str] = []
        self._starts: list[int] = []  # where each piece begins on the line
        self._widths: list[int] = []
        self._rendered: OrderedDict[int, pygame.Surface] = OrderedDict()  # piece index -> its strip
        self._held = 0  # pixels in _rendered
        self._painter = painter
        self._px = 0
        self._top = 0  # the strip's first row in the band (the line is centred in it)
        self._rows = 0  # rows of the line shown in the band
        self._shift = 0  # where the line's first row is drawn in a strip (negative: cropped)
        self._ink = (0, 0)  # [first, end) rows of a strip that glyphs can touch
        self._format: pygame.Surface | None = None  # strips are made in this surface's format
        if self.text and height > 0:
            face = painter.face
            self._px = painter.line_px(self.text, 1 << 30, height)
            line_h = face.line_height(self._px)
            top = (height - line_h) // 2
            self._top, self._shift, self._rows = max(0, top), min(0, top), min(height, line_h)
            x = 0
            first, end = line_h, 0
            for piece in _pieces(face, self.text, self._px):
                width = face.width(piece, self._px)
                if width > 0:  # 0 when the font draws nothing for it: nothing to scroll there
                    self.pieces.append(piece)
                    self._starts.append(x)
                    self._widths.append(width)
                    x += width
                    top_ink, end_ink = face.ink_rows(piece, self._px)
                    if top_ink < end_ink:
                        first, end = min(first, top_ink), max(end, end_ink)
            self.period = x
            # The strip's rows glyphs can touch: the others hold the background in every
            # piece, so a frame drawn over the previous one need not rewrite them.
            first, end = max(0, first + self._shift), min(self._rows, end + self._shift)
            self._ink = (first, end) if first < end else (0, 0)
        self.animating = self.period > 0 and self.speed > 0

    @property
    def rendered_pixels(self) -> int:
        """Pixels of the pieces held rendered now (bounded by :data:`MAX_STRIP_PIXELS`)."""
        return self._held

    def _strip(self, index: int, keep: set[int]) -> pygame.Surface:
        """Piece ``index`` rendered (cached); pieces in ``keep`` are not evicted for it."""
        strip = self._rendered.get(index)
        if strip is not None:
            self._rendered.move_to_end(index)
            return strip
        painter = self._painter
        line = painter.face.render(self.pieces[index], self._px, self.color, painter.antialias)
        size = (self._widths[index], self._rows)
        if self.background is None:
            strip = pygame.Surface(size, pygame.SRCALPHA)
            strip.fill((0, 0, 0, 0))
        else:
            strip = pygame.Surface(size)
            strip.fill(self.background)
        strip.blit(line, (0, self._shift))
        if self._format is not None:
            strip = strip.convert(self._format)
        else:
            strip = converted(strip, alpha=self.background is None)
        self._rendered[index] = strip
        self._held += size[0] * size[1]
        for old in list(self._rendered):
            if self._held <= MAX_STRIP_PIXELS:
                break
            if old not in keep and old != index:
                gone = self._rendered.pop(old)
                self._held -= gone.get_width() * gone.get_height()
        return strip

    def offset(self, now: float) -> int:
        """Pixel offset into the strip at monotonic time ``now`` (0 when not animating)."""
        if not self.animating:
            return 0
        return int((now - self.start) * self.speed) % self.period

    def match_format(self, surface: pygame.Surface) -> None:
        """Make the strips in ``surface``'s pixel format from now on (an opaque band only):
        a blit between surfaces of one format is a plain copy of rows, the cheapest there
        is. The strips already made are dropped when the format changes."""
        if self.background is None:
            return
        fmt = (surface.get_bitsize(), surface.get_masks())
        if self._format is not None and (self._format.get_bitsize(), self._format.get_masks()) == fmt:
            return
        self._format = pygame.Surface((1, 1), 0, surface)
        self._rendered.clear()
        self._held = 0

    def draw(self, surface: pygame.Surface, dest: pygame.Rect, now: float, *, over: bool = False) -> None:
        """Paint the band into ``dest`` (clipped to it) as it is at time ``now``.

        ``over``: ``dest`` holds this band as drawn at an earlier time, so only the rows
        glyphs can touch are drawn (an opaque band only; the rest is already right).
        """
        if self.period <= 0:
            if self.background is not None:
                surface.fill(self.background, dest)
            return
        top = min(self._top, dest.h)
        rows = min(self._rows, dest.h - top)
        skip = 0
        if over and self.background is not None:
            skip = min(self._ink[0], rows)
            rows = min(self._ink[1], rows) - skip
        src_x = self.offset(now)
        x, right = dest.x, dest.right
        used: set[int] = set()
        while rows > 0 and x < right:
            i = bisect.bisect_right(self._starts, src_x) - 1
            into = src_x - self._starts[i]
            w = min(self._widths[i] - into, right - x)
            used.add(i)
            surface.blit(self._strip(i, used), (x, dest.y + top + skip), (into, skip, w, rows))
            x += w
            src_x = (src_x + w) % self.period
        if over:
            return
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


def _pieces(face: FontFace, text: str, px: int) -> list[str]:
    """``text`` cut into pieces about :data:`PIECE_WIDTH` wide at ``px``: at spaces, and
    inside a word only when the word alone is wider. Joined, the pieces are ``text``."""
    tokens = re.findall(r"\S+\s*|\s+", text)
    measured: dict[str, int] = {}  # words repeat: each is measured once

    def width(token: str) -> int:
        w = measured.get(token)
        if w is None:
            w = measured[token] = face.width(token, px)
        return w

    pieces: list[str] = []
    current: list[str] = []
    filled = 0
    for token in tokens:
        w = width(token)
        if w > PIECE_WIDTH:  # a word (an address, a number) wider than a piece: cut by characters
            if current:
                pieces.append("".join(current))
                current, filled = [], 0
            step = max(1, len(token) * PIECE_WIDTH // (2 * w))  # half a piece: room for wide glyphs
            pieces.extend(token[i:i + step] for i in range(0, len(token), step))
            continue
        if filled + w > PIECE_WIDTH and current:
            pieces.append("".join(current))
            current, filled = [], 0
        current.append(token)
        filled += w
    if current:
        pieces.append("".join(current))
    return pieces
