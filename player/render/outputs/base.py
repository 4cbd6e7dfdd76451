"""The interface every display output implements, and helpers they share.

The main loop renders a frame (a ``pygame.Surface`` of ``output.size``) and hands it
over with the rectangles that changed::

    with open_output("png", size=(1920, 1080), path=Path("/tmp/frame.png")) as out:
        shown_at = out.show(frame, [pygame.Rect(0, 1000, 1920, 80)])
        ...
        deadline = out.next_deadline()      # wake up then and call out.flush(now)

Outputs are owned by the main loop's thread; only their own worker threads (png)
run beside it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from types import TracebackType

import pygame

from player.errors import OutputError

Size = tuple[int, int]


class Output(ABC):
    """A place frames are shown: a framebuffer, a window, a PNG file, an LED matrix.

    ``healthy`` is False while the device is unusable; ``status`` says why in words
    an installer understands (it goes into the heartbeat).
    """

    name: str = "output"

    def __init__(self, size: Size) -> None:
        self.size: Size = (int(size[0]), int(size[1]))
        self.healthy: bool = True
        self.status: str = "ok"
        self.frames_shown: int = 0
        self.powered: bool = True  # False while the screen sleeps (set_power)
        self._black: pygame.Surface | None = None
        self._closed = False

    @abstractmethod
    def show(self, frame: pygame.Surface, dirty: Sequence[pygame.Rect] | None) -> float:
        """Hand ``frame`` to the device; ``dirty`` lists what changed (None: everything).

        Returns ``time.time()`` at hand-off, the moment the picture is considered
        displayed.  An empty ``dirty`` list means nothing changed.
        """

    def direct_surface(self) -> pygame.Surface | None:
        """A surface of the output's size whose pixels are the screen's own, to draw a
        small area straight onto the screen instead of into a frame copied afterwards;
        None (this default) when the output cannot offer that now.

        It holds what the last frames handed over left on screen. Only valid until the
        next call of any other method; what is drawn there is shown by :meth:`show_direct`.
        """
        return None

    def show_direct(self, rects: Sequence[pygame.Rect]) -> float:
        """Show ``rects``, drawn into :meth:`direct_surface`; returns ``time.time()`` at hand-off."""
        raise OutputError(f"the {self.name} output offers no surface to draw on")

    def set_power(self, on: bool) -> str:
        """Switch the picture off for the sleep hours, or back on; returns how, in words.

        This default shows a black picture, the best an output without a power switch
        can do; outputs that can blank their screen (fbdev, the LED matrix) do that.
        After ``set_power(True)`` the caller hands over a whole frame.
        """
        self.powered = on
        if on:
            self._black = None
            return "picture shown"
        self._black = pygame.Surface(self.size)  # kept alive for outputs that copy it later
        self.show(self._black, None)
        return "black picture (this output cannot switch its screen off)"

    def set_brightness(self, percent: float) -> bool:
        """Apply ``percent`` (0-100) on the device; False means "dim in software"."""
        return False

    def next_deadline(self) -> float | None:
        """Monotonic time at which the loop must call :meth:`flush`, or None."""
        return None

    def flush(self, now: float) -> None:
        """Do the work that was due at :meth:`next_deadline` (``now`` is monotonic)."""

    def wait_idle(self, timeout: float) -> bool:
        """Block until every frame handed over is on the device; False on time-out."""
        return True

    def close(self) -> None:
        """Release the device.  Safe to call twice."""
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Output:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.size[0]}x{self.size[1]} {self.status!r}>"

    # -- helpers for subclasses -------------------------------------------------

    def _check_frame(self, frame: pygame.Surface) -> None:
        if self._closed:
            raise OutputError(f"{self.name} output is closed")
        if frame.get_size() != self.size:
            raise OutputError(
                f"{self.name} output: frame is {frame.get_width()}x{frame.get_height()}, "
                f"the device needs {self.size[0]}x{self.size[1]}"
            )

    def _shown(self) -> float:
        self.frames_shown += 1
        return time.time()


def clip_rects(dirty: Sequence[pygame.Rect] | None, size: Size) -> list[pygame.Rect]:
    """The dirty rectangles clipped to the frame, empty ones dropped (None: the frame)."""
    bounds = pygame.Rect((0, 0), size)
    if dirty is None:
        return [bounds]
    out: list[pygame.Rect] = []
    for r in dirty:
        c = bounds.clip(pygame.Rect(r))
        if c.width > 0 and c.height > 0:
            out.append(c)
    return out


def row_spans(dirty: Sequence[pygame.Rect] | None, size: Size) -> list[tuple[int, int]]:
    """Merged ``[top, bottom)`` row ranges covered by ``dirty``, sorted.

    >>> row_spans([pygame.Rect(0, 5, 2, 3), pygame.Rect(4, 7, 1, 4)], (10, 20))
    [(5, 11)]
    """
    spans = sorted((r.top, r.bottom) for r in clip_rects(dirty, size))
    merged: list[tuple[int, int]] = []
    for top, bottom in spans:
        if merged and top <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], bottom))
        else:
            merged.append((top, bottom))
    return merged


def dim_level(factor: float) -> int:
    """The 0-255 multiplier of software dimming by ``factor`` (0..1, 1 = as drawn; NaN: 1)."""
    return round(255 * min(1.0, max(0.0, factor))) if factor == factor else 255


def dim(surface: pygame.Surface, level: int, area: pygame.Rect | None = None) -> None:
    """Multiply the colours of ``area`` (all of ``surface`` if None) by ``level`` / 255."""
    surface.fill((level, level, level), area, special_flags=pygame.BLEND_MULT)


def copy_colour(frame: pygame.Surface, area: pygame.Rect, dst: pygame.Surface, at: tuple[int, int]) -> None:
    """Copy ``area`` of ``frame`` to ``dst`` at ``at``: its colour only, a per-pixel alpha
    neither copied nor blended onto what ``dst`` held."""
    if frame.get_flags() & pygame.SRCALPHA:
        dst.fill((0, 0, 0), pygame.Rect(at, area.size))
        dst.blit(frame, at, area, special_flags=pygame.BLEND_RGB_MAX)
    else:
        dst.blit(frame, at, area)
