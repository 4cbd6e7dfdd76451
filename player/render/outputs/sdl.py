"""The SDL output: a window on a desktop (x11/wayland), the whole screen under kmsdrm.

Only the dirty rectangles are pushed to the screen.  While the window is open the loop
is asked (through :meth:`SdlOutput.next_deadline`) to wake a few times a second so that
window events are pumped: a desktop would otherwise call the window unresponsive.
All pending events are consumed there.  Closing the window sets :attr:`SdlOutput.closed_by_user`; the player decides what to do.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import pygame

from player.errors import OutputError
from player.render.outputs.base import Output, Size, clip_rects

EVENT_POLL_S = 0.25
_FULLSCREEN_DRIVERS = {"kmsdrm", "kmsdrm_legacy", "rpi", "directfb"}


class SdlOutput(Output):
    """Shows frames in the pygame display window.  Build it with :func:`open_sdl`."""

    name = "sdl"

    def __init__(self, window: pygame.Surface, driver: str) -> None:
        super().__init__(window.get_size())
        self.window = window
        self.driver = driver
        self.closed_by_user = False
        self._next_poll = time.monotonic() + EVENT_POLL_S
        self.status = f"ok: {driver} window {self.size[0]}x{self.size[1]}"

    def show(self, frame: pygame.Surface, dirty: Sequence[pygame.Rect] | None) -> float:
        self._check_frame(frame)
        rects = clip_rects(dirty, self.size)
        if frame is not self.window:
            for r in rects:
                self.window.blit(frame, r, r)
        if rects:
            pygame.display.update(rects)
        self._pump()
        return self._shown()

    def direct_surface(self) -> pygame.Surface | None:
        return None if self.closed or not self.powered else self.window

    def show_direct(self, rects: Sequence[pygame.Rect]) -> float:
        if self.closed:
            raise OutputError("sdl output is closed")
        pygame.display.update(rects)
        self._pump()
        return self._shown()

    def next_deadline(self) -> float | None:
        return None if self.closed or self.closed_by_user else self._next_poll

    def flush(self, now: float) -> None:
        if now >= self._next_poll:
            self._pump()

    def _pump(self) -> None:
        self._next_poll = time.monotonic() + EVENT_POLL_S
        if self.closed:
            return
        # Drain everything: a full SDL queue would drop the QUIT we are waiting for.
        for event in pygame.event.get():
            if event.type == pygame.WINDOWEXPOSED:
                pygame.display.update()  # the compositor lost our pixels: push them all
            elif event.type in (pygame.QUIT, pygame.WINDOWCLOSE):
                self.closed_by_user = True
                self.healthy = False
                self.status = "window closed by the user"

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        pygame.display.quit()
        self.healthy = False
        if not self.closed_by_user:
            self.status = "closed"


def open_sdl(size: Size | None, title: str = "panel-player") -> SdlOutput:
    """Open the window (``size`` None: the whole screen).  Needs :func:`init_display`."""
    if not pygame.display.get_init():
        raise OutputError("output sdl: call init_display('sdl', size) first")
    driver = pygame.display.get_driver()
    if driver == "x11":
        # X11 has SDL's native window framebuffer (shared-memory images of the dirty
        # rectangles); left to itself SDL may present through OpenGL instead, which with
        # a software GL (no GPU driver: a kiosk PC, Xvfb) costs twenty times the CPU.
        os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")
    flags = 0
    if size is None or driver in _FULLSCREEN_DRIVERS:
        flags |= pygame.FULLSCREEN
    try:
        window = pygame.display.set_mode(size or (0, 0), flags)
    except pygame.error as e:
        raise OutputError(f"output sdl ({driver}): cannot open a window: {e}") from e
    pygame.display.set_caption(title)
    if driver in _FULLSCREEN_DRIVERS:
        pygame.mouse.set_visible(False)
    return SdlOutput(window, driver)
