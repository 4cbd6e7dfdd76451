"""Start-up to first frame: process start until the first picture is written.

Reference, same run: the time to start Python and import pygame alone. Goal ≤ 1.5 s.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import report, start_player, stop, wait_for, write_config


def run(repeats: int) -> dict[str, float]:
    firsts = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_config(folder, layout="landscape", size=(1920, 1080))
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
    report("start-up to first frame, landscape 1920x1080, bundled content (goal ≤ 1.5 s)", [
        ("runs", str(repeats)),
        ("first frame written", f"best {best:.2f} s, worst {worst:.2f} s"),
        ("reference: python -c 'import pygame'", f"best {min(imports):.2f} s"),
        ("goal met", "yes" if worst <= 1.5 else "NO"),
    ])
    return {"first_frame_s": worst, "import_s": min(imports)}
