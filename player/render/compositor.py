"""The compositor: draws slides into a layout's zones and hands out frames with their dirty rects.

The main loop owns one :class:`Renderer` and drives it with two clocks: ``now`` is
``time.monotonic()`` (animation), ``wall`` an aware ``datetime`` (the clock zone)::

    renderer = Renderer((1920, 1080), load_layout("landscape"), tz=ZoneInfo("Europe/Paris"))
    renderer.set_ticker(playlist.ticker, time.monotonic())
    renderer.show(slide, time.monotonic(), image_path=store.asset_path(slide.asset))
    while True:
        drawn = renderer.render(time.monotonic(), datetime.now(timezone.utc))
        if drawn and renderer.direct_drawn:  # drawn on the output's pixels (see direct)
            output.show_direct(renderer.direct_drawn)
        elif drawn:
            output.show(*drawn)             # frame, dirty rects (None = everything)
        deadline = renderer.next_deadline(time.monotonic(), datetime.now(timezone.utc))
        # ... block on the inbox until min(deadline, slide end, ...)

Layers: the *scene* (layout background, zones, slide, clock, ticker; logical
orientation), kept for the renderer's life; the *fade* layer, which exists only during a
transition: it starts as a copy of what was on screen and is blended towards the scene
in place, frame after frame (it is what is shown meanwhile); the *output* layer, which
exists only while an overlay or software dimming sits on top (dimming needs none when the
output dims while copying the frame: see ``dim_output``); and the *physical* frame
when the panel is rotated. A full frame is 8 MB at 1920x1080, so the optional layers are
released as soon as they are no longer needed. The next picture's decoding waits until
the current one is drawn and any transition has ended, rather than overlapping them.

Pictures are decoded in the image cache's thread, never on the main loop: an image slide
whose picture is not decoded yet waits (``show(..., wait=False)`` returns False) while
the screen keeps what it shows, ticker and clock running, and :meth:`Renderer.poll`
puts it on screen once its picture is ready. Decoded pictures stay in the cache (within
its bound), so a slide that comes round again is not decoded again.

A still picture costs nothing: :meth:`Renderer.render` returns None and
:meth:`Renderer.next_deadline` None. A scrolling ticker dirties only its band; a minute
tick only the clock zone. Only the zones that belong to the slide (main and title) take
part in a transition: the clock and ticker keep running through it.

A frame in which only the ticker moves is drawn, when the output offers its own pixels
(``direct``: the mapped framebuffer, the SDL window), straight onto them: only the band's
rows that glyphs can touch, with nothing copied afterwards (:attr:`Renderer.direct_drawn`
tells the caller; the output's ``show_direct`` presents them). The scene's band is
brought up to the screen's before anything else reads the scene. Any other frame, a
rotated panel, a layer on top or software dimming go the usual way.

Nothing is allocated per frame on an unrotated panel (a layer per transition or overlay
at most). On a rotated one, each dirty rectangle is turned by
``pygame.transform.rotate``, which returns a new surface the size of that rectangle (a
ticker band, not a frame).

Rotation is the angle, clockwise, by which the picture is turned on the physical output:
with ``rotation=90`` the logical top-left corner lands at the physical top-right.

A text slide too long for the main zone at the smallest legible size loses nothing: by
the layout's ``overflow`` it is split into pages shown in turn, or set on one line that
scrolls, both within the slide's duration (see :class:`_SlideText`). Only the main zone
changes then, at each page turn or scrolled pixel.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Protocol

import pygame

from ..content import RGB, ImageSlide, TextSlide
from ..errors import AssetError
from ..layout import Layout, Zone
from .clock import Clock, french_date
from .fonts import default_font, open_face
from .images import ImageCache, default_cache_bytes
from .outputs.base import dim, dim_level
from .text import FittedText, TextPainter, converted
from .ticker import Ticker
from .transitions import make_transition

ROTATIONS = (0, 90, 180, 270)
MAX_CLOCK_SLEEP = 60.0  # re-check the clock at least this often, in case the wall clock jumps
IMAGE_POLL_S = 0.05  # how often a picture being decoded is looked for, at most, on a still screen
IDLE_TIME_SHARE = 0.6  # of the idle screen's height for the time; the date below
PAGE_MIN_S = 3.0
"""Seconds a page of a paged slide should stay up to be read: the text is set as large as
possible with at most ``duration / PAGE_MIN_S`` pages (smaller, on more pages, if need be)."""
PAGE_SHORT_S = 1.5  # below this a page is hard to read: the slide's duration is too short (logged)
PAGE_WEIGHT = 12  # characters' worth of reading time every page gets besides its text
SCROLL_HOLD_S = 1.0  # a scrolling line stands still this long at its start and at its end
SCROLL_FAST_CPS = 12.0  # characters a second beyond which scrolling text is hard to read (logged)

log = logging.getLogger(__name__)


class Overlay(Protocol):
    """A full-screen layer drawn over everything (alert, identify screen, test card)."""

    def draw(self, surface: pygame.Surface, now: float, wall: datetime) -> None: ...

    def next_frame(self, now: float) -> float | None: ...


@dataclass
class _ClockSpot:
    """A clock drawn over a saved copy of what lies beneath it."""

    clock: Clock
    area: pygame.Rect  # restored from ``beneath`` before each redraw
    inner: pygame.Rect
    color: RGB
    align: str
    beneath: pygame.Surface
    due: datetime | None = None  # wall time of the next change
    drawn: datetime | None = None
    idle: bool = False  # the idle screen: always the time above the date, both large

    def is_due(self, wall: datetime) -> bool:
        """Whether the clock shows something else at ``wall`` (or the wall clock went back)."""
        return self.due is None or wall >= self.due or (self.drawn is not None and wall < self.drawn)

    def draw(self, surface: pygame.Surface, wall: datetime) -> None:
        if not self.idle:
            self.clock.draw(surface, self.inner, wall, self.color, self.align)
            return
        local = self.clock.local(wall)
        top = self.inner.copy()
        top.h = round(self.inner.h * IDLE_TIME_SHARE)
        bottom = pygame.Rect(self.inner.x, top.bottom, self.inner.w, self.inner.bottom - top.bottom)
        painter = self.clock.painter
        painter.draw_line(surface, top, f"{local.hour:02d}:{local.minute:02d}", self.color, self.align)
        if bottom.h > 0:
            painter.draw(surface, bottom, "", french_date(local), self.color, self.align)


@dataclass
class _SlideText:
    """A text slide too long for its zone: pages shown in turn, or one line scrolled, both
    within the slide's ``duration`` from ``start`` (and again from the start after it).

    Pages: page ``i`` is up while the time into the slide is below ``ends[i]`` seconds;
    each page's share of the duration follows its length in characters (plus
    :data:`PAGE_WEIGHT`). Scrolling: the line stands still :data:`SCROLL_HOLD_S` at its
    start, moves left at the constant speed that brings its end into view in time,
    and stands still at its end.
    """

    inner: pygame.Rect
    background: RGB
    color: RGB
    align: str
    start: float
    duration: float
    pages: tuple[FittedText, ...] = ()
    ends: tuple[float, ...] = ()
    line: pygame.Surface | None = None
    shown: int | None = None  # the page index or scroll offset on screen
    due: float = -math.inf
    hold: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if self.line is not None:
            self.hold = min(SCROLL_HOLD_S, self.duration / 4)
        elif not self.ends:
            weights = [sum(len(t) for t, _ in page.lines()) + PAGE_WEIGHT for page in self.pages]
            total, acc, ends = sum(weights), 0, []
            for w in weights:
                acc += w
                ends.append(self.duration * acc / total)
            self.ends = tuple(ends)

    @property
    def travel(self) -> int:
        """Pixels the line moves (0 for pages, or a line that fits)."""
        return max(0, self.line.get_width() - self.inner.w) if self.line is not None else 0

    def restart(self, now: float) -> None:
        self.start = now
        self.due = -math.inf

    def _phase(self, now: float) -> tuple[float, float]:
        """(start of the current round, time into it)."""
        into = max(0.0, now - self.start) + 1e-9  # at a change's time, what comes after it
        rounds = math.floor(into / self.duration)
        return self.start + rounds * self.duration, into - rounds * self.duration

    def state(self, now: float) -> tuple[int, float]:
        """What is on screen at ``now`` (page index or scroll offset) and when it next changes."""
        base, t = self._phase(now)
        if self.line is None:
            i = min(bisect.bisect_right(self.ends, t), len(self.pages) - 1)
            return i, base + self.ends[i]
        travel, move = self.travel, self.duration - 2 * self.hold
        if travel == 0 or t >= self.hold + move:
            return travel, base + self.duration
        if t < self.hold:
            return 0, base + self.hold
        offset = min(travel, int(travel * (t - self.hold) / move))
        return offset, base + self.hold + (offset + 1) * move / travel

    def draw(self, surface: pygame.Surface, painter: TextPainter, now: float) -> bool:
        """Bring the zone up to ``now``; True when it was drawn again."""
        state, due = self.state(now)
        self.due = max(due, now + 1e-3)  # never now: the main loop would spin
        if state == self.shown:
            return False
        self.shown = state
        surface.fill(self.background, self.inner)
        if self.line is None:
            painter.draw_fitted(surface, self.inner, self.pages[state], self.color, self.align)
            return True
        line, inner = self.line, self.inner
        x = inner.x - state
        if self.travel == 0:
            x = {"left": inner.x, "right": inner.right - line.get_width()}.get(
                self.align, inner.x + (inner.w - line.get_width()) // 2)
        clip = surface.get_clip()
        surface.set_clip(inner.clip(clip))
        surface.blit(line, (x, inner.y + (inner.h - line.get_height()) // 2))
        surface.set_clip(clip)
        return True


def _subtract(rect: pygame.Rect, holes: Sequence[pygame.Rect]) -> list[pygame.Rect]:
    """The parts of ``rect`` outside every hole, as non-overlapping rectangles."""
    pieces = [rect]
    for hole in holes:
        kept: list[pygame.Rect] = []
        for p in pieces:
            cut = p.clip(hole)
            if not cut.w or not cut.h:
                kept.append(p)
                continue
            if cut.top > p.top:
                kept.append(pygame.Rect(p.x, p.y, p.w, cut.top - p.top))
            if cut.bottom < p.bottom:
                kept.append(pygame.Rect(p.x, cut.bottom, p.w, p.bottom - cut.bottom))
            if cut.left > p.left:
                kept.append(pygame.Rect(p.x, cut.y, cut.left - p.left, cut.h))
            if cut.right < p.right:
                kept.append(pygame.Rect(cut.right, cut.y, p.right - cut.right, cut.h))
        pieces = kept
    return pieces


def _inner(rect: pygame.Rect, zone: Zone) -> pygame.Rect:
    pad = round(zone.padding * min(rect.w, rect.h))
    inner = rect.inflate(-2 * pad, -2 * pad)
    return inner if inner.w > 0 and inner.h > 0 else rect.copy()


class Renderer:
    """Draws slides, chrome and overlays into frames for one output; main thread only.

    ``size`` is the output's physical size; ``rotation`` 90 or 270 swaps it into
    :attr:`logical_size`, the size layouts are laid out on. ``font`` and ``antialias``
    override the layout's own; with neither font, a small panel uses the bundled pixel
    fonts (:func:`~player.render.fonts.default_font`). Text is never laid out below the
    face's legible size (:meth:`~player.render.fonts.FontFace.legible_px`). ``images`` is
    the decoded-image cache shared with the app (one is made, sized from the device's
    memory by :func:`~player.render.images.default_cache_bytes`, when omitted). ``dim_output`` is the
    output's ``set_dim`` when it can dim while it copies frames (png, fbdev): software
    dimming is then handed to it and costs no full-frame layer here. ``direct`` is the
    output's ``direct_surface`` (fbdev, sdl): frames of the ticker alone are drawn there.
    """

    def __init__(self, size: tuple[int, int], layout: Layout, *, tz: tzinfo, rotation: int = 0, fps: int = 30,
                 transition: str = "fade", transition_s: float = 0.6, font: str | None = None,
                 antialias: bool | None = None, images: ImageCache | None = None,
                 dim_output: Callable[[float], None] | None = None, language: str = "fr",
                 min_text_px: int | None = None,
                 direct: Callable[[], pygame.Surface | None] | None = None) -> None:
        if rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation}")
        if size[0] <= 0 or size[1] <= 0:
            raise ValueError(f"output size must be positive, got {size}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.size = (int(size[0]), int(size[1]))
        self.rotation = rotation
        self.logical_size = (self.size[1], self.size[0]) if rotation in (90, 270) else self.size
        self.tz = tz
        self.fps = fps
        self.transition = make_transition(transition, transition_s)
        self._font_override = font
        self._antialias_override = antialias
        lw, lh = self.logical_size
        self._scene = pygame.Surface(self.logical_size)
        self._out: pygame.Surface | None = None  # the output layer (overlay, dimming)
        self._old: pygame.Surface | None = None  # the fade layer, during a transition only
        self._faded = 0.0  # progress already blended into the fade layer
        self._deferred: tuple[ImageSlide, Path] | None = None  # a prefetch waiting for its turn
        self._frame = pygame.Surface(self.size) if rotation else None
        self._own_images = images is None
        self._images = images if images is not None else ImageCache(default_cache_bytes(self.logical_size))
        self._full_rect = pygame.Rect(0, 0, lw, lh)

        self._slide: TextSlide | ImageSlide | None = None
        self._slide_start = 0.0  # monotonic time the slide was shown at
        self._text: _SlideText | None = None  # the slide's pages or scrolling line, if it needs them
        self._image_key: tuple[object, ...] | None = None  # the image slide's picture in the cache
        self._image_drawn = False  # that picture is in the scene
        self._image_path: Path | None = None
        self._waiting: tuple[ImageSlide, Path] | None = None  # a slide waiting for its picture
        self._shown_any = False  # a slide (or the idle screen) was shown: before, the main zone is blank
        self._ticker_items: tuple[str, ...] = ()
        self._ticker_start = 0.0
        self._ticker: Ticker | None = None
        self._ticker_due: float | None = None
        self._clocks: list[_ClockSpot] = []
        self._clocks_cache: list[_ClockSpot] = []
        self._pending: list[pygame.Rect] = []
        self._overlay: Overlay | None = None
        self._overlay_due: float | None = None
        self._dim = 1.0
        self._dim_output = dim_output
        self._direct = direct  # the output's own pixels, when it has them to offer
        self.direct_drawn: Sequence[pygame.Rect] = ()  # what the last render drew there
        self._band_behind: float | None = None  # the scene's ticker band lags the screen's
        self._band_alone = False  # no other zone overlaps the ticker band
        self._band = pygame.Rect(0, 0, 0, 0)  # the ticker's band, while it has one
        if dim_output is not None:
            dim_output(1.0)  # the output may have been dimmed for a previous renderer

        self._stale = True  # the scene must be recomposed
        self._full = True  # the whole frame must be presented
        self._transition_start: float | None = None
        self._transition_areas: list[pygame.Rect] = []
        self._last_frame: float | None = None
        self._shown: pygame.Surface | None = None
        self.language = language  # the panel's: slides without a lang of their own, the ticker
        self.min_text_px = min_text_px  # from the viewing distance: smaller text is paged instead
        self.set_layout(layout)

    # ------------------------------------------------------------------ state

    @property
    def layout(self) -> Layout:
        return self._layout

    def set_layout(self, layout: Layout) -> None:
        """Switch layout (no transition); the current slide and ticker are laid out again."""
        self._layout = layout
        font = self._font_override if self._font_override is not None else layout.font
        face = open_face(default_font(self.logical_size, font))
        antialias = layout.antialias if self._antialias_override is None else self._antialias_override
        self.painter = TextPainter(face, antialias=antialias, line_spacing=layout.line_spacing,
                                   min_px=max(face.legible_px(antialias), self.min_text_px or 0),
                                   hyphenate=True, lang=self.language)
        lw, lh = self.logical_size
        self._rects = {zone.name: pygame.Rect(zone.pixels(lw, lh)) for zone in layout.zones}
        ticker = layout.zone("ticker")
        self._band_alone = ticker is not None and not any(
            self._rects[z.name].colliderect(self._rects[ticker.name]) for z in layout.zones if z is not ticker)
        self._end_transition()
        self._stale = True
        if isinstance(self._slide, ImageSlide) and self._image_path is not None:
            # Drawn once decoded at the new size (the main zone shows its background meanwhile).
            self._image_key = self._request(self._slide, self._image_path, urgent=True)
            self._image_drawn = False
        if self._waiting is not None:
            self._request(*self._waiting, urgent=True)
        self._build_ticker()

    def set_ticker(self, items: Sequence[str], now: float) -> None:
        """Scroll ``items`` in the ticker zone from ``now``; none hides the band."""
        items = tuple(i for i in items if i.strip())
        if items == self._ticker_items and (self._ticker is not None or not items):
            return
        self._ticker_items = items
        self._ticker_start = now
        self._build_ticker()

    def show(self, slide: TextSlide | ImageSlide | None, now: float, image_path: Path | None = None,
             *, wait: bool = True) -> bool:
        """Show ``slide`` (None: the idle screen, a big clock and the date), with the transition.

        An image slide needs ``image_path``. When its picture is not decoded yet:
        with ``wait`` (tools), it is decoded here; without (the player's main loop), it
        is decoded in the cache's thread and the slide waits: False is returned, the
        screen keeps what it shows, and :meth:`poll` shows the slide once its picture is
        ready. True when the slide is on screen (from the next :meth:`render`).

        Raises :class:`AssetError` when the image is missing or could not be decoded
        (here, or in a background decode that failed): the screen then keeps its
        current picture and the caller should skip the slide and report the error.
        """
        self._waiting = None
        if slide == self._slide and image_path == self._image_path and not self._stale:
            if self._text is not None:
                self._text.restart(now)  # its pages (or scrolling) start over
            self._slide_start = now
            return True  # already on screen (a one-slide playlist looping): no fade to itself
        self._deferred = None  # it was for the slide after the current one: now stale or loaded below
        if isinstance(slide, ImageSlide):
            if image_path is None:
                raise AssetError(f"slide {slide.id}: no file for image asset {slide.asset}")
            key = self._image_key_of(slide)
            if wait:  # the ready picture, else decoded here (again, if a background decode failed)
                zone_rect, background = self._main_area()
                self._images.load_now(key, image_path, zone_rect.size, slide.fit, background)
            elif self._images.get(key) is None:  # raises the error of a failed background decode
                self._request(slide, image_path, urgent=True)
                self._waiting = (slide, image_path)
                return False
        self._switch(slide, now, image_path)
        return True

    @property
    def waiting(self) -> ImageSlide | None:
        """The image slide waiting for its picture (see :meth:`show`), if any."""
        return self._waiting[0] if self._waiting is not None else None

    def poll(self, now: float) -> bool:
        """Show the waiting image slide if its picture is ready; True when it was shown now.

        Never decodes. Raises :class:`AssetError` when its picture could not be decoded:
        the slide no longer waits and the screen keeps its picture.
        """
        if self._waiting is None:
            return False
        slide, path = self._waiting
        try:
            ready = self._images.get(self._image_key_of(slide))
        except AssetError:
            self._waiting = None
            raise
        if ready is None:
            self._request(slide, path, urgent=True)  # again, should it have left the queue
            return False
        self._waiting = None
        self._switch(slide, now, path)
        return True

    def retain_images(self, assets: Iterable[str]) -> None:
        """Forget the decoded pictures of every asset but ``assets`` (a new playlist)."""
        keep = set(assets)
        self._images.retain(lambda key: isinstance(key, tuple) and len(key) > 1 and key[1] in keep)

    def prefetch(self, slide: ImageSlide, path: Path) -> None:
        """Decode ``slide``'s image in the background so that showing it need not wait.

        The decoding starts once the current picture is drawn and any transition has
        ended (at the next :meth:`render` or the one ending the transition): their
        full-size buffers are never alive at the same time.
        """
        self._deferred = (slide, path)
        self._start_deferred()

    def scratch(self) -> pygame.Surface:
        """A full-size surface to draw on before the first frame, to build caches (the
        alert screen's fonts) without a buffer of its own; what is drawn there is never
        shown: the first frame is composed afresh."""
        if self._last_frame is not None:
            raise RuntimeError("the scratch surface exists only before the first frame")
        self._stale = True
        return self._scene

    def set_overlay(self, overlay: Overlay | None) -> None:
        """Put a full-screen layer over everything (None removes it).

        While an overlay is up, the scene beneath is not animated (the ticker and clock
        resume where they should be when it goes away). Setting the same overlay
        again redraws it: that is how a changed overlay (the next alert's turn) is shown.
        """
        if overlay is None and self._overlay is None:
            return
        self._overlay = overlay
        self._overlay_due = None
        self._full = True

    def invalidate(self) -> None:
        """Hand the whole frame over at the next :meth:`render` (the screen was off)."""
        self._full = True

    def set_dim(self, factor: float) -> None:
        """Software brightness applied to the output frame: 1 = as drawn, 0 = black."""
        factor = min(1.0, max(0.0, float(factor))) if math.isfinite(factor) else 1.0
        if factor != self._dim:
            self._dim = factor
            self._full = True
            if self._dim_output is not None:
                self._dim_output(factor)

    # ------------------------------------------------------------------ frames

    def render(self, now: float, wall: datetime) -> tuple[pygame.Surface, list[pygame.Rect] | None] | None:
        """Bring the frame up to date; None when nothing changed since the last call.

        Returns the frame in the physical orientation and the rectangles that changed,
        in physical coordinates (None: the whole frame). The frame belongs to the
        renderer: read it before the next call, don't draw on it.
        """
        direct = self._direct_frame(now, wall)
        if direct is not None:
            return direct
        self.direct_drawn = ()
        self._catch_up_band()
        dirty: list[pygame.Rect] = []
        full = self._full
        if not self._stale and not self._image_drawn and self._image_key is not None:
            self._draw_late_image()  # decoded at the new layout's size since
        if self._stale:
            self._compose(now, wall)
            full = True
        elif self._overlay is None:
            dirty += self._animate(now, wall)

        progress = None
        if self._transition_start is not None:
            progress = (now - self._transition_start) / self.transition.duration
            dirty += self._transition_areas
            if progress >= 1:
                progress = None
        overlay_drawn = False
        if self._overlay is not None:
            if full or dirty or (self._overlay_due is not None and now >= self._overlay_due):
                full = overlay_drawn = True

        # Zones of tiny panels can round past the edge; clip so that every rect is drawable.
        dirty = [c for c in (d.clip(self._full_rect) for d in dirty) if c.w and c.h]
        if not full and not dirty:
            return None
        source = self._present(now, wall, progress, full, dirty)
        if overlay_drawn and self._overlay is not None:
            # Asked once drawn: what the overlay will need next may depend on this frame.
            self._overlay_due = self._overlay.next_frame(now)
        if source is not self._shown:
            full = True  # the frame handed out changed surface: the caller needs all of it
        frame = self._rotate(source, None if full else dirty)
        self._shown = source
        self._full = False
        self._last_frame = now
        if progress is None and self._transition_start is not None:
            self._end_transition()
        if self._out is not None and source is not self._out:
            self._out = None  # overlay and dimming are gone
        self._start_deferred()
        if full:
            return frame, None
        return frame, [self._to_physical(r) for r in dirty]

    def next_deadline(self, now: float, wall: datetime) -> float | None:
        """Monotonic time at which :meth:`render` must next be called; None for a still picture."""
        if self._stale or self._full or self._pending:
            return now
        floor = now if self._last_frame is None else max(now, self._last_frame + 1.0 / self.fps)
        due: list[float] = []
        if self._transition_start is not None:
            due.append(floor)
        if self._waiting is not None or (self._image_key is not None and not self._image_drawn):
            due.append(now + min(IMAGE_POLL_S, 1.0 / self.fps))  # a picture being decoded
        if self._overlay is not None:
            if self._overlay_due is not None:
                due.append(max(floor, self._overlay_due))
        else:
            if self._ticker_due is not None:
                due.append(max(floor, self._ticker_due))
            if self._text is not None:
                due.append(max(floor, self._text.due))
            for spot in self._clocks:
                if spot.due is not None:
                    wait = (spot.due - wall).total_seconds()
                    due.append(now + min(MAX_CLOCK_SLEEP, max(0.0, wait)))
        return min(due) if due else None

    def close(self) -> None:
        """Stop the image cache's worker if this renderer made the cache; safe twice."""
        if self._own_images:
            self._images.close()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> pygame.Surface:
        """A copy of the current physical frame, dimmed as it is shown (for screenshots)."""
        self._catch_up_band()
        if self._shown is None:
            blank = pygame.Surface(self.size)
            blank.fill(self._layout.background)
            return blank
        shot = (self._frame if self._frame is not None else self._shown).copy()
        if self._dim_output is not None and self._dim < 1:
            dim(shot, dim_level(self._dim))  # as the output shows it
        return shot

    # ------------------------------------------------------------------ internals: state

    def _cache_key(self, slide: ImageSlide, size: tuple[int, int], background: RGB) -> tuple[object, ...]:
        return ("image", slide.asset, size, slide.fit, background)

    def _main_area(self) -> tuple[pygame.Rect, RGB]:
        zone = self._layout.main
        return self._rects[zone.name], zone.background or self._layout.background

    def _image_key_of(self, slide: ImageSlide) -> tuple[object, ...]:
        rect, background = self._main_area()
        return self._cache_key(slide, rect.size, background)

    def _request(self, slide: ImageSlide, path: Path, *, urgent: bool) -> tuple[object, ...]:
        """Have ``slide``'s picture decoded in the background (at once if ``urgent``); its key."""
        rect, background = self._main_area()
        key = self._cache_key(slide, rect.size, background)
        self._images.prefetch(key, path, rect.size, slide.fit, background, urgent=urgent)
        return key

    def _switch(self, slide: TextSlide | ImageSlide | None, now: float, image_path: Path | None) -> None:
        """Put ``slide`` on screen from the next frame (its picture, if any, is in the cache)."""
        self._begin_transition(now)
        self._slide = slide
        self._slide_start = now
        self._shown_any = True
        self._image_key = self._image_key_of(slide) if isinstance(slide, ImageSlide) else None
        self._image_drawn = False
        self._image_path = image_path if isinstance(slide, ImageSlide) else None
        self._stale = True

    def _draw_image(self, rect: pygame.Rect) -> None:
        """Draw the image slide's picture in the main zone if the cache has it; else ask for it."""
        key = self._image_key
        try:
            # Blitted into the scene only when composed: no converted copy (see ImageCache.get).
            picture = self._images.get(key) if key is not None else None
        except AssetError:
            picture = None  # the main zone shows its background; the next show() moves on
            self._image_key = None
        if picture is not None:
            self._scene.blit(picture, rect.topleft)
            self._image_drawn = True
        elif self._image_key is not None and isinstance(self._slide, ImageSlide) and self._image_path is not None:
            self._request(self._slide, self._image_path, urgent=True)  # evicted, or resized

    def _draw_late_image(self) -> None:
        """Draw the current slide's picture, decoded since the scene was composed."""
        rect, _ = self._main_area()
        self._draw_image(rect)
        if self._image_drawn and self._overlay is None:
            self._mark(rect)  # (under an overlay, the whole frame is handed over when it goes)

    def _build_ticker(self) -> None:
        zone = self._layout.zone("ticker")
        self._ticker = None
        self._ticker_due = None
        if zone is None:
            return
        rect = self._rects[zone.name]
        self._band_behind = None  # the band is drawn afresh
        if self._ticker_items:
            band = self._band = self._ticker_band(zone)
            self._ticker = Ticker(self.painter, self._ticker_items, band.size, zone.color,
                                  zone.background or self._layout.background, zone.speed, self._ticker_start)
            self._ticker_due = -math.inf  # draw at the next render
        if not self._stale:
            self._scene.fill(self._zone_background(zone) if self._ticker else self._layout.background, rect)
            self._mark(rect)

    def _ticker_band(self, zone: Zone) -> pygame.Rect:
        rect = self._rects[zone.name]
        pad = round(zone.padding * min(rect.w, rect.h))
        band = pygame.Rect(rect.x, rect.y + pad, rect.w, rect.h - 2 * pad)
        return band if band.h > 0 else rect.copy()

    def _begin_transition(self, now: float) -> None:
        if self.transition.duration <= 0 or self._last_frame is None:
            return
        if self._transition_start is not None and self._old is not None:
            # Mid-transition: the fade layer holds what is on screen, the new starting point.
            pass
        elif self._stale:
            return  # the scene does not hold what is on screen: cut
        else:
            self._catch_up_band()
            if self._old is None:
                self._old = pygame.Surface(self.logical_size)
            self._old.blit(self._scene, (0, 0))
        self._transition_start = now
        self._faded = 0.0
        self._transition_areas = [self._rects[z.name] for z in self._layout.zones if z.role in ("main", "title")]

    def _end_transition(self) -> None:
        self._transition_start = None
        self._old = None  # the fade layer

    def _start_deferred(self) -> None:
        """Start the waiting prefetch once nothing big is in flight (see :meth:`prefetch`)."""
        if self._deferred is None or self._transition_start is not None or self._waiting is not None:
            return
        if self._image_key is not None and not self._image_drawn:
            return
        deferred, self._deferred = self._deferred, None
        self._request(*deferred, urgent=False)

    def _mark(self, rect: pygame.Rect) -> None:
        self._pending.append(rect)

    # ------------------------------------------------------------------ internals: drawing

    def _zone_background(self, zone: Zone) -> RGB:
        return zone.background or self._layout.background

    def _compose(self, now: float, wall: datetime) -> None:
        """Redraw the whole scene for the current layout, slide, ticker and time."""
        scene, layout = self._scene, self._layout
        self._band_behind = None
        scene.fill(layout.background)
        self._clocks = []
        self._text = None
        header = layout.zone("title")
        slide = self._slide
        # The title goes to the header when it fits there on one line; else it stays with
        # the body in the main zone, where text that does not fit is paged or scrolled
        # (an ellipsis in the header would drop words).
        header_px = None  # the size of the title in the header: the body is never larger
        if header is not None and isinstance(slide, TextSlide) and slide.body.strip():
            header_px = self._one_line_px(slide.title, _inner(self._rects[header.name], header), slide.lang)
        title_in_header = header_px is not None
        for zone in layout.zones:
            rect = self._rects[zone.name]
            inner = _inner(rect, zone)
            if zone.role == "main":
                self._draw_main(zone, rect, inner, header_px, now)
            elif zone.role == "title":
                scene.fill(self._zone_background(zone), rect)
                in_header = title_in_header and isinstance(slide, TextSlide)
                text = slide.title if in_header and isinstance(slide, TextSlide) else zone.text
                painter = self.painter.for_lang(slide.lang) if in_header and isinstance(slide, TextSlide) \
                    else self.painter
                if text.strip():
                    painter.draw_line(scene, inner, text, zone.color, zone.align)
            elif zone.role == "text":
                scene.fill(self._zone_background(zone), rect)
                if zone.text.strip():
                    self.painter.draw(scene, inner, "", zone.text, zone.color, zone.align)
            elif zone.role == "clock":
                scene.fill(self._zone_background(zone), rect)
                self._clocks.append(self._clock_spot(rect, inner, zone.color, zone.align))
            elif zone.role == "ticker":
                if self._ticker is None:
                    continue  # hidden: the layout background shows
                scene.fill(self._zone_background(zone), rect)
                self._ticker_due = -math.inf
        self._pending = []
        self._animate(now, wall, force=True)
        self._pending = []
        self._stale = False

    def _one_line_px(self, text: str, inner: pygame.Rect, lang: str | None = None) -> int | None:
        """The size ``text`` is drawn at on one line in ``inner``; None when it does not fit
        there at a legible size."""
        painter = self.painter.for_lang(lang)
        line = " ".join(painter.prepare(text).split("\n"))
        px = painter.line_px(line, inner.w, inner.h)
        return px if painter.face.width(line, px) <= inner.w else None

    def _draw_main(self, zone: Zone, rect: pygame.Rect, inner: pygame.Rect, header_px: int | None,
                   now: float) -> None:
        scene, slide = self._scene, self._slide
        if isinstance(slide, TextSlide):
            scene.fill(slide.style.background, rect)
            title = "" if header_px is not None else slide.title
            painter = self.painter.for_lang(slide.lang).capped(header_px)
            self._text = self._overflow(slide, title, inner, painter)
            if self._text is None:
                painter.draw(scene, inner, title, slide.body, slide.style.color, slide.style.align)
            else:
                self._text.draw(scene, self.painter, now)
        elif isinstance(slide, ImageSlide):
            scene.fill(self._zone_background(zone), rect)
            self._draw_image(rect)
        else:
            scene.fill(self._zone_background(zone), rect)
            if self._shown_any:  # (not while the first slide's picture is decoded: blank, no big clock)
                self._clocks.append(self._clock_spot(rect, inner, zone.color, "center", idle=True))

    def _overflow(self, slide: TextSlide, title: str, inner: pygame.Rect,
                  painter: TextPainter) -> _SlideText | None:
        """The pages or scrolling line of a text slide too long for ``inner`` (see the
        layout's ``overflow``); None when it fits at some legible size."""
        body = slide.body
        if not painter.fit(title, body, inner.w, inner.h).truncated:
            return None
        overflow = self._layout.overflow
        style = slide.style

        def make(pages: tuple[FittedText, ...] = (), line: pygame.Surface | None = None) -> _SlideText:
            return _SlideText(inner.copy(), style.background, style.color, style.align, self._slide_start,
                              slide.duration, pages=pages, line=line)

        if overflow == "auto":
            floor = painter.sizes(inner.h)[0]
            overflow = "scroll" if painter.block_height([("", floor), ("", floor)]) > inner.h else "page"
        if overflow == "scroll":
            scroll = painter.scroll_line(title, body, inner.h)
            if scroll is not None:
                line = painter.face.render(scroll[0], scroll[1], style.color, painter.antialias)
                text = make(line=converted(line, alpha=True))
                if len(scroll[0]) / max(0.1, slide.duration - 2 * text.hold) > SCROLL_FAST_CPS:
                    log.warning("slide %s: %d characters scrolled in %g s, too fast to read: "
                                "lengthen its duration or shorten its text", slide.id, len(scroll[0]),
                                slide.duration)
                return text
        pages = painter.paginate(title, body, inner.w, inner.h, max(1, int(slide.duration // PAGE_MIN_S)))
        if slide.duration / len(pages) < PAGE_SHORT_S:
            log.warning("slide %s: %d pages in %g s on a %dx%d zone, too fast to read: "
                        "lengthen its duration or shorten its text", slide.id, len(pages),
                        slide.duration, inner.w, inner.h)
        return make(pages=pages)

    def _clock_spot(self, rect: pygame.Rect, inner: pygame.Rect, color: RGB,
                    align: str, idle: bool = False) -> _ClockSpot:
        for spot in self._clocks_cache:
            if spot.area == rect and spot.inner == inner:
                reused = spot
                break
        else:
            reused = _ClockSpot(Clock(self.painter, self.tz), rect.copy(), inner.copy(), color, align,
                                pygame.Surface(rect.size))
            self._clocks_cache.append(reused)
            del self._clocks_cache[:-4]
        reused.clock.painter = self.painter
        reused.color, reused.align, reused.idle = color, align, idle
        reused.beneath.blit(self._scene, (0, 0), rect)
        reused.due = reused.drawn = None
        return reused

    def _direct_frame(self, now: float, wall: datetime) -> tuple[pygame.Surface, list[pygame.Rect]] | None:
        """A frame in which only the ticker moves, drawn straight onto the output's own
        pixels (see ``direct``): its new rows, with nothing copied afterwards.

        None when the frame is anything else (something else changes, a layer sits on
        top, the panel is rotated) or the output offers no pixels of its own now; the
        scene's band is then brought up to what the screen shows first.
        """
        ticker, due = self._ticker, self._ticker_due
        if (ticker is None or due is None or now < due or self._direct is None or not self._band_alone
                or self._stale or self._full or self._pending or self._overlay is not None
                or self._transition_start is not None or self._frame is not None or self._shown is None
                or (self._dim < 1 and self._dim_output is None)
                or (self._image_key is not None and not self._image_drawn)):
            return None
        text = self._text
        if text is not None and now >= text.due:
            return None
        if any(spot.is_due(wall) for spot in self._clocks):
            return None
        target = self._direct()
        if target is None:
            return None
        band = self._band
        ticker.match_format(target)
        ticker.draw(target, band, now, over=True)
        self._ticker_due = ticker.next_frame(now)
        self._band_behind = now
        self._last_frame = now
        self.direct_drawn = [band]  # unrotated: logical is physical
        self._start_deferred()
        return self._shown, []

    def _catch_up_band(self) -> None:
        """Draw into the scene the ticker band the screen shows (after direct frames)."""
        if self._band_behind is None:
            return
        drawn_at, self._band_behind = self._band_behind, None
        if self._ticker is not None:
            self._ticker.draw(self._scene, self._band, drawn_at)

    def _animate(self, now: float, wall: datetime, force: bool = False) -> list[pygame.Rect]:
        """Advance the ticker and clocks on the scene; returns the logical rects changed."""
        changed = self._pending
        self._pending = []
        if self._ticker is not None and self._ticker_due is not None:
            if force or now >= self._ticker_due:
                self._ticker.draw(self._scene, self._band, now)
                self._ticker_due = self._ticker.next_frame(now)
                changed.append(self._band.copy())
        text = self._text
        if text is not None and (force or now >= text.due) and text.draw(self._scene, self.painter, now):
            changed.append(text.inner)
        for spot in self._clocks:
            if force or spot.is_due(wall):
                self._scene.blit(spot.beneath, spot.area.topleft)
                spot.draw(self._scene, wall)
                spot.due = spot.clock.next_change(wall)
                spot.drawn = wall
                changed.append(spot.area)
        return changed

    def _present(self, now: float, wall: datetime, progress: float | None, full: bool,
                 dirty: list[pygame.Rect]) -> pygame.Surface:
        """The logical frame to show: the scene, the fade layer, or the output layer when something is on top."""
        rects = [self._full_rect] if full else dirty
        base = self._scene
        if progress is not None and self._old is not None:
            base = self._fade_step(progress, rects)
        dim_here = self._dim < 1 and self._dim_output is None
        if self._overlay is None and not dim_here:
            return base
        if self._out is None:
            self._out = pygame.Surface(self.logical_size)
        out = self._out
        for rect in rects:
            out.blit(base, rect.topleft, rect)
        if self._overlay is not None:
            self._overlay.draw(out, now, wall)
        if dim_here:
            level = dim_level(self._dim)
            for rect in rects:
                dim(out, level, rect)
        return out

    def _fade_step(self, progress: float, rects: list[pygame.Rect]) -> pygame.Surface:
        """Bring the fade layer to ``progress``; returns it.

        The layer already shows old and new mixed at ``self._faded``; blending the new
        scene over it with the fraction ``(progress - faded) / (1 - faded)`` gives the
        mix at ``progress`` without keeping the old picture apart. Outside the
        transition areas (clock, ticker) the layer just follows the scene.
        """
        old, scene = self._old, self._scene
        assert old is not None
        for rect in rects:
            for piece in _subtract(rect, self._transition_areas):
                old.blit(scene, piece.topleft, piece)
        step = 1.0 if self._faded >= 1 else (progress - self._faded) / (1 - self._faded)
        for area in self._transition_areas:
            self.transition.blend(old, scene, step, old, area)
        self._faded = progress
        return old

    def _rotate(self, source: pygame.Surface, dirty: list[pygame.Rect] | None) -> pygame.Surface:
        if self._frame is None:
            return source
        for rect in dirty if dirty is not None else [self._full_rect]:
            turned = pygame.transform.rotate(source.subsurface(rect), -self.rotation)
            self._frame.blit(turned, self._to_physical(rect).topleft)
        return self._frame

    def _to_physical(self, rect: pygame.Rect) -> pygame.Rect:
        """A logical rectangle in physical coordinates (clockwise rotation)."""
        lw, lh = self.logical_size
        x, y, w, h = rect
        if self.rotation == 90:
            return pygame.Rect(lh - y - h, x, h, w)
        if self.rotation == 180:
            return pygame.Rect(lw - x - w, lh - y - h, w, h)
        if self.rotation == 270:
            return pygame.Rect(y, lw - x - w, h, w)
        return pygame.Rect(rect)
