"""The alert screen: the overlay that replaces the playlist while an alert applies.

    view = AlertView(None, flash=True, led=False)
    view.set_alerts(alert, count_at_level=2, index=0, image=None, now=time.monotonic())
    renderer.set_overlay(view)

Layout (full screen), readable from across a street: a band at the top with the
pictogram, the level's word (ALERTE, VIGILANCE, INFORMATION) and "1/2" when alerts of
that level take turns; below it the title as large as fits, the body, and the alert's
image beside them (below them on a portrait screen); a white EXERCICE strip along the
bottom when the alert is an exercise. Colours per level: critical white on deep red with
a yellow band, warning black on amber with a black band, info white on blue with a white
band.

``mode="banner"`` (how ``info`` alerts show by default, config ``alerts.info_mode``)
draws a band over the bottom of the playlist instead, covering the ticker:
:meth:`AlertView.banner_rect`. Its one line of text scrolls when it does not fit.

Single-colour panels (``mono=True``, for ``display.led.colors: mono``): every pixel is
off or lit, so the levels cannot differ by colour. They differ by what is lit
(:data:`MONO_PALETTES`): critical is inverse video (the whole screen lit, dark text, a
dark band), warning is lit text in a lit frame on a dark screen under a lit band, info
is lit text on a dark screen with a dark band and no frame; the pictogram and the word
differ too, and critical and warning keep the band's attention animation (1 flash per
second, below the 3 Hz limit). Drawn in black and white, the output reduces white to the
panel's colour.

On LED matrices (``led=True``) nothing is anti-aliased and the title and the body
each keep a readable size: a title that does not fit on one line at
:data:`LED_MIN_PX` pixels or more (and at least :data:`STATIC_SHARE` of its row's full
size) scrolls right to left at a constant speed instead of shrinking; so does a body that
does not fit.

Attention animation (``flash=True``, critical and warning only): the top band inverts
its colours (the yellow band turns black with yellow ink, and back). Photosensitivity
guidance, WCAG 2.x success criterion 2.3.1 "Three Flashes or Below Threshold", allows
nothing that flashes more than three times in any one second; a flash is a pair of
opposite changes of luminance. The band keeps each state for :data:`FLASH_HALF_PERIOD`
(0.5 s): at most 2 changes of luminance in any second, which is 1 flash per second, and
still at most 2 even if each change were counted as a flash. The flashing area is the
band alone, never the whole screen, and never a change to or from saturated red.
With ``flash=False`` the picture is still and :meth:`AlertView.next_frame` returns None
(unless text scrolls).

Pixel fonts (BDF/PCF) are drawn at their own sizes: :data:`LED_MIN_PX` then means the
font's own size nearest it (:meth:`FontFace.fitting_size`: the largest not above 8 px,
else the smallest), so a 6x13 font is used at 13 px and a 5x7 font at 7 px.

The alert screen cannot fail. Whatever goes wrong while laying out or drawing an alert
(a font, a size, a text, an image), :meth:`AlertView.draw` then paints the minimal alert
screen instead (:class:`MinimalAlertScreen`: the level's colours and the title, in
pygame's bundled font through ``pygame.font``, a code path of its own) and reports the
failure once per alert to ``on_error``; should even that fail, the whole screen is
filled with the level's background colour. Nothing raised while drawing an alert ever
reaches the main loop.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import pygame

from player.alerts import Alert
from player.render.fonts import Color, FontFace, open_face
from player.render.pictograms import PictogramName, draw_pictogram
from player.render.text import LRU, TextPainter, last_true
from player.render.ticker import Ticker

FLASH_HALF_PERIOD = 0.5
"""Seconds each state of the attention animation lasts: 2 changes (1 flash) per second."""
MAX_FLASHES_PER_SECOND = 2
"""The documented bound (WCAG 2.3.1 allows 3); see the module docstring."""
LED_MIN_PX = 8
"""Smallest text size, in pixels, shown still on an LED matrix; smaller scrolls instead."""
STATIC_SHARE = 0.6
"""A one-line text stays still only at this share of its row's full size or more."""
MODES = ("fullscreen", "banner")
TILES_KEPT = 2
"""Flash-area pictures kept from one alert to the next (the two states of the last one)."""
FLASHING_LEVELS = ("critical", "warning")

LABELS = {"critical": "ALERTE", "warning": "VIGILANCE", "info": "INFORMATION"}
EXERCISE_LABEL = "EXERCICE"
EXERCISE_STRIP: Color = (255, 255, 255)
EXERCISE_INK: Color = (0, 0, 0)

ErrorCallback = Callable[[str], None]
"""``on_error(reason)``: one line saying what failed on the alert screen (see AlertView)."""

log = logging.getLogger("panel-player")

_FLOOD = re.compile(r"\b(crues?|inondations?|submersions?|débordements?|montée des eaux|flood\w*)\b", re.I)
_STOP = re.compile(r"\b(interdit\w*|fermée?s?|fermeture|barrée?s?|évacu\w*|confinement|closed|evacuat\w*)\b", re.I)


@dataclass(frozen=True)
class Palette:
    """Colours of one level: the screen, its text, the top band and the band's ink, and
    the frame drawn around the screen below the band (None: no frame)."""

    background: Color
    text: Color
    band: Color
    band_ink: Color
    frame: Color | None = None

    def colours(self) -> frozenset[Color]:
        found = {self.background, self.text, self.band, self.band_ink, EXERCISE_STRIP, EXERCISE_INK}
        return frozenset(found | ({self.frame} if self.frame is not None else set()))


