"""Longest gap between frames of a real ``panel-player run`` while large pictures rotate with short slides, next to the same process with the text slides alone.

What runs, one after the other, for the same measured time after a warm-up:

1. ``panel-player run`` on the fbdev output (a plain file for ``/dev/fb0``, a fake sysfs
   tree for its geometry, XRGB8888), the ``landscape`` layout with its ticker scrolling
   (160 px/s, ``display.fps`` 30: every frame moves it), MQTT off, playing a stored
   playlist that alternates 1-second text slides with 2-second image slides: 35 MP
   pictures (7000x5000), PNG and JPEG in turn, with ``display.image_cache_mb: 4`` so that
   no picture stays decoded and every image slide is a fresh decode (the worst case).
2. Reference, same run: the same player playing the text slides alone.

The benchmark maps the framebuffer file itself and looks at the ticker's band about
every millisecond; each change is a frame handed to the display. The figure is the
longest time between two changes over the measured time, in frame periods. The
pictures' decodes (0.6 to 1 s each for 35 MP on x86, ten times that on a Pi) must
not show in it: they run in the image cache's thread while the loop draws.

Goal (``--goal stall=PERIODS``): ≤ 2 frame periods, at 1920x1080 with 35 MP pictures.
The smoke run's sizes (640x360, 4 MP) are printed, not judged.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from . import goals
from .common import report, start_player, stop, store_playlist, wait_for, write_config
from .goals import Goal
from fake_framebuffer import make_fb  # noqa: E402,I001 - tests/ is on the path once .common is imported

DRIVES = ("real `panel-player run` processes (fbdev on a fake framebuffer, landscape, ticker at 30 fps) "
          "playing short text slides between large PNG and JPEG pictures, next to the same text slides alone")
GOAL_SIZE = (1920, 1080)
GOAL_PICTURE = (7000, 5000)
FPS = 30
TICKER = ["Travaux rue de la Gare du 3 au 17 décembre : circulation alternée, stationnement interdit",
          "Collecte des encombrants jeudi 3 décembre — Inscriptions sur les listes électorales"]
FB_SENTINEL = 0xA5


def make_picture(seed: int, size: tuple[int, int], kind: str) -> bytes:
    """A poster-like picture: gradients, a few shapes and lines (realistic to decode)."""
    w, h = size
    r = Image.linear_gradient("L").resize((w, h))
    g = Image.radial_gradient("L").resize((w, h))
    b = Image.linear_gradient("L").rotate(90 * (seed % 4)).resize((w, h))
    picture = Image.merge("RGB", (r, g, b))
    del r, g, b
    draw = ImageDraw.Draw(picture)
    for i in range(12):
        x = (seed * 977 + i * 1531) % w
        draw.rectangle((x, h // 10, x + w // 12, h - h // 10), fill=((seed * 40 + i * 20) % 256, 90, 200 - i * 10))
    for i in range(0, w, max(1, w // 60)):
        draw.line((i, 0, w - i, h), fill=(255, 255, 255), width=max(1, w // 1500))
    buf = io.BytesIO()
    picture.save(buf, format=kind, **({"quality": 88} if kind == "JPEG" else {"compress_level": 6}))
    return buf.getvalue()


def _watch(device: str, size: tuple[int, int], seconds: float) -> list[float]:
    """Times at which the ticker's band of the framebuffer changed, over ``seconds``."""
    w, h = size
    top, bottom = int(h * 0.9), h  # the landscape layout's ticker zone
    with open(device, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as fb:
        rows = [top + (bottom - top) * k // 6 for k in range(1, 6)]  # across the text's height

        def band() -> bytes:
            return b"".join(fb[y * w * 4:(y + 1) * w * 4] for y in rows)

        changes: list[float] = []
        last = band()
        end = time.monotonic() + seconds
        while (now := time.monotonic()) < end:
            current = band()
            if current != last:
                changes.append(now)
                last = current
            time.sleep(0.001)
    return changes


def play(size: tuple[int, int], picture: tuple[int, int] | None, count: int, seconds: float,
         warmup: float) -> dict[str, Any]:
    """One player process; its frame times over ``seconds`` after ``warmup``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        slides: list[dict[str, Any]] = []
        assets: dict[str, bytes] = {}
        for i in range(count):
            slides.append({"id": f"t{i}", "type": "text", "duration": 1.0, "title": f"Annonce {i + 1}",
                           "body": "Mairie ouverte du lundi au vendredi",
                           "style": {"background": "#003366", "color": "#ffffff"}})
            if picture is not None:
                data = make_picture(i, picture, "PNG" if i % 2 == 0 else "JPEG")
                sha = hashlib.sha256(data).hexdigest()
                assets[sha] = data
                slides.append({"id": f"i{i}", "type": "image", "duration": 2.0, "asset": f"sha256:{sha}",
                               "fit": "contain"})
        store_playlist(folder, {"id": "stall", "version": 1, "layout": "landscape", "slides": slides,
                                "ticker": TICKER}, assets)
        del assets
        device, sysfs = make_fb(folder, *size, 32, fill=FB_SENTINEL)
        config = write_config(folder, size=size, layout="landscape", fps=FPS, extra={"display": {
            "output": "fbdev", "device": device, "image_cache_mb": 4}})
        player = start_player(config, {"PANEL_PLAYER_SYSFS_ROOT": str(sysfs)})
        try:
            with open(device, "rb", buffering=0) as f:
                wait_for(lambda: f.seek(0) == 0 and f.read(4096) != bytes([FB_SENTINEL]) * 4096, 30,
                         "the first frame", player)
            time.sleep(warmup)
            changes = _watch(device, size, seconds)
            if player.poll() is not None:
                raise RuntimeError("player exited early")
        finally:
            stop(player)
    gaps = [b - a for a, b in zip(changes, changes[1:])]
    if len(gaps) < seconds * FPS / 4:
        raise RuntimeError(f"only {len(changes)} frames seen in {seconds:g} s: the ticker does not animate")
    return {"longest_s": max(gaps), "frames": len(changes), "fps": len(changes) / seconds}


def run(size: tuple[int, int] = GOAL_SIZE, picture: tuple[int, int] = GOAL_PICTURE, count: int = 4,
        seconds: float = 20.0, warmup: float = 1.0) -> dict[str, Any]:
    period = 1.0 / FPS
    mp = picture[0] * picture[1] / 1e6
    reference = play(size, None, count, seconds, warmup)
    images = play(size, picture, count, seconds, warmup)
    at = f"{size[0]}x{size[1]}, {mp:g} MP pictures"
    goal_at = f"{GOAL_SIZE[0]}x{GOAL_SIZE[1]}, {GOAL_PICTURE[0] * GOAL_PICTURE[1] / 1e6:g} MP pictures"
    found = [Goal("stall", "longest gap between frames, pictures decoded", images["longest_s"] / period,
                  goals.value("stall"), "frame periods", measured_at=at, goal_at=goal_at)]

    def row(r: dict[str, Any]) -> str:
        return (f"{r['longest_s'] * 1000:.0f} ms = {r['longest_s'] / period:.2f} frame periods "
                f"({r['frames']} frames, {r['fps']:.1f} fps)")

    report(f"longest gap between frames, landscape {size[0]}x{size[1]}, ticker at {FPS} fps, {seconds:g} s", [
        ("playlist", f"{count} text slides of 1 s, each followed (images run) by a {mp:g} MP picture for 2 s, "
                     "PNG and JPEG in turn, none kept decoded"),
        ("pictures between the slides", row(images)),
        ("reference: text slides alone", row(reference)),
        ("goal", found[0].line()),
    ])
    return {"longest_ms": images["longest_s"] * 1000, "reference_ms": reference["longest_s"] * 1000,
            "goals": found}
