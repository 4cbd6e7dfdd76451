"""Idle CPU of a real ``panel-player run`` process on a still text slide (png, 1920x1080), next to a 60 fps loop.

The reference, in the same run, is a plain pygame loop redrawing the same size at 60 fps
(another process). Goal: ≤ 0.5 % of one core for the still picture (``--goal idle_cpu=…``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from . import goals
from .common import cpu_seconds, report, start_player, stop, store_playlist, wait_for, write_config
from .goals import Goal

DRIVES = "a real `panel-player run` process (png output 1920x1080, still text slide, MQTT off), then a plain pygame loop"
SIZE = (1920, 1080)

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


def run(seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store_playlist(folder, {"id": "still", "version": 1, "slides": [
            {"id": "s", "type": "text", "duration": 3600, "title": "Mairie", "body": "Ouverte de 8 h 30 à 17 h"}]})
        config = write_config(folder, size=SIZE, layout="fullscreen")
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
    at = f"{SIZE[0]}x{SIZE[1]}"
    goal = Goal("idle_cpu", "still text slide", player_pct, goals.value("idle_cpu"), "% of one core",
                measured_at=at, goal_at=at)
    report(f"idle CPU, still text slide, {at}", [
        ("measured over", f"{seconds:g} s"),
        ("panel-player, still picture", f"{player_pct:.2f} % of one core"),
        ("reference: 60 fps redraw loop", f"{busy_pct:.2f} % of one core"),
        ("goal", goal.line()),
    ])
    return {"player_pct": player_pct, "busy_pct": busy_pct, "goals": [goal]}
