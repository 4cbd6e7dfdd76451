"""Idle CPU: the player on a still text slide, next to a loop redrawing at 60 fps, same run.

Goal: ≤ 0.5 % of one core for the still picture.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from .common import cpu_seconds, report, start_player, stop, store_playlist, wait_for, write_config

BUSY_LOOP = textwrap.dedent("""
    import os, time, pygame
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    pygame.display.init()
    screen = pygame.display.set_mode((1920, 1080))
    frame = pygame.Surface((1920, 1080)).convert()
    clock = pygame.time.Clock()
    colour = 0
    print("ready", flush=True)
    while True:
        colour = (colour + 1) % 256
        frame.fill((colour, 0, 0))
        screen.blit(frame, (0, 0))
        pygame.display.flip()
        clock.tick(60)
""")


def measure(pid: int, seconds: float) -> float:
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - before) / (time.monotonic() - start)


def run(seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store_playlist(folder, {"id": "still", "version": 1, "slides": [
            {"id": "s", "type": "text", "duration": 3600, "title": "Mairie", "body": "Ouverte de 8 h 30 à 17 h"}]})
        config = write_config(folder, layout="fullscreen")
        player = start_player(config)
        try:
            wait_for(lambda: (folder / "frame.png").exists(), 30, "the first frame", player)
            time.sleep(1.5)  # let the start-up transition and the first PNG write finish
            player_pct = measure(player.pid, seconds)
        finally:
            stop(player)
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], stdout=subprocess.PIPE)
    try:
        assert busy.stdout is not None
        busy.stdout.readline()
        time.sleep(0.5)
        busy_pct = measure(busy.pid, seconds)
    finally:
        busy.kill()
        busy.wait()
    report("idle CPU, still text slide (goal ≤ 0.5 % of one core)", [
        ("measured over", f"{seconds:g} s"),
        ("panel-player, still picture", f"{player_pct:.2f} % of one core"),
        ("reference: 60 fps redraw loop", f"{busy_pct:.2f} % of one core"),
        ("goal met", "yes" if player_pct <= 0.5 else "NO"),
    ])
    return {"player_pct": player_pct, "busy_pct": busy_pct}
