"""Start-up of a real ``panel-player run`` process: process start until its first picture is written (png).

Landscape 1920x1080, bundled content, MQTT off. Reference, same run: the time to start
Python and import pygame alone. Goal: worst run ≤ 1.5 s (``--goal startup=…``).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import goals
from .common import report, start_player, stop, wait_for, write_config
from .goals import Goal

DRIVES = "real `panel-player run` processes (png output, landscape 1920x1080, MQTT off), then `python -c 'import pygame'`"
SIZE = (1920, 1080)


def run(repeats: int) -> dict[str, Any]:
    firsts = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_config(folder, layout="landscape", size=SIZE)
        for _ in range(repeats):
            frame = folder / "frame.png"
            frame.unlink(missing_ok=True)
            start = time.monotonic()
            player = start_player(config)
            try:
                wait_for(frame.exists, 30, "the first frame", player)
                firsts.append(time.monotonic() - start)
            finally:
                stop(player)
    imports = []
    for _ in range(repeats):
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", "import pygame"], check=True, capture_output=True)
        imports.append(time.monotonic() - start)
    best, worst = min(firsts), max(firsts)
    at = f"landscape {SIZE[0]}x{SIZE[1]}"
    goal = Goal("startup", f"worst of {repeats}", worst, goals.value("startup"), "s", measured_at=at, goal_at=at)
    report(f"start-up to first frame, {at}, bundled content", [
        ("runs", str(repeats)),
        ("first frame written", f"best {best:.2f} s, worst {worst:.2f} s"),
        ("reference: python -c 'import pygame'", f"best {min(imports):.2f} s"),
        ("goal (worst run)", goal.line()),
    ])
    return {"first_frame_s": worst, "import_s": min(imports), "goals": [goal]}
