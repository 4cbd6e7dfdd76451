"""Animated frame cost: landscape 1920x1080 with a scrolling ticker, drawn and handed to fbdev.

CPU ms per frame (render + copy of the changed rows into an XRGB8888 framebuffer,
a plain file standing for /dev/fb0), as a share of a 60 fps budget (16.7 ms).
Reference, same run: one full-frame blit of 1920x1080, what a naive redraw of
every frame would cost at the least. Goal ≤ 2 ms per animated frame here.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from .common import report
from fake_framebuffer import make_fb  # noqa: E402,I001 - tests/ is on the path once .common is imported

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def run(frames: int, size: tuple[int, int] = (1920, 1080)) -> dict[str, float]:
    import pygame

    from player.content import TextSlide, Style
    from player.layout import load_layout
    from player.render.compositor import Renderer
    from player.render.outputs import init_display, open_output

    init_display("fbdev", None)
    with tempfile.TemporaryDirectory() as tmp:
        device, sysfs = make_fb(Path(tmp), *size, 32)
        out = open_output("fbdev", size=None, device=device, sysfs_root=sysfs)
        renderer = Renderer(out.size, load_layout("landscape"), tz=ZoneInfo("Europe/Paris"), fps=60,
                            transition="cut")
        renderer.set_ticker(["Collecte des encombrants jeudi 3 décembre",
                             "Inscriptions sur les listes électorales jusqu’au 31 décembre"], 0.0)
        renderer.show(TextSlide(id="s", title="Marché de Noël", body="Place de la Mairie\ndu 12 au 24 décembre",
                                style=Style((0, 51, 102), (255, 255, 255), "center")), 0.0, None)
        wall = datetime(2026, 12, 1, 10, 0, 30, tzinfo=timezone.utc)
        now = 0.0
        drawn = 0
        # Warm-up: the first frame (text fitting, strip rendering) is start-up, not steady state.
        for _ in range(5):
            now += 1 / 60
            result = renderer.render(now, wall)
            if result:
                out.show(*result)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(frames):
            now += 1 / 60
            result = renderer.render(now, wall)
            if result is not None:
                out.show(*result)
                drawn += 1
        cpu = (time.process_time() - cpu0) / max(1, frames) * 1000
        elapsed = (time.perf_counter() - wall0) / max(1, frames) * 1000
        # Reference: a full-frame blit per frame.
        src = pygame.Surface(size).convert()
        dst = pygame.Surface(size).convert()
        cpu1 = time.process_time()
        for _ in range(frames):
            dst.blit(src, (0, 0))
        ref = (time.process_time() - cpu1) / max(1, frames) * 1000
        out.close()
        renderer.close()
    budget = 1000 / 60
    report(f"animated frame cost, landscape {size[0]}x{size[1]}, ticker scrolling, fbdev XRGB8888 (goal ≤ 2 ms)", [
        ("frames measured", f"{frames} ({drawn} drawn)"),
        ("CPU per frame", f"{cpu:.3f} ms ({100 * cpu / budget:.1f} % of a 60 fps budget)"),
        ("wall time per frame", f"{elapsed:.3f} ms"),
        ("reference: one full-frame blit", f"{ref:.3f} ms"),
        ("goal met", "yes" if cpu <= 2.0 else "NO"),
    ])
    return {"cpu_ms": cpu, "ref_ms": ref}
