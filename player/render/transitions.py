"""Transitions between two full frames: ``cut`` and ``fade``.

A transition only blits: it allocates nothing per frame. The caller owns the
three surfaces (old frame, new frame, output), all of the same size::

    fade = make_transition("fade", 0.6)
    fade.blend(old, new, progress=0.5, out=frame)   # halfway: a 50 % mix
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pygame

TRANSITIONS = ("cut", "fade")


class Transition(Protocol):
    """Draws the frame at ``progress`` (0 = old, 1 = new) into ``out`` within ``area``."""

    @property
    def name(self) -> str: ...

    @property
    def duration(self) -> float:
        """Seconds; 0 means the new frame shows at once."""
        ...

    def blend(self, old: pygame.Surface, new: pygame.Surface, progress: float, out: pygame.Surface,
              area: pygame.Rect | None = None) -> None: ...


@dataclass(frozen=True)
class Cut:
    """The new frame, at once."""

    name: str = "cut"
    duration: float = 0.0

    def blend(self, old: pygame.Surface, new: pygame.Surface, progress: float, out: pygame.Surface,
              area: pygame.Rect | None = None) -> None:
        if out is not new:
            out.blit(new, area.topleft if area else (0, 0), area)


@dataclass(frozen=True)
class Fade:
    """A cross-fade: ``old`` drawn, then ``new`` over it with alpha growing linearly."""

    duration: float = 0.6
    name: str = "fade"

    def blend(self, old: pygame.Surface, new: pygame.Surface, progress: float, out: pygame.Surface,
              area: pygame.Rect | None = None) -> None:
        dest = area.topleft if area else (0, 0)
        alpha = round(255 * min(1.0, max(0.0, progress)))
        if alpha >= 255:
            out.blit(new, dest, area)
            return
        if out is not old:
            out.blit(old, dest, area)
        if alpha <= 0:
            return
        previous = new.get_alpha()
        new.set_alpha(alpha)  # surface alpha: one blend pass in C, no temporary surface
        try:
            out.blit(new, dest, area)
        finally:
            new.set_alpha(previous)


def make_transition(name: str, duration: float) -> Transition:
    """``"cut"`` or ``"fade"``; a ``fade`` of 0 seconds is a cut. Raises ``ValueError`` otherwise."""
    if name == "cut" or (name == "fade" and duration <= 0):
        return Cut()
    if name == "fade":
        return Fade(float(duration))
    raise ValueError(f"unknown transition {name!r}; known: {', '.join(TRANSITIONS)}")
