"""Peak RSS of a real ``panel-player run`` process showing the largest JPEG and PNG it accepts, next to the same process showing a picture of the screen's size.

What runs, one process per picture (fbdev output on a fake framebuffer, XRGB8888, the
``fullscreen`` layout: the picture is decoded at the whole screen's size, the largest
there is), MQTT off, the default image cache:

1. reference: a JPEG of the screen's size (1920x1080);
2. a PNG of 8000x5000, 40 MP: the most the player accepts (``MAX_PIXELS``);
3. a JPEG of 8000x5000.

Each plays a stored playlist of one picture twice, ``contain`` then ``cover`` (cover
keeps more of the source: its decode is the larger), and the benchmark watches the
framebuffer until both have been shown; then it reads the kernel's high-water mark
of the process's resident size (``VmHWM`` in ``/proc/PID/status``).

Goal (``--goal image_memory=MB``): ≤ 120 MB for the PNG and the JPEG at 1920x1080 (a
512 MB Zero 2 W keeps room for the system). The smoke run's sizes (640x360, smaller
pictures) are printed, not judged.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from . import goals
from .common import peak_rss_mb, report, start_player, stop, store_playlist, wait_for, write_config
from .goals import Goal
from fake_framebuffer import make_fb  # noqa: E402,I001 - tests/ is on the path once .common is imported

DRIVES = ("real `panel-player run` processes (fbdev on a fake framebuffer, fullscreen 1920x1080), one per "
          "picture: the largest accepted PNG and JPEG (40 MP), next to a JPEG of the screen's size")
GOAL_SIZE = (1920, 1080)
GOAL_PICTURE = (8000, 5000)
RED = (230, 20, 20)


def make_picture(size: tuple[int, int], kind: str) -> bytes:
    """Gradients and lines inside a red border (how the framebuffer tells contain from cover)."""
    w, h = size
    r = Image.linear_gradient("L").resize((w, h))
    g = Image.radial_gradient("L").resize((w, h))
    picture = Image.merge("RGB", (g, r, r.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    del r, g
    draw = ImageDraw.Draw(picture)
    for i in range(0, w, max(1, w // 80)):
        draw.line((i, 0, w - i, h), fill=(255, 255, 255), width=max(1, w // 2000))
    border = max(2, w // 40)
    draw.rectangle((0, 0, w - 1, h - 1), outline=RED, width=border)
    buf = io.BytesIO()
    picture.save(buf, format=kind, **({"quality": 90} if kind == "JPEG" else {}))
    return buf.getvalue()


def _pixel(fb: Any, size: tuple[int, int], x: int, y: int) -> tuple[int, int, int]:
    fb.seek((y * size[0] + x) * 4)
    b, g, r, _ = fb.read(4)
    return r, g, b


def _red(p: tuple[int, int, int]) -> bool:
    return p[0] > 180 and p[1] < 80 and p[2] < 80


def peak(size: tuple[int, int], picture: tuple[int, int], kind: str) -> float:
    """VmHWM, in MB, of a player that showed ``picture`` with contain, then with cover."""
    w, h = size
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = make_picture(picture, kind)
        sha = hashlib.sha256(data).hexdigest()
        slides = [{"id": f"{fit}", "type": "image", "duration": 2.0, "asset": f"sha256:{sha}", "fit": fit}
                  for fit in ("contain", "cover")]
        store_playlist(folder, {"id": "image-memory", "version": 1, "layout": "fullscreen", "slides": slides},
                       {sha: data})
        del data
        device, sysfs = make_fb(folder, w, h, 32)
        config = write_config(folder, size=size, layout="fullscreen", extra={"display": {
            "output": "fbdev", "device": device, "transition": "cut"}})
        player = start_player(config, {"PANEL_PLAYER_SYSFS_ROOT": str(sysfs)})
        # contain leaves bars at the sides (the picture is wider than the screen is tall);
        # cover fills the screen, its red border at the left edge.
        scale = min(w / picture[0], h / picture[1])
        bar = (w - round(picture[0] * scale)) // 2
        inside = bar + max(1, round(picture[0] // 40 * scale) // 2)
        try:
            with open(device, "rb", buffering=0) as fb:
                if bar > 1:
                    wait_for(lambda: _red(_pixel(fb, size, inside, h // 2)) and not _red(_pixel(fb, size, 0, h // 2)),
                             120, "the picture shown with contain", player)
                wait_for(lambda: _red(_pixel(fb, size, 1, h // 2)), 120, "the picture shown with cover", player)
            time.sleep(0.5)
            if player.poll() is not None:
                raise RuntimeError("player exited early")
            return peak_rss_mb(player.pid)
        finally:
            stop(player)


def run(size: tuple[int, int] = GOAL_SIZE, picture: tuple[int, int] = GOAL_PICTURE) -> dict[str, Any]:
    mp = picture[0] * picture[1] / 1e6
    reference = peak(size, size, "JPEG")
    png = peak(size, picture, "PNG")
    jpeg = peak(size, picture, "JPEG")
    at = f"{size[0]}x{size[1]}, {mp:g} MP"
    goal_at = f"{GOAL_SIZE[0]}x{GOAL_SIZE[1]}, {GOAL_PICTURE[0] * GOAL_PICTURE[1] / 1e6:g} MP"
    found = [Goal("image_memory", f"{kind} {picture[0]}x{picture[1]}", figure, goals.value("image_memory"), "MB",
                  measured_at=at, goal_at=goal_at) for kind, figure in (("PNG", png), ("JPEG", jpeg))]
    report(f"peak RSS of the player showing one picture with contain then cover, fullscreen {size[0]}x{size[1]}", [
        (f"PNG {picture[0]}x{picture[1]} ({mp:g} MP)", f"{png:.1f} MB"),
        (f"JPEG {picture[0]}x{picture[1]} ({mp:g} MP)", f"{jpeg:.1f} MB"),
        (f"reference: JPEG {size[0]}x{size[1]}", f"{reference:.1f} MB"),
        *((f"goal, {g.what.split()[0]}", g.line()) for g in found),
    ])
    return {"png_mb": png, "jpeg_mb": jpeg, "reference_mb": reference, "goals": found}
