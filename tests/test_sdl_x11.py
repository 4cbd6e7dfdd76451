"""The sdl output on a real X server (Xvfb): what the window shows is read back from the
server's screen, and SDL presents through its native X11 framebuffer (shared-memory
images of the changed rectangles) rather than through a software OpenGL, which cost a
1920x1080 player 82 % of a core at 60 fps against 4 % (``python -m bench ticker_process``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fixtures_x11 import XServer, have_xvfb

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not have_xvfb(), reason="Xvfb is not installed (scripts/bootstrap.sh --tests "
                                "installs xvfb)")

CHILD = textwrap.dedent("""
    import os, sys, time, pygame
    from player.render.outputs import init_display, open_output
    init_display("sdl", (64, 32))
    out = open_output("sdl", size=(64, 32))
    frame = pygame.Surface((64, 32)).convert()
    frame.fill((10, 20, 30))
    frame.fill((200, 40, 0), pygame.Rect(8, 8, 16, 8))
    print(pygame.display.get_driver(), os.environ.get("SDL_FRAMEBUFFER_ACCELERATION"), flush=True)
    import select
    while not select.select([sys.stdin], [], [], 0.05)[0]:  # as the player's loop: shown, events pumped
        out.show(frame, None)
        out.flush(time.monotonic())
    out.close()
""")


def _child(x: XServer, **extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "SDL_FRAMEBUFFER_ACCELERATION"}
    env.update(DISPLAY=x.display, SDL_VIDEODRIVER="x11", PYTHONPATH=str(ROOT), PYGAME_HIDE_SUPPORT_PROMPT="1",
               **extra)
    return subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _window(x: XServer, size: tuple[int, int] = (64, 32), seconds: float = 5) -> tuple[int, int]:
    """The top-left corner of the frame on the screen (its background colour's first pixel;
    SDL centres the window), once the frame is there."""
    w, h = x.size
    deadline = time.monotonic() + seconds
    while True:
        rows = x.rows(0, h)
        at = rows.find(bytes((30, 20, 10, 0)))  # BGRX of the frame's background (10, 20, 30)
        if at >= 0:
            y, col = divmod(at // 4, w)
            if x.pixel(col + 12, y + 10) == (200, 40, 0):
                return col, y
        assert time.monotonic() < deadline, "the frame never reached the X server's screen"
        time.sleep(0.02)


def test_the_window_shows_the_frame_through_the_native_x11_framebuffer(tmp_path: Path) -> None:
    with XServer(tmp_path, (320, 200)) as x:
        child = _child(x)
        try:
            line = child.stdout.readline().split() if child.stdout else []
            assert line == ["x11", "0"], (line, child.stderr.read() if child.stderr else "")
            left, top = _window(x)
            assert x.pixel(left + 40, top + 20) == (10, 20, 30)
            assert x.pixel(left + 63, top + 31) == (10, 20, 30) and x.pixel(left + 64, top + 32) == (0, 0, 0)
        finally:
            child.communicate("\n", timeout=10)
        assert child.returncode == 0


def test_a_setting_given_by_the_user_is_kept(tmp_path: Path) -> None:
    with XServer(tmp_path, (320, 200)) as x:
        child = _child(x, SDL_FRAMEBUFFER_ACCELERATION="software")
        try:
            line = child.stdout.readline().split() if child.stdout else []
            assert line == ["x11", "software"], line
            _window(x)
        finally:
            child.communicate("\n", timeout=10)