PALETTES: dict[str, Palette] = {
    "critical": Palette((160, 0, 0), (255, 255, 255), (255, 210, 0), (0, 0, 0)),
    "warning": Palette((255, 170, 0), (0, 0, 0), (0, 0, 0), (255, 170, 0)),
    "info": Palette((0, 60, 150), (255, 255, 255), (255, 255, 255), (0, 60, 150)),
}
_ON: Color = (255, 255, 255)
_OFF: Color = (0, 0, 0)
MONO_PALETTES: dict[str, Palette] = {
    "critical": Palette(_ON, _OFF, _OFF, _ON),  # inverse video
    "warning": Palette(_OFF, _ON, _ON, _OFF, frame=_ON),  # framed
    "info": Palette(_OFF, _ON, _OFF, _ON),  # plain
}
"""The levels on a single-colour panel (see the module docstring); white is lit."""


def palette_for(level: str, mono: bool = False) -> Palette:
    """The colours of ``level`` (unknown levels: critical's), on a single-colour panel
    when ``mono``."""
    palettes = MONO_PALETTES if mono else PALETTES
    return palettes.get(level, palettes["critical"])


def frame_width(size: tuple[int, int]) -> int:
    """Thickness of a level's frame on a screen of ``size``: 1 pixel up to 95 rows."""
    return max(1, min(size) // 48)


def draw_frame(surface: pygame.Surface, rect: pygame.Rect, colour: Color, width: int) -> None:
    """A border ``width`` pixels thick along the inside of ``rect``."""
    r = pygame.Rect(rect)
    width = max(1, min(width, r.w // 2 or 1, r.h // 2 or 1))
    for edge in ((r.x, r.y, r.w, width), (r.x, r.bottom - width, r.w, width),
                 (r.x, r.y, width, r.h), (r.right - width, r.y, width, r.h)):
        surface.fill(colour, edge)


def pictogram_for(alert: Alert) -> PictogramName:
    """The pictogram for ``alert``: waves when its text speaks of a flood, a cross when of
    a closure or evacuation, else the warning triangle (info: the "i" disc)."""
    text = f"{alert.title} {alert.body}"
    if _FLOOD.search(text):
        return "flood"
    if _STOP.search(text):
        return "stop"
    return "info" if alert.level == "info" else "warning"


@dataclass(frozen=True)
class AlertLayout:
    """Where each part of the alert screen goes, in surface coordinates.

    ``band`` is the top band in full-screen mode and the whole banner in banner mode;
    ``flash`` is the area the attention animation inverts; ``title`` and ``body`` are
    the text areas (``body`` None when there is no body or, in banner mode, the text is
    one line in ``title``); ``image``, ``counter`` and ``exercise`` are None when absent.
    """

    band: pygame.Rect
    flash: pygame.Rect
    pictogram: pygame.Rect
    label: pygame.Rect | None
    counter: pygame.Rect | None
    title: pygame.Rect
    body: pygame.Rect | None
    image: pygame.Rect | None
    exercise: pygame.Rect | None


class _Canvas:
    """Records what is painted on it, to paint it again on a frame: the alert screen's
    picture without a full-frame buffer of its own, which would cost 8 MB at 1920x1080,
    and as many milliseconds to allocate, at the moment an alert arrives.

    It offers the few :class:`pygame.Surface` methods the alert screen's drawing uses:
    ``fill``, ``blit``, ``get_clip``/``set_clip`` and the size.
    """

    def __init__(self, size: tuple[int, int]) -> None:
        self._full = pygame.Rect((0, 0), size)
        self._clip = self._full.copy()
        # (source or fill colour, destination or rectangle, area, clip)
        self.ops: list[tuple[pygame.Surface | Color, tuple[int, int] | pygame.Rect, pygame.Rect | None,
                             pygame.Rect]] = []

    def get_size(self) -> tuple[int, int]:
        return self._full.size

    def get_width(self) -> int:
        return self._full.w

    def get_height(self) -> int:
        return self._full.h

    def get_clip(self) -> pygame.Rect:
        return self._clip.copy()

    def set_clip(self, rect: pygame.Rect | None) -> None:
        self._clip = self._full.copy() if rect is None else pygame.Rect(rect).clip(self._full)

    def fill(self, color: Color, rect: pygame.Rect | tuple[int, int, int, int] | None = None) -> pygame.Rect:
        area = (self._full if rect is None else pygame.Rect(rect)).clip(self._clip)
        self.ops.append((color, area, None, self._clip.copy()))
        return area

    def blit(self, source: pygame.Surface, dest: tuple[int, int], area: pygame.Rect | None = None) -> pygame.Rect:
        self.ops.append((source, (int(dest[0]), int(dest[1])), area, self._clip.copy()))
        return pygame.Rect(dest, source.get_size()).clip(self._clip)

    def paint(self, surface: pygame.Surface, origin: tuple[int, int]) -> None:
        """Paint everything recorded onto ``surface``, the canvas's top-left at ``origin``."""
        ox, oy = origin
        outer = surface.get_clip()
        try:
            for what, where, area, clip in self.ops:
                surface.set_clip(clip.move(ox, oy).clip(outer))
                if isinstance(what, pygame.Surface):
                    assert isinstance(where, tuple)
                    surface.blit(what, (where[0] + ox, where[1] + oy), area)
                else:
                    assert isinstance(where, pygame.Rect)
                    surface.fill(what, where.move(ox, oy))
        finally:
            surface.set_clip(outer)


@dataclass
class _Built:
    """Everything drawn for one alert at one surface size, reused every frame."""

    size: tuple[int, int]
    layout: AlertLayout
    base: _Canvas  # the whole screen (full screen) or the banner, minus the flash area
    origin: tuple[int, int]  # where ``base`` goes on the surface
    tiles: list[pygame.Surface | None]  # the flash area: normal, inverted (made when first shown)
    scrolls: list[tuple[Ticker, pygame.Rect]]
    body_pending: bool = False  # the body is drawn at the next frame (see AlertView.draw)


class AlertView:
    """The alert overlay (see the module docstring); main thread only.

    ``font``: a :class:`FontFace`, a font file path, or None for pygame's bundled font.
    ``antialias`` defaults to ``not led``. ``mono``: a single-colour panel, drawn with
    :data:`MONO_PALETTES`. ``banner_fraction``: the banner's share of the
    screen height (default 0.12, LED 0.25: the built-in layouts' ticker bands fit under
    it). ``scroll_speed``: pixels per second for scrolling text (default LED 24,
    else a twelfth of the width per second). ``flash_for``: seconds the animation runs
    after an alert appears (None: as long as it shows).

    ``on_error(reason)`` is called, on the main thread from :meth:`draw` or
    :meth:`next_frame`, when the alert screen could not be drawn and the minimal one is
    shown instead (see the module docstring); ``reason`` is one line, e.g.
    ``"alert screen: crue-1 (critical, fullscreen, 128x64): ValueError: ...; minimal
    alert screen shown"``. It is called once per alert and failure, not at every frame;
    an exception it raises is logged and ignored. A font that cannot be opened is
    reported the same way, at the first drawing, and pygame's bundled font used instead.
    Failures are logged whether or not ``on_error`` is given.
    """

    revision: int
    """Incremented whenever what the view shows changes (not on animation steps)."""

    def __init__(self, font: FontFace | str | None = None, *, antialias: bool | None = None,
                 flash: bool = True, led: bool = False, mode: str = "fullscreen",
                 banner_fraction: float | None = None, scroll_speed: float | None = None,
                 flash_for: float | None = None, on_error: ErrorCallback | None = None,
                 mono: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.on_error = on_error
        self._pending: list[str] = []  # failures found before there was a screen to draw
        face = self._open(font)
        self.led = led
        self.mono = mono
        self.flash = flash
        self.flash_for = flash_for
        self.mode = mode
        self.banner_fraction = banner_fraction if banner_fraction is not None else (0.25 if led else 0.12)
        if not 0 < self.banner_fraction <= 1:
            raise ValueError(f"banner_fraction must be in (0, 1], got {self.banner_fraction}")
        self.scroll_speed = scroll_speed
        self.antialias = (not led) if antialias is None else antialias
        self._painter = None if face is None else TextPainter(face, antialias=self.antialias,
                                                              line_spacing=1.0 if led else 1.1)
        self.revision = 0
        self._alert: Alert | None = None
        self._count = 1
        self._index = 0
        self._image: pygame.Surface | None = None
        self._mode = mode
        self._start = 0.0
        self._built: _Built | None = None
        self._tiles: LRU[tuple[object, ...], pygame.Surface] = LRU(TILES_KEPT)  # see _tile
        self._failed = False  # True: the minimal screen is shown for the current alert
        self._failed_size: tuple[int, int] | None = None  # ... at this size (None: any)
        self._complete = False  # see the property
        self._minimal = MinimalAlertScreen(mono=mono)
        self._reported: LRU[tuple[object, ...], bool] = LRU(64)

    def _open(self, font: FontFace | str | None) -> FontFace | None:
        """The face for ``font``; pygame's bundled one (the failure noted) when it cannot be
        opened; None when neither can."""
        if isinstance(font, FontFace):
            return font
        try:
            return open_face(font)
        except Exception as exc:  # a missing file, a broken font, anything: never fatal here
            self._pending.append(f"alert screen: font {font!r} unusable ({_describe(exc)}); "
                                 "pygame's bundled font used")
        try:
            return open_face(None)
        except Exception as exc:
            self._pending.append(f"alert screen: no font can be opened ({_describe(exc)}); "
                                 "minimal alert screen shown")
            return None

    @property
    def painter(self) -> TextPainter:
        """The text painter of the alert screen (its face is the configured font)."""
        if self._painter is None:
            raise RuntimeError("no font could be opened for the alert screen")
        return self._painter

    # --- what to show --------------------------------------------------------------------

    @property
    def current(self) -> Alert | None:
        """The alert shown, or None (the view then draws nothing)."""
        return self._alert

    @property
    def complete(self) -> bool:
        """True when the last :meth:`draw` painted all that the current alert will show:
        its title and its body (a full screen draws the body one frame after the rest, see
        the module docstring), or the minimal screen when the full one failed. False
        before the alert's first frame and on its title-only frame."""
        return self._complete

    @property
    def shown_mode(self) -> str:
        """``fullscreen`` or ``banner``: how the current alert is drawn."""
        return self._mode

    def set_alerts(self, current: Alert | None, count_at_level: int = 1, index: int = 0,
                   image: pygame.Surface | None = None, now: float = 0.0,
                   mode: str | None = None) -> bool:
        """Show ``current`` (None: nothing), the ``index``-th (from 0) of ``count_at_level``
        alerts taking turns, with ``image`` (the decoded asset) if any; ``mode`` overrides
        the constructor's for this alert. ``now`` (monotonic) starts the animations.
        Returns True when the picture changed (calling it again with the same values
        changes nothing and does not restart the animation)."""
        mode = self.mode if mode is None else mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        count = max(1, int(count_at_level))
        index = min(max(0, int(index)), count - 1)
        if (current == self._alert and count == self._count and index == self._index
                and image is self._image and mode == self._mode):
            return False
        if current is not None and current.level not in PALETTES:
            raise ValueError(f"unknown alert level {current.level!r}")
        if current != self._alert:
            self._start = now  # a turn to the next alert restarts the animation and scrolling
        self._alert, self._count, self._index, self._image, self._mode = current, count, index, image, mode
        self._built = None
        self._failed, self._failed_size = False, None  # a new picture: the full screen is tried again
        self._complete = False
        self.revision += 1
        return True

    # --- geometry --------------------------------------------------------------------------

    def _min_px(self) -> int:
        """The smallest readable LED size in the font's own sizes (see the module docstring)."""
        return self.painter.face.fitting_size(LED_MIN_PX)

    def _min_row(self) -> int:
        """Rows a line of text needs at the smallest readable LED size."""
        return self.painter.face.line_height(self._min_px())

    def banner_rect(self, size: tuple[int, int]) -> pygame.Rect:
        """The band over the bottom of the screen that banner mode paints (nothing else)."""
        w, h = size
        bh = min(h, max(round(h * self.banner_fraction), self._min_row() + 2))
        return pygame.Rect(0, h - bh, w, bh)

    def layout(self, size: tuple[int, int]) -> AlertLayout:
        """Where the current alert's parts go on a surface of ``size``."""
        if self._mode == "banner":
            return self._banner_layout(size)
        return self._full_layout(size)

    def _full_layout(self, size: tuple[int, int]) -> AlertLayout:
        w, h = size
        alert = self._alert
        led = self.led
        min_row = self._min_row() if led else 1
        m = max(1, round(min(w, h) * (0.02 if led else 0.03)))
        bh = max(round(h * (0.22 if led else 0.16)), min_row + 2)
        eh = max(round(h * (0.14 if led else 0.1)), min_row) if alert is not None and alert.exercise else 0
        # On a panel too small for all of it, the title's row comes first: the band gives
        # way, then the EXERCICE strip (down to 2 rows each).
        bh = min(bh, max(2, h - eh - min_row))
        eh = min(eh, max(2, h - bh - min_row)) if eh else 0
        band = pygame.Rect(0, 0, w, bh)
        pad = 1 if led else max(1, round(bh * 0.12))
        text_pad = 1 if led else round(bh * 0.15)  # above and below the band's words
        pictogram = pygame.Rect(m, pad, bh - 2 * pad, bh - 2 * pad)
        counter = None
        right = w - m
        if self._count > 1:
            text = self._counter_text()
            px = self.painter.line_px(text, w, bh - 2 * text_pad)
            cw = self.painter.face.width(text, px) + 2
            counter = pygame.Rect(right - cw, text_pad, cw, bh - 2 * text_pad)
            right = counter.x - m
        label_x = pictogram.right + m
        label = pygame.Rect(label_x, text_pad, max(1, right - label_x), bh - 2 * text_pad)

        exercise = None
        bottom = h
        if eh:
            exercise = pygame.Rect(0, h - eh, w, eh)
            bottom = exercise.y
        gap = 0 if led else m
        # A level's frame (single-colour panels) keeps the text off its edges.
        f = frame_width(size) if alert is not None and palette_for(alert.level, self.mono).frame else 0
        area = pygame.Rect(m + f, bh + gap, max(1, w - 2 * (m + f)),
                           max(1, bottom - bh - 2 * gap - (0 if eh else f)))
        image = None
        if self._image is not None and not led:
            if w >= h:
                iw = round(area.w * 0.4)
                image = pygame.Rect(area.right - iw, area.y, iw, area.h)
                area.w = max(1, area.w - iw - m)
            else:
                ih = round(area.h * 0.4)
                image = pygame.Rect(area.x, area.bottom - ih, area.w, ih)
                area.h = max(1, area.h - ih - m)
        title, body = self._split(area, min_row)
        return AlertLayout(band, band.copy(), pictogram, label, counter, title, body, image, exercise)

    def _split(self, area: pygame.Rect, min_row: int) -> tuple[pygame.Rect, pygame.Rect | None]:
        """The title and body areas: the title as large as fits in its share, the body below."""
        alert = self._alert
        if alert is None or not alert.body.strip():
            return area.copy(), None
        if self.led:
            # The body row is the smaller, so the body never looks bigger than the title.
            th = max(min_row, round(area.h * 0.55))
            th = min(th, max(min_row, area.h - min_row))
            return pygame.Rect(area.x, area.y, area.w, th), pygame.Rect(area.x, area.y + th, area.w, max(1, area.h - th))
        fitted = self.painter.fit(alert.title, "", area.w, round(area.h * 0.5))
        th = max(1, fitted.height)
        gap = round(area.h * 0.04)
        return (pygame.Rect(area.x, area.y, area.w, th),
                pygame.Rect(area.x, area.y + th + gap, area.w, max(1, area.h - th - gap)))

    def _banner_layout(self, size: tuple[int, int]) -> AlertLayout:
        band = self.banner_rect(size)
        rule = max(1, round(band.h * 0.06))  # a line in the band colour along the banner's top
        inner = pygame.Rect(band.x, band.y + rule, band.w, band.h - rule)
        tile = pygame.Rect(band.x, inner.y, max(1, min(inner.h, band.w // 3)), inner.h)
        pad = max(1, round(min(inner.h, tile.w) * 0.12))  # from the width too: a narrow screen
        m = pad
        x = tile.right + m
        right = band.right - m
        # The title keeps at least half of what is left of the width: the counter, then the
        # EXERCICE tag, are left out when they would take more (the tag then ends the text).
        keep = max(1, (right - x) // 2)
        counter = None
        if self._count > 1:
            text = self._counter_text()
            px = self.painter.line_px(text, band.w, round(inner.h * 0.6))
            cw = self.painter.face.width(text, px) + 2
            if right - cw - m - x >= keep:
                counter = pygame.Rect(right - cw, inner.y + pad, cw, inner.h - 2 * pad)
                right = counter.x - m
        exercise = None
        if self._alert is not None and self._alert.exercise:
            text = EXERCISE_LABEL
            px = self.painter.line_px(text, band.w, round(inner.h * 0.5))
            ew = self.painter.face.width(text, px) + 2 * pad
            if right - (x + ew + m) >= keep:
                exercise = pygame.Rect(x, inner.y + pad, ew, inner.h - 2 * pad)
                x = exercise.right + m
        title = pygame.Rect(x, inner.y + pad // 2, max(1, right - x), max(1, inner.h - pad))
        pictogram = tile.inflate(-2 * pad, -2 * pad)
        return AlertLayout(band, tile, pictogram, None, counter, title, None, None, exercise)

    def _counter_text(self) -> str:
        return f"{self._index + 1}/{self._count}"

    # --- animation -----------------------------------------------------------------------

    def _flashing(self, now: float) -> bool:
        alert = self._alert
        if not self.flash or alert is None or alert.level not in FLASHING_LEVELS:
            return False
        return self.flash_for is None or now - self._start < self.flash_for

    def inverted(self, now: float) -> bool:
        """True while the attention animation shows its inverted state at ``now``."""
        if not self._flashing(now) or now < self._start:
            return False
        return math.floor((now - self._start) / FLASH_HALF_PERIOD) % 2 == 1

    def next_frame(self, now: float) -> float | None:
        """Monotonic time of the next change of picture; None when it is still (as the
        minimal alert screen always is). Never raises: a failure here switches to the
        minimal screen and returns ``now``, so that it is drawn at once."""
        if self._alert is None or self._failed:
            return None
        try:
            return self._next_frame(now)
        except Exception as exc:
            self._fail(exc, None)
            return now

    def _next_frame(self, now: float) -> float | None:
        if self._built is not None and self._built.body_pending:
            return now  # the body is still to come (see draw)
        due: list[float] = []
        if self._flashing(now):
            steps = max(-1, math.floor((now - self._start) / FLASH_HALF_PERIOD))
            due.append(self._start + (steps + 1) * FLASH_HALF_PERIOD + 1e-7)
            if self.flash_for is not None:
                due.append(self._start + self.flash_for + 1e-7)
        if self._built is not None:
            for ticker, _ in self._built.scrolls:
                t = ticker.next_frame(now)
                if t is not None:
                    due.append(t)
        return min(due) if due else None

    # --- drawing ---------------------------------------------------------------------------

    def draw(self, surface: pygame.Surface, now: float, wall: datetime) -> None:
        """Paint the current alert as it is at ``now``; nothing when there is none.

        Never raises: when the alert screen cannot be drawn, the minimal one is, and the
        failure goes to ``on_error`` (see the class docstring)."""
        if self._alert is None:
            return
        if self._pending:
            pending, self._pending = self._pending, []
            for reason in pending:
                self._report(("pending", reason), reason, None)
        size = surface.get_size()
        if self._failed and self._failed_size is not None and self._failed_size != size:
            self._failed = False  # another size (a rotation): the full screen is tried again
        if not self._failed:
            try:
                self._draw_full(surface, now, wall)
                self._complete = self._built is not None and not self._built.body_pending
                return
            except Exception as exc:
                self._fail(exc, size)
        self._draw_minimal(surface)
        self._complete = True

    def _fail(self, exc: Exception, size: tuple[int, int] | None) -> None:
        """Switch to the minimal screen for the current alert (at ``size``; None: any)."""
        self._failed = True
        self._failed_size = size
        self._built = None  # its buffers may be what failed: let them go
        alert = self._alert
        assert alert is not None
        at = f", {size[0]}x{size[1]}" if size is not None else ""
        reason = (f"alert screen: {alert.id} ({alert.level}, {self._mode}{at}): {_describe(exc)}; "
                  "minimal alert screen shown")
        self._report((alert.key, self._mode, _describe(exc)), reason, exc)

    def _draw_minimal(self, surface: pygame.Surface) -> None:
        alert = self._alert
        assert alert is not None
        banner = self.banner_fraction if self._mode == "banner" else None
        try:
            self._minimal.draw(surface, alert.level, alert.title, banner_fraction=banner,
                               antialias=self.antialias)
        except Exception as exc:
            self._report((alert.key, "minimal", _describe(exc)),
                         f"minimal alert screen: {alert.id} ({alert.level}): {_describe(exc)}; "
                         "screen filled with the level colour", exc)
            try:
                surface.fill(palette_for(alert.level, self.mono).background)
            except Exception:
                log.exception("alert screen: cannot even fill the screen")

    def _report(self, key: tuple[object, ...], reason: str, exc: Exception | None) -> None:
        """Log ``reason`` and pass it to ``on_error``, once per ``key`` (not at every frame)."""
        if self._reported.get(key):
            return
        self._reported.put(key, True)
        log.error("%s", reason, exc_info=exc)
        if self.on_error is not None:
            try:
                self.on_error(reason)
            except Exception:
                log.exception("alert screen: on_error failed")

    def _draw_full(self, surface: pygame.Surface, now: float, wall: datetime) -> None:
        assert self._alert is not None
        size = surface.get_size()
        built = self._built
        if built is None or built.size != size:
            built = self._built = self._build(size)
        elif built.body_pending:
            alert = self._alert
            assert built.layout.body is not None
            built.scrolls += self._body(cast(pygame.Surface, built.base), built.layout.body, alert.body,
                                        palette_for(alert.level, self.mono))
            built.body_pending = False
        built.base.paint(surface, built.origin)
        state = 1 if self.inverted(now) else 0
        tile = built.tiles[state]
        if tile is None:
            alert = self._alert
            tile = built.tiles[state] = self._tile(built.layout, palette_for(alert.level, self.mono), alert,
                                                   inverted=bool(state))
        surface.blit(tile, built.layout.flash.topleft)
        for ticker, rect in built.scrolls:
            ticker.draw(surface, rect, now)

    def _speed(self, width: int) -> float:
        if self.scroll_speed is not None:
            return self.scroll_speed
        return 24.0 if self.led else max(60.0, width / 12)

    def _build(self, size: tuple[int, int]) -> _Built:
        alert = self._alert
        assert alert is not None
        palette = palette_for(alert.level, self.mono)
        lay = self.layout(size)
        banner = self._mode == "banner"
        origin = lay.band.topleft if banner else (0, 0)
        canvas = _Canvas(lay.band.size if banner else size)
        # The drawing helpers take a surface; the canvas has what they use of one.
        base = cast(pygame.Surface, canvas)
        base.fill(palette.background)
        # Everything below is drawn on ``base``: shift the layout by ``origin``.
        ox, oy = origin

        def local(r: pygame.Rect) -> pygame.Rect:
            return r.move(-ox, -oy)

        scrolls: list[tuple[Ticker, pygame.Rect]] = []
        body_pending = False
        if banner:
            base.fill(palette.band, (0, 0, lay.band.w, lay.flash.y - lay.band.y))
            text = alert.title if not alert.body.strip() else f"{alert.title} — {alert.body}"
            if alert.exercise and lay.exercise is None:  # no room for the tag: said in the text
                text = f"{text} ({EXERCISE_LABEL})"
            scrolls += self._line(base, local(lay.title), lay.title, text, palette.text, palette.background)
        else:
            scrolls += self._title(base, lay.title, alert.title, palette)
            # The body comes one frame later on a full screen: choosing its size and
            # drawing its lines for a text never seen before is the longest part of the
            # build, and the level, the pictogram and the title say the essential at once.
            body_pending = lay.body is not None and not self.led
            if lay.body is not None and not body_pending:
                scrolls += self._body(base, lay.body, alert.body, palette)
            if lay.image is not None and self._image is not None:
                self._blit_image(base, lay.image)
        if banner and lay.counter is not None:  # in full screen it is part of the band
            self.painter.draw_line(base, local(lay.counter), self._counter_text(), palette.text)
        if lay.exercise is not None:
            base.fill(EXERCISE_STRIP, local(lay.exercise))
            self.painter.draw_line(base, local(lay.exercise).inflate(-2, -2), EXERCISE_LABEL, EXERCISE_INK)
        if palette.frame is not None:  # around the banner, or the screen below the band
            framed = pygame.Rect(0, 0, lay.band.w, lay.band.h) if banner else \
                pygame.Rect(0, lay.band.bottom, size[0], size[1] - lay.band.bottom)
            draw_frame(base, framed, palette.frame, frame_width(size))
        return _Built(size, lay, canvas, origin, [None, None], scrolls, body_pending=body_pending)

    def _tile(self, lay: AlertLayout, palette: Palette, alert: Alert, inverted: bool) -> pygame.Surface:
        """The flash area in one of its two states: the top band, or the banner's pictogram tile.

        Kept for the next alerts (the last :data:`TILES_KEPT`): an update of an alert, or the
        next one of the same kind and level, has the very same band.
        """
        at = (-lay.flash.x, -lay.flash.y)
        counter = self._counter_text() if lay.counter is not None and self._mode != "banner" else None
        key = (tuple(lay.flash.size), tuple(lay.pictogram.move(at)),
               tuple(lay.label.move(at)) if lay.label is not None else None,
               tuple(lay.counter.move(at)) if lay.counter is not None else None,
               palette, pictogram_for(alert), alert.level, counter, inverted, self.painter.antialias,
               id(self.painter.face))
        tile = self._tiles.get(key)
        if tile is None:
            tile = self._tiles.put(key, self._draw_tile(lay, palette, alert, inverted, counter))
        return tile

    def _draw_tile(self, lay: AlertLayout, palette: Palette, alert: Alert, inverted: bool,
                   counter: str | None) -> pygame.Surface:
        fill, ink = (palette.band_ink, palette.band) if inverted else (palette.band, palette.band_ink)
        tile = pygame.Surface(lay.flash.size)
        tile.fill(fill)
        at = (-lay.flash.x, -lay.flash.y)
        draw_pictogram(tile, lay.pictogram.move(at), pictogram_for(alert), ink, fill,
                       antialias=self.painter.antialias)
        if lay.label is not None:
            self.painter.draw_line(tile, lay.label.move(at), LABELS[alert.level], ink, align="left")
        if lay.counter is not None and counter is not None:
            self.painter.draw_line(tile, lay.counter.move(at), counter, ink, align="right")
        return tile

    def _title(self, base: pygame.Surface, rect: pygame.Rect, title: str,
               palette: Palette) -> list[tuple[Ticker, pygame.Rect]]:
        if self.led:
            return self._line(base, rect, rect, title, palette.text, palette.background)
        self.painter.draw(base, rect, title, "", palette.text, "center")
        return []

    def _body(self, base: pygame.Surface, rect: pygame.Rect, body: str,
              palette: Palette) -> list[tuple[Ticker, pygame.Rect]]:
        if self.led:
            fitted = self.painter.fit("", body, rect.w, rect.h)
            if fitted.truncated or fitted.body_px < self._min_px():
                return self._line(base, rect, rect, body, palette.text, palette.background)
        self.painter.draw(base, rect, "", body, palette.text, "center")
        return []

    def _line(self, base: pygame.Surface, local: pygame.Rect, rect: pygame.Rect, text: str, color: Color,
              background: Color) -> list[tuple[Ticker, pygame.Rect]]:
        """``text`` on one line in ``rect``: still when it fits at a readable size, else a
        scroll (returned, with its place on the surface, to draw every frame)."""
        painter = self.painter
        one_line = " ".join(painter.prepare(text).split("\n"))
        if not one_line:
            return []
        full = painter.line_px(one_line, 1 << 30, rect.h)
        px = painter.line_px(one_line, rect.w, rect.h)
        readable = max(self._min_px(), math.ceil(full * STATIC_SHARE))
        if px >= readable and painter.face.width(one_line, px) <= rect.w:
            painter.draw_line(base, local, text, color)
            return []
        band = pygame.Rect(rect.x, rect.y, rect.w, rect.h)
        return [(Ticker(painter, [text], band.size, color, background, self._speed(base.get_width()),
                        self._start), band)]

    def _blit_image(self, base: pygame.Surface, rect: pygame.Rect) -> None:
        image = self._image
        assert image is not None
        iw, ih = image.get_size()
        if iw <= 0 or ih <= 0 or rect.w <= 0 or rect.h <= 0:
            return
        scale = min(rect.w / iw, rect.h / ih)
        size = (max(1, round(iw * scale)), max(1, round(ih * scale)))
        if image.get_bitsize() not in (24, 32):
            deep = pygame.Surface(image.get_size(), pygame.SRCALPHA)
            deep.blit(image, (0, 0))
            image = deep
        scaled = pygame.transform.smoothscale(image, size)
        base.blit(scaled, (rect.x + (rect.w - size[0]) // 2, rect.y + (rect.h - size[1]) // 2))


# --- the minimal alert screen --------------------------------------------------------------

MINIMAL_MIN_PX = 6
"""Smallest ``pygame.font`` size of the minimal screen (its font is never asked for less)."""
MINIMAL_MAX_PX = 720
MINIMAL_MAX_CHARS = 300
"""Title characters the minimal screen considers; more are cut with "…"."""
_MINIMAL_FONTS: dict[int, pygame.font.Font] = {}


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 300 characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 300 else text[:299] + "…"


def _minimal_font(px: int) -> pygame.font.Font:
    font = _MINIMAL_FONTS.get(px)
    if font is None:
        if not pygame.font.get_init():
            pygame.font.init()
        if len(_MINIMAL_FONTS) >= 24:
            _MINIMAL_FONTS.clear()
        font = _MINIMAL_FONTS[px] = pygame.font.Font(None, px)
    return font


def minimal_text(title: str, level: str) -> str:
    """What the minimal screen writes for ``title``: control, format, private and unassigned
    characters dropped, blank runs as one space, at most :data:`MINIMAL_MAX_CHARS`
    characters; the level's word (ALERTE...) when nothing is left."""
    kept: list[str] = []
    for ch in unicodedata.normalize("NFC", title[:4 * MINIMAL_MAX_CHARS]):
        category = unicodedata.category(ch)
        if ch.isspace() or category in ("Zs", "Zl", "Zp"):
            kept.append(" ")
        elif category[0] != "C":
            kept.append(ch)
    text = " ".join("".join(kept).split())
    if len(text) > MINIMAL_MAX_CHARS:
        text = text[:MINIMAL_MAX_CHARS - 1].rstrip() + "…"
    return text or LABELS.get(level, LABELS["critical"])


def _width(font: pygame.font.Font, text: str) -> int:
    try:
        return font.size(text)[0]
    except (pygame.error, UnicodeError, ValueError):
        return font.size(_ascii(text))[0]


def _ascii(text: str) -> str:
    """A stand-in for text the font library refuses (outside the Basic Multilingual Plane)."""
    return "".join(c if ord(c) < 0x10000 else "?" for c in text).encode("latin-1", "replace").decode("latin-1")


def _minimal_wrap(font: pygame.font.Font, text: str, width: int, max_lines: int) -> list[str] | None:
    """Lines of ``text`` no wider than ``width`` (words broken when they must be); None as
    soon as there are more than ``max_lines``."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if _width(font, candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        while len(word) > 1 and _width(font, word) > width:
            cut = last_true(1, len(word) - 1, lambda n: _width(font, word[:n]) <= width)
            lines.append(word[:cut])
            word = word[cut:]
            if len(lines) > max_lines:
                return None
        current = word
        if len(lines) > max_lines:
            return None
    if current:
        lines.append(current)
    return lines if len(lines) <= max_lines else None


def minimal_area(size: tuple[int, int], banner_fraction: float | None) -> pygame.Rect:
    """Where the minimal screen paints: all of ``size``, or the band at the bottom that a
    banner takes (at least 12 rows, at most the whole height)."""
    w, h = max(0, size[0]), max(0, size[1])
    if banner_fraction is None:
        return pygame.Rect(0, 0, w, h)
    bh = min(h, max(12, round(h * min(1.0, max(0.0, banner_fraction)))))
    return pygame.Rect(0, h - bh, w, bh)


class MinimalAlertScreen:
    """The alert screen that does not depend on the configured font nor on the layout code:
    the level's background and text colours and the title, wrapped and as large as fits,
    in pygame's bundled font via ``pygame.font`` (SDL_ttf). Sizes are computed
    defensively (from :data:`MINIMAL_MIN_PX`, whatever the surface: 1x1 to 8K); a title
    that does not fit even at the smallest size is cut short with "…". The last picture's
    lines are kept, so drawing it again costs a fill and a few blits::

        MinimalAlertScreen().draw(screen, "critical", "Crue : évacuez les berges")
    """

    def __init__(self, mono: bool = False) -> None:
        self.mono = mono  # a single-colour panel: MONO_PALETTES
        self._key: tuple[object, ...] | None = None
        self._lines: list[tuple[pygame.Surface, tuple[int, int]]] = []
        self.area = pygame.Rect(0, 0, 0, 0)
        self.text_rect = pygame.Rect(0, 0, 0, 0)
        """Where the title's lines were put, last time (for tests and logs)."""

    def draw(self, surface: pygame.Surface, level: str, title: str, *, banner_fraction: float | None = None,
             antialias: bool = True) -> pygame.Rect:
        """Paint the minimal screen for an alert of ``level`` (unknown levels: critical
        colours) on ``surface`` (the bottom band only with ``banner_fraction``); returns
        the area painted."""
        palette = palette_for(level, self.mono)
        size = surface.get_size()
        key = (size, level, title, banner_fraction, antialias)
        if key != self._key:
            self._key = None
            self._lines = self._layout(size, palette, minimal_text(title, level), banner_fraction, antialias)
            self._key = key
        surface.fill(palette.background, self.area)
        if palette.frame is not None:
            draw_frame(surface, self.area, palette.frame, frame_width(self.area.size))
        old_clip = surface.get_clip()
        surface.set_clip(self.area.clip(old_clip))
        try:
            for line, at in self._lines:
                surface.blit(line, at)
        finally:
            surface.set_clip(old_clip)
        return self.area.copy()

    def _layout(self, size: tuple[int, int], palette: Palette, text: str, banner_fraction: float | None,
                antialias: bool) -> list[tuple[pygame.Surface, tuple[int, int]]]:
        area = self.area = minimal_area(size, banner_fraction)
        margin = max(1, min(area.w, area.h) // 20)
        inner = area.inflate(-2 * margin, -2 * margin)
        if inner.w < 1 or inner.h < 1:
            inner = area.copy()
        width, height = max(1, inner.w), max(1, inner.h)

        def fits(px: int) -> bool:
            font = _minimal_font(px)
            return _minimal_wrap(font, text, width, height // max(1, font.get_linesize())) is not None

        hi = max(MINIMAL_MIN_PX, min(MINIMAL_MAX_PX, height * 4 // 3))
        px = last_true(MINIMAL_MIN_PX, hi, fits)
        font = _minimal_font(px)
        step = max(1, font.get_linesize())
        room = max(1, height // step)
        lines = _minimal_wrap(font, text, width, 1 << 30) or [text]
        if len(lines) > room:
            lines = lines[:room]
            last = lines[-1]
            while last and _width(font, last + "…") > width:
                last = last[:-1]
            lines[-1] = last.rstrip() + "…"
        top = inner.y + max(0, (height - len(lines) * step) // 2)
        placed: list[tuple[pygame.Surface, tuple[int, int]]] = []
        self.text_rect = pygame.Rect(inner.centerx, top, 0, 0)
        for i, line in enumerate(lines):
            try:
                image = font.render(line, antialias, palette.text, palette.background)
            except (pygame.error, UnicodeError, ValueError):
                image = font.render(_ascii(line), antialias, palette.text, palette.background)
            at = (inner.x + (width - image.get_width()) // 2, top + i * step)
            placed.append((image, at))
            self.text_rect.union_ip(pygame.Rect(at, image.get_size()))
        return placed
