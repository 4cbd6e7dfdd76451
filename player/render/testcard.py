"""The test card (``panel-player testcard``): a full-screen pattern for installers.

    card = TestCard(PanelInfo("mairie-entree", addresses=tuple(describe_addresses())),
                    readings={"ambient": 0.41, "cpu_temp_c": 48.3}, tz=ZoneInfo("Europe/Paris"))
    renderer.set_overlay(card)
    card.update({"ambient": 0.43, "cpu_temp_c": 48.9})     # fresh sensor readings

From top to bottom (:meth:`TestCard.layout`):

- colour bars at full intensity, in the usual order white, yellow, cyan, green, magenta,
  red, blue, black: a missing colour channel or a swapped pair shows at once;
- a grey ramp of :data:`RAMP_STEPS` steps from black to white, left to right: crushed
  or banded greys show, and the ramp's direction shows a mirrored picture;
- a black field with a white grid of 1-pixel lines on every column and row that is a
  multiple of the grid step (default 32 pixels on LED matrices, the module edges of the
  usual HUB75 panels; 64 on screens), plus the last column and row: a dead pixel, row or
  module breaks a line. The information block sits in it: panel id, name, firmware
  version, IP addresses, broker state, resolution, the time with seconds and the sensor
  readings, redrawn every second.

An arrow pointing up with the word HAUT marks the top-left corner (the top edge also has
an arrow at its middle), and red corner marks touch the four outermost pixels: a
rotated, mirrored or cropped picture is obvious.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo

import pygame

from player.render.fonts import Color, FontFace, open_face
from player.render.identify import (PAGE_SECONDS, InfoBlock, PanelInfo, Row, info_block, panel_rows,
                                    plan_info_block)
from player.render.pictograms import draw_arrow
from player.render.text import TextPainter

BARS: tuple[tuple[str, Color], ...] = (
    ("white", (255, 255, 255)), ("yellow", (255, 255, 0)), ("cyan", (0, 255, 255)),
    ("green", (0, 255, 0)), ("magenta", (255, 0, 255)), ("red", (255, 0, 0)),
    ("blue", (0, 0, 255)), ("black", (0, 0, 0)),
)
RAMP_STEPS = 16
GRID_LED = 32
GRID_SCREEN = 64
GRID_COLOR: Color = (255, 255, 255)
FIELD: Color = (0, 0, 0)
CORNER: Color = (255, 0, 0)
TEXT: Color = (255, 255, 255)
LABEL: Color = (255, 210, 0)
BOX: Color = (0, 0, 0)
BOX_EDGE: Color = (128, 128, 128)

# Labels and units for the heartbeat's sensor fields; others show under their own name.
_READINGS: dict[str, tuple[str, str]] = {
    "ambient": ("Lumière", ""),
    "brightness": ("Luminosité", " %"),
    "cpu_temp_c": ("Temp. CPU", " °C"),
    "door_open": ("Porte", ""),
    "fps": ("Images/s", ""),
    "disk_free_mb": ("Disque libre", " Mo"),
    "rss_mb": ("Mémoire", " Mo"),
    "clock_synced": ("Horloge synchro", ""),
}


def format_reading(key: str, value: object) -> Row:
    """A sensor reading as an information row: ``("Temp. CPU", "48.3 °C")``.

    ``None`` (the sensor could not be read) shows as "—", booleans as oui/non.
    """
    label, unit = _READINGS.get(key, (key, ""))
    if value is None:
        return label, "—"
    if key == "door_open" and isinstance(value, bool):
        return label, "ouverte" if value else "fermée"
    if isinstance(value, bool):
        return label, "oui" if value else "non"
    if isinstance(value, float):
        if not math.isfinite(value):
            return label, "—"
        text = f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
        return label, text.replace(".", ",") + unit
    return label, f"{value}{unit}"


@dataclass(frozen=True)
class TestCardLayout:
    """Where the parts of the test card go on one surface size."""

    bars: tuple[tuple[pygame.Rect, Color], ...]
    ramp: tuple[tuple[pygame.Rect, int], ...]  # each step and its grey level
    field: pygame.Rect  # the black field carrying the grid
    grid: int  # grid step in pixels
    info: pygame.Rect  # the information block's box (inside the field)
    orientation: pygame.Rect  # the HAUT box, top left


class TestCard:
    """The test-card overlay (see the module docstring); main thread only.

    ``readings``: sensor values by heartbeat field name (see :func:`format_reading`).
    ``tz``: the time zone of the clock line (None: the wall clock's own). ``grid``: the
    grid step in pixels (default 32 with ``led`` else 64).
    """

    __test__ = False  # not a pytest test class, whatever its name

    revision: int

    def __init__(self, info: PanelInfo, *, readings: Mapping[str, object] | None = None,
                 font: FontFace | str | None = None, antialias: bool | None = None, led: bool = False,
                 grid: int | None = None, tz: tzinfo | None = None, start: float | None = None) -> None:
        face = font if isinstance(font, FontFace) else open_face(font)
        self.led = led
        self.painter = TextPainter(face, antialias=(not led) if antialias is None else antialias,
                                   line_spacing=1.0 if led else 1.1)
        self.grid = grid if grid is not None else (GRID_LED if led else GRID_SCREEN)
        if self.grid < 2:
            raise ValueError(f"grid step must be at least 2 pixels, got {self.grid}")
        self.info = info
        self.readings: dict[str, object] = dict(readings or {})
        self.tz = tz
        self.start = start
        self.revision = 0
        self.last_block: InfoBlock | None = None
        self._pattern: pygame.Surface | None = None
        self._pattern_size: tuple[int, int] | None = None
        self._wall_offset: float | None = None  # wall epoch seconds minus monotonic seconds

    # --- content ---------------------------------------------------------------------------

    def update(self, readings: Mapping[str, object]) -> None:
        """Replace the sensor readings shown (from the next frame: at most a second away)."""
        fresh = dict(readings)
        if fresh != self.readings:
            self.readings = fresh
            self.revision += 1

    def set_panel(self, info: PanelInfo) -> None:
        """Show new panel information (e.g. the broker connected, an address changed)."""
        if info != self.info:
            self.info = info
            self.revision += 1

    def rows(self, size: tuple[int, int], wall: datetime) -> list[Row]:
        """The information block's rows as drawn at ``wall`` on a surface of ``size``."""
        local = wall.astimezone(self.tz) if self.tz is not None else wall
        rows = panel_rows(self.info)
        rows.append(("Écran", f"{size[0]} × {size[1]}"))
        rows.append(("Heure", f"{local:%H:%M:%S}"))
        rows += [format_reading(k, v) for k, v in self.readings.items()]
        return rows

    # --- geometry --------------------------------------------------------------------------

    def small(self, size: tuple[int, int]) -> bool:
        """True on LED matrices and panels under 200 rows: the information then shows on
        pages of its own, taking turns with the pattern, instead of in a box over the grid."""
        return self.led or size[1] < 200

    def layout(self, size: tuple[int, int]) -> TestCardLayout:
        """The rectangles of each part on a surface of ``size``."""
        w, h = size
        small = self.small(size)
        bars_h = round(h * 0.4 if small else h * 0.34)
        ramp_h = max(1, round(h * 0.1))
        bars = tuple((pygame.Rect(w * i // len(BARS), 0, w * (i + 1) // len(BARS) - w * i // len(BARS), bars_h),
                      colour) for i, (_, colour) in enumerate(BARS))
        ramp = tuple((pygame.Rect(w * i // RAMP_STEPS, bars_h,
                                  w * (i + 1) // RAMP_STEPS - w * i // RAMP_STEPS, ramp_h),
                      round(255 * i / (RAMP_STEPS - 1))) for i in range(RAMP_STEPS))
        field = pygame.Rect(0, bars_h + ramp_h, w, max(1, h - bars_h - ramp_h))
        if small:
            info = pygame.Rect(1, 1, max(1, w - 2), max(1, h - 2))  # a page of its own
        else:
            mw, mh = round(w * 0.12), max(2, round(field.h * 0.06))
            info = pygame.Rect(mw, field.y + mh, max(1, w - 2 * mw), max(1, field.h - 2 * mh))
        m = max(1, round(min(w, h) * 0.02))
        oh = max(1, round(bars_h * 0.4) - m)
        ow = min(bars[0][0].w * 2 + bars[1][0].w, round(oh * 3.2))
        orientation = pygame.Rect(m, m, max(1, ow), oh)
        return TestCardLayout(bars, ramp, field, self.grid, info, orientation)

    # --- drawing ---------------------------------------------------------------------------

    def _draw_pattern(self, size: tuple[int, int]) -> pygame.Surface:
        """Everything but the information block: drawn once per surface size."""
        w, h = size
        lay = self.layout(size)
        pattern = pygame.Surface(size)
        for rect, colour in lay.bars:
            pattern.fill(colour, rect)
        for rect, grey in lay.ramp:
            pattern.fill((grey, grey, grey), rect)
        field = lay.field
        pattern.fill(FIELD, field)
        step = lay.grid
        for x in [*range(0, w, step), w - 1]:
            pattern.fill(GRID_COLOR, (x, field.y, 1, field.h))
        for y in [*range(math.ceil(field.y / step) * step, h, step), h - 1]:
            pattern.fill(GRID_COLOR, (0, y, w, 1))
        # HAUT box: an arrow and the word, on black over the first bars (the arrow alone
        # when the word would be too small to read).
        box = lay.orientation
        pad = max(1, box.h // 8)
        arrow = pygame.Rect(box.x + pad, box.y + pad, max(1, (box.h - 2 * pad) * 2 // 3), box.h - 2 * pad)
        words = pygame.Rect(arrow.right + pad, box.y + pad, max(1, box.right - arrow.right - 2 * pad), box.h - 2 * pad)
        legible = words.h >= self.painter.face.line_height(8)
        pattern.fill(BOX, box if legible else arrow.inflate(2 * pad, 2 * pad))
        draw_arrow(pattern, arrow, TEXT, "up")
        if legible:
            self.painter.draw_line(pattern, words, "HAUT", TEXT, align="left")
        # Middle of the top edge, just under the edge.
        aw = max(3, min(w, h) // 20)
        draw_arrow(pattern, pygame.Rect(w // 2 - aw // 2, 1, aw, aw), TEXT, "up")
        # Corner marks: an L touching each outermost pixel.
        arm = max(3, min(w, h) // 16)
        thick = max(1, min(w, h) // 200)
        for cx, cy, dx, dy in ((0, 0, 1, 1), (w - 1, 0, -1, 1), (0, h - 1, 1, -1), (w - 1, h - 1, -1, -1)):
            x0 = cx if dx > 0 else cx - arm + 1
            y0 = cy if dy > 0 else cy - arm + 1
            pattern.fill(CORNER, (x0, cy if dy > 0 else cy - thick + 1, arm, thick))
            pattern.fill(CORNER, (cx if dx > 0 else cx - thick + 1, y0, thick, arm))
        return pattern

    def _turn(self, now: float) -> int:
        if self.start is None:
            return 0
        return max(0, math.floor((now - self.start) / PAGE_SECONDS))

    def _info_pages(self, size: tuple[int, int], rows: list[Row]) -> int:
        box = self._info_inner(self.layout(size).info)
        return plan_info_block(box, rows, self.painter, min_px=8, max_px=self._max_px(size))[2]

    @staticmethod
    def _info_inner(box: pygame.Rect) -> pygame.Rect:
        return box.inflate(-2 * max(1, box.h // 30), -2 * max(1, box.h // 30))

    @staticmethod
    def _max_px(size: tuple[int, int]) -> int:
        return max(8, size[1] // 20)

    def showing_pattern(self, size: tuple[int, int], now: float, wall: datetime) -> bool:
        """False while a small panel shows a page of information instead of the pattern."""
        if not self.small(size):
            return True
        cycle = 1 + self._info_pages(size, self.rows(size, wall))
        return self._turn(now) % cycle == 0

    def draw(self, surface: pygame.Surface, now: float, wall: datetime) -> None:
        """Paint the whole test card as it is at ``now`` / ``wall``."""
        if self.start is None:
            self.start = now
        self._wall_offset = wall.timestamp() - now
        size = surface.get_size()
        rows = self.rows(size, wall)
        box = self.layout(size).info
        small = self.small(size)
        page = self._turn(now)
        pattern = True
        if small:
            turn = page % (1 + self._info_pages(size, rows))
            pattern, page = turn == 0, turn - 1
        if pattern:
            if self._pattern is None or self._pattern_size != size:
                self._pattern = self._draw_pattern(size)
                self._pattern_size = size
            surface.blit(self._pattern, (0, 0))
            if small:
                self.last_block = None
                return
        else:
            surface.fill(BOX, (0, 0, *size))
        surface.fill(BOX, box)
        pygame.draw.rect(surface, BOX_EDGE, box, 1)
        self.last_block = info_block(surface, self._info_inner(box), rows, self.painter, color=TEXT,
                                     label_color=LABEL, page=page, min_px=8, max_px=self._max_px(size))

    def next_frame(self, now: float) -> float | None:
        """The next whole second of the wall clock (the clock line changes), or a page turn."""
        if self._wall_offset is None:
            return now
        wall = now + self._wall_offset
        due = now + (math.floor(wall) + 1 - wall) + 1e-6
        if self.start is not None:  # pages (if any) turn on these boundaries
            due = min(due, self.start + (self._turn(now) + 1) * PAGE_SECONDS + 1e-7)
        return due
