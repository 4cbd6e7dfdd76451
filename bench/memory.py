"""Peak RSS of real ``panel-player run`` processes playing N distinct images, next to 5, same run; png and fbdev.

Goal: ≤ 80 MB for both outputs, 50 pictures at 1920x1080 (``--goal memory=…``); at other
sizes (the smoke run's 640x360) the figures are printed but not judged. Each figure is the kernel's high-water mark
(VmHWM) of a real player process (``python -m player.cli run``) started on a stored
playlist of generated JPEGs, with the config's default transition (a fade, shortened
to fit the short slides of a benchmark). Two outputs:

* ``png``: the picture written to a file (headless panels, CI);
* ``fbdev``: the production path, a 32-bit framebuffer. A plain file stands for
  ``/dev/fb0`` and a fake sysfs tree gives its geometry (``PANEL_PLAYER_SYSFS_ROOT``).
  The mapped file's pages count in the RSS, as a real framebuffer's do.

The whole-run peak is the figure for the goal; it is also split into start-up (the
first second) and playing (from then on, after resetting the high-water mark), to tell
which phase to look at.
"""

from __future__ import annotations

import hashlib
import io
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from . import goals
from .common import peak_rss_mb, report, start_player, stop, store_playlist, wait_for, write_config
from .goals import Goal
from fake_framebuffer import make_fb  # noqa: E402,I001 - tests/ is on the path once .common is imported

DRIVES = ("real `panel-player run` processes (png output, then fbdev on a fake framebuffer) playing stored "
          "playlists of generated pictures, MQTT off")
GOAL_SIZE = (1920, 1080)
GOAL_COUNT = 50
STARTUP_S = 1.0  # after the first frame: what belongs to start-up
FB_SENTINEL = 0xA5
ZERO_2_W_CACHE_MB = 17  # default_cache_bytes on a Zero 2 W at 1080p: two frames (16.6 MB), rounded up


def make_image(seed: int, size: tuple[int, int]) -> bytes:
    rnd = random.Random(seed)
    img = Image.new("RGB", size, tuple(rnd.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = rnd.randrange(size[0]), rnd.randrange(size[1])
        draw.rectangle([x, y, x + rnd.randrange(50, 600), y + rnd.randrange(50, 400)],
                       fill=tuple(rnd.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


@dataclass(frozen=True)
class Peaks:
    whole: float  # MB, the whole run
    startup: float | None  # MB, up to STARTUP_S after the first frame
    playing: float | None  # MB, after that (None when the mark cannot be reset)


def _fb_drawn(device: str) -> bool:
    with open(device, "rb") as f:
        head = f.read(4096)
    return any(b != FB_SENTINEL for b in head)


def _reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux ≥ 4.0); False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def play(count: int, size: tuple[int, int], slide_s: float, rounds: int, output: str = "png") -> Peaks:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        assets = {}
        slides = []
        for i in range(count):
            data = make_image(i, size)
            sha = hashlib.sha256(data).hexdigest()
            assets[sha] = data
            slides.append({"id": f"img{i}", "type": "image", "duration": slide_s, "asset": f"sha256:{sha}"})
        store_playlist(folder, {"id": f"images-{count}", "version": 1, "slides": slides}, assets)
        del assets
        # The cache a 512 MB Zero 2 W gives itself (two frames: a thirty-second of its
        # memory is less): left to its default the player sizes it from this machine's
        # memory (256 MB here).
        display: dict[str, object] = {"transition": "fade", "transition_s": min(0.6, slide_s / 2),
                                      "image_cache_mb": ZERO_2_W_CACHE_MB}
        env: dict[str, str] = {}
        if output == "fbdev":
            device, sysfs = make_fb(folder, *size, 32, fill=FB_SENTINEL)
            display.update(output="fbdev", device=device)
            env["PANEL_PLAYER_SYSFS_ROOT"] = str(sysfs)
            drawn = lambda: _fb_drawn(device)  # noqa: E731
        else:
            drawn = (folder / "frame.png").exists
        config = write_config(folder, size=size, layout="fullscreen", extra={"display": display})
        player = start_player(config, env)
        try:
            wait_for(drawn, 30, "the first frame", player)
            time.sleep(STARTUP_S)
            startup = peak_rss_mb(player.pid)
            split = _reset_peak(player.pid)
            time.sleep(count * slide_s * rounds)
            if player.poll() is not None:
                raise RuntimeError("player exited early")
            playing = peak_rss_mb(player.pid)
            whole = max(startup, playing) if split else playing
            return Peaks(whole, startup if split else None, playing if split else None)
        finally:
            stop(player)


def _describe(p: Peaks) -> str:
    if p.startup is None or p.playing is None:
        return f"{p.whole:.1f} MB"
    return f"{p.whole:.1f} MB  (start-up {p.startup:.1f}, playing {p.playing:.1f})"


def run(count: int, size: tuple[int, int], slide_s: float, rounds: int = 2,
        outputs: tuple[str, ...] = ("png", "fbdev")) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    found: list[Goal] = []
    at = f"{size[0]}x{size[1]}, {count} pictures"
    goal_at = f"{GOAL_SIZE[0]}x{GOAL_SIZE[1]}, {GOAL_COUNT} pictures"
    rows: list[tuple[str, str]] = [
        ("slides", f"{slide_s:g} s, fade {min(0.6, slide_s / 2):g} s, {rounds} rounds of the playlist")]
    for output in outputs:
        small = play(5, size, slide_s, rounds, output)
        large = play(count, size, slide_s, rounds, output)
        rows += [(f"{output}: 5 images", _describe(small)), (f"{output}: {count} images", _describe(large))]
        figures[f"{output}_rss_5"] = small.whole
        figures[f"{output}_rss_{count}"] = large.whole
        found.append(Goal("memory", f"{output}, peak of 5 and {count} pictures", max(small.whole, large.whole),
                          goals.value("memory"), "MB", measured_at=at, goal_at=goal_at))
    rows += [(f"goal, {g.what.split(',')[0]}", g.line()) for g in found]
    report(f"peak RSS, playlists of distinct {size[0]}x{size[1]} images", rows)
    figures["goals"] = found
    return figures
