"""The least a ticker at 60 fps costs on this machine, for ``ticker_process`` to show beside the player.

A process that does only what a frame of the ticker needs at the very least: it wakes 60
times a second (``poll`` with a time-out, as the player's inbox does) and draws the
ticker's new rows straight into the mapped framebuffer with the player's own
:meth:`~player.render.ticker.Ticker.draw` (the same text, band and speed as the player
in the benchmark). No MQTT, no loop around it, no clock, no alerts. What a player costs
beyond this figure is the price of being a player; the figure itself is the floor no
60 fps program in Python can go under here.

Run by the benchmark, not by hand::

    python -m bench.ticker_floor DEVICE SYSFS_ROOT     # until SIGTERM
"""

from __future__ import annotations

import math
import os
import select
import signal
import sys
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import pygame  # noqa: E402

from player.layout import load_layout  # noqa: E402
from player.render.fonts import default_font, open_face  # noqa: E402
from player.render.outputs.fbdev import open_fbdev  # noqa: E402
from player.render.text import TextPainter  # noqa: E402
from player.render.ticker import Ticker  # noqa: E402

FPS = 60


def main(device: str, sysfs: str) -> int:
    from pathlib import Path

    from bench.ticker_process import TICKER

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    out = open_fbdev(device, Path(sysfs))
    layout = load_layout("landscape")
    zone = layout.zone("ticker")
    assert zone is not None
    w, h = out.size
    rect = pygame.Rect(zone.pixels(w, h))
    pad = round(zone.padding * min(rect.w, rect.h))
    band = pygame.Rect(rect.x, rect.y + pad, rect.w, rect.h - 2 * pad)
    painter = TextPainter(open_face(default_font((w, h), layout.font)), antialias=layout.antialias)
    start = time.monotonic()
    ticker = Ticker(painter, TICKER, band.size, zone.color, zone.background or layout.background, zone.speed, start)
    frame = pygame.Surface((w, h))
    frame.fill(layout.background)
    ticker.draw(frame, band, start)
    out.show(frame, None)  # the band's background, once
    target = out.direct_surface()
    assert target is not None, "the floor needs a 32-bit framebuffer"
    ticker.match_format(target)
    wake = select.poll()
    r, _ = os.pipe()
    wake.register(r, select.POLLIN)
    due = start
    while not stop:
        due += 1 / FPS
        left = due - time.monotonic()
        if left > 0:
            wake.poll(math.ceil(left * 1000))
        ticker.draw(target, band, time.monotonic(), over=True)
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
