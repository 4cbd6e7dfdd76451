"""Pictograms drawn in code: warning triangle, information disc, flood, stop cross.

Each one is a shape in ``color`` holding a mark in ``mark`` (the "!" of the warning
triangle, the "i" of the disc, the waves, the cross), drawn to any size::

    draw_pictogram(screen, pygame.Rect(20, 20, 120, 120), "warning", (0, 0, 0), (255, 210, 0))

With ``antialias=True`` the shape is drawn four times larger and scaled down smoothly,
which gives soft edges on LCD screens. With ``antialias=False`` (LED matrices) it is
drawn at its own size with plain polygons: every pixel is exactly ``color``, ``mark``
or left untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import pygame

from player.render.fonts import Color

PictogramName = Literal["warning", "info", "flood", "stop"]
PICTOGRAMS: tuple[PictogramName, ...] = ("warning", "info", "flood", "stop")
SUPERSAMPLE = 4

Point = tuple[float, float]
_Painter = Callable[[pygame.Surface, int, Color, Color], None]


def _scaled(points: Sequence[Point], n: int) -> list[tuple[float, float]]:
    return [(x * n, y * n) for x, y in points]


def _disc(surface: pygame.Surface, color: Color, centre: Point, radius: float, n: int) -> None:
    pygame.draw.circle(surface, color, (centre[0] * n, centre[1] * n), max(1.0, radius * n))


def _bar(surface: pygame.Surface, color: Color, x0: float, y0: float, x1: float, y1: float, n: int) -> None:
    """An axis-aligned bar at least one pixel wide and tall, whatever ``n``."""
    left, top = math.floor(x0 * n), math.floor(y0 * n)
    width = max(1, round((x1 - x0) * n))
    height = max(1, round((y1 - y0) * n))
    surface.fill(color, (left, top, width, height))


def _warning(surface: pygame.Surface, n: int, color: Color, mark: Color) -> None:
    pygame.draw.polygon(surface, color, _scaled([(0.5, 0.06), (0.98, 0.92), (0.02, 0.92)], n))
    # The "!": a bar narrowing downwards, then its dot.
    pygame.draw.polygon(surface, mark, _scaled([(0.44, 0.34), (0.56, 0.34), (0.53, 0.66), (0.47, 0.66)], n))
    _bar(surface, mark, 0.465, 0.34, 0.535, 0.66, n)
    if n < 24:  # a few pixels: a square dot, clear of the bar
        _bar(surface, mark, 0.44, 0.74, 0.56, 0.84, n)
    else:
        _disc(surface, mark, (0.5, 0.78), 0.06, n)


def _info(surface: pygame.Surface, n: int, color: Color, mark: Color) -> None:
    _disc(surface, color, (0.5, 0.5), 0.48, n)
    _disc(surface, mark, (0.5, 0.26), 0.075, n)
    _bar(surface, mark, 0.42, 0.40, 0.58, 0.80, n)


def _wave(y: float, amplitude: float, thickness: float, x0: float, x1: float, steps: int = 24,
          periods: int = 2) -> list[Point]:
    top = [(x0 + (x1 - x0) * i / steps, y + amplitude * math.sin(2 * math.pi * periods * i / steps))
           for i in range(steps + 1)]
    bottom = [(x, yy + thickness) for x, yy in reversed(top)]
    return top + bottom


def _flood(surface: pygame.Surface, n: int, color: Color, mark: Color) -> None:
    radius = max(1, round(0.14 * n))
    pygame.draw.rect(surface, color, (0, 0, n, n), border_radius=radius)
    if n < 24:  # a few pixels: waves only, one period each, bold
        for y in (0.2, 0.45, 0.7):
            pygame.draw.polygon(surface, mark, _scaled(_wave(y, 0.07, 0.12, 0.12, 0.88, 8, 1), n))
        return
    # A house above the water, then three waves.
    pygame.draw.polygon(surface, mark, _scaled([(0.5, 0.1), (0.78, 0.38), (0.22, 0.38)], n))
    _bar(surface, mark, 0.32, 0.37, 0.68, 0.46, n)
    for y in (0.52, 0.67, 0.82):
        pygame.draw.polygon(surface, mark, _scaled(_wave(y, 0.035, 0.07, 0.1, 0.9), n))


def _stop(surface: pygame.Surface, n: int, color: Color, mark: Color) -> None:
    k = 0.29  # octagon corner cut, as a fraction of the side
    pygame.draw.polygon(surface, color, _scaled(
        [(k, 0), (1 - k, 0), (1, k), (1, 1 - k), (1 - k, 1), (k, 1), (0, 1 - k), (0, k)], n))
    t = 0.08  # half the cross's stroke, measured across the stroke
    a, b = 0.27, 0.73
    d = t / math.sqrt(2)
    pygame.draw.polygon(surface, mark, _scaled([(a - d, a + d), (a + d, a - d), (b + d, b - d), (b - d, b + d)], n))
    pygame.draw.polygon(surface, mark, _scaled([(b - d, a - d), (b + d, a + d), (a + d, b + d), (a - d, b - d)], n))


_PAINTERS: dict[str, _Painter] = {"warning": _warning, "info": _info, "flood": _flood, "stop": _stop}


def render_pictogram(name: PictogramName, size: int, color: Color, mark: Color, *,
                     antialias: bool = True) -> pygame.Surface:
    """The pictogram on a transparent ``size`` × ``size`` surface (per-pixel alpha)."""
    painter = _PAINTERS.get(name)
    if painter is None:
        raise ValueError(f"unknown pictogram {name!r}; expected one of {', '.join(PICTOGRAMS)}")
    size = max(1, int(size))
    n = size * SUPERSAMPLE if antialias else size
    big = pygame.Surface((n, n), pygame.SRCALPHA)
    # Transparent pixels carry the shape's colour so smoothing does not darken its edges.
    big.fill((*color, 0))
    painter(big, n, color, mark)
    if not antialias:
        return big
    return pygame.transform.smoothscale(big, (size, size))


def square_in(rect: pygame.Rect) -> pygame.Rect:
    """The largest square centred in ``rect``."""
    side = min(rect.w, rect.h)
    return pygame.Rect(rect.x + (rect.w - side) // 2, rect.y + (rect.h - side) // 2, side, side)


def draw_pictogram(surface: pygame.Surface, rect: pygame.Rect, name: PictogramName, color: Color,
                   mark: Color, *, antialias: bool = True) -> pygame.Rect:
    """Draw the pictogram in the largest square centred in ``rect``; returns that square."""
    square = square_in(rect)
    if square.w > 0:
        surface.blit(render_pictogram(name, square.w, color, mark, antialias=antialias), square.topleft)
    return square


def draw_arrow(surface: pygame.Surface, rect: pygame.Rect, color: Color, direction: str = "up") -> None:
    """A plain arrow filling ``rect``, pointing ``up``, ``down``, ``left`` or ``right``
    (for orientation marks; no anti-aliasing, so it stays crisp on LED matrices)."""
    up = [(0.5, 0.0), (1.0, 0.5), (0.68, 0.5), (0.68, 1.0), (0.32, 1.0), (0.32, 0.5), (0.0, 0.5)]
    turn = {"up": lambda x, y: (x, y), "down": lambda x, y: (x, 1 - y),
            "left": lambda x, y: (y, x), "right": lambda x, y: (1 - y, x)}.get(direction)
    if turn is None:
        raise ValueError(f"direction must be up, down, left or right, got {direction!r}")
    w, h = max(0, rect.w - 1), max(0, rect.h - 1)
    pygame.draw.polygon(surface, color, [(rect.x + tx * w, rect.y + ty * h) for tx, ty in (turn(*p) for p in up)])
