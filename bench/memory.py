"""Peak RSS with a playlist of N distinct 1920x1080 images, next to one of 5, same run.

Goal: ≤ 80 MB for both: decoded images live in a cache bounded in bytes.
"""

from __future__ import annotations

import hashlib
import io
import random
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from .common import peak_rss_mb, report, start_player, stop, store_playlist, wait_for, write_config


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


def play(count: int, size: tuple[int, int], slide_s: float, rounds: int) -> float:
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
        config = write_config(folder, size=size, layout="fullscreen", extra={"display": {"transition": "cut"}})
        player = start_player(config)
        try:
            wait_for(lambda: (folder / "frame.png").exists(), 30, "the first frame", player)
            time.sleep(count * slide_s * rounds)
            if player.poll() is not None:
                raise RuntimeError("player exited early")
            return peak_rss_mb(player.pid)
        finally:
            stop(player)


def run(count: int, size: tuple[int, int], slide_s: float, rounds: int = 2) -> dict[str, float]:
    small = play(5, size, slide_s, rounds)
    large = play(count, size, slide_s, rounds)
    report(f"peak RSS, playlists of distinct {size[0]}x{size[1]} images (goal ≤ 80 MB)", [
        ("slide duration", f"{slide_s:g} s, {rounds} rounds of the playlist"),
        ("reference: 5 images", f"{small:.1f} MB"),
        (f"{count} images", f"{large:.1f} MB"),
        ("goal met", "yes" if max(small, large) <= 80 else "NO"),
    ])
    return {"rss_5": small, f"rss_{count}": large}
