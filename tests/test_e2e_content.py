"""The player on its own content: the demo, bad images, schedules (issue: core player)."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from fixtures_player import rgb, text_playlist
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_demo_command_from_the_checkout_writes_the_demo_picture(tmp_path):
    png = tmp_path / "demo.png"
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", PANEL_VENV=str(Path(sys.executable).parents[1]))
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    result = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh"), "--seconds", "3", "--png", str(png)],
                            env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"written to {png}" in result.stdout
    with Image.open(png) as img:
        img = img.convert("RGB")
        assert img.size == (1280, 720)
        # landscape layout: the header band is #003366, the ticker band #ffcc00 (see layouts/landscape.yaml).
        assert img.getpixel((640, 3)) == (0, 0x33, 0x66) or img.getpixel((1270, 3)) == (0, 0x33, 0x66)
        ticker = [img.getpixel((x, 716)) for x in range(0, 1280, 16)]
        assert ticker.count((0xff, 0xcc, 0x00)) > len(ticker) // 2


def seed(panel, playlist, assets=None):
    """Store a playlist as the last applied one, with its asset files, before the player starts."""
    from player.store import StateStore

    store = StateStore(panel.folder / "state")
    for sha, data in (assets or {}).items():
        # Written directly: this stands for an asset that rotted on the SD card after it was verified.
        (store.assets.root / sha).write_bytes(data)
    store.save_playlist(json.dumps(playlist).encode(), {"source": "panel"})


def test_a_corrupt_image_is_skipped_and_reported_and_the_other_slides_play(panel):
    p = panel(start=False)
    junk = b"\x89PNG\r\n\x1a\n" + b"not really an image" * 10
    sha = hashlib.sha256(junk).hexdigest()
    playlist = {"id": "mixte", "version": 1, "layout": "fullscreen", "slides": [
        {"id": "abimee", "type": "image", "duration": 1, "asset": f"sha256:{sha}"},
        {"id": "texte", "type": "text", "duration": 1, "title": "Ça marche",
         "style": {"background": "#204060"}},
    ]}
    seed(p, playlist, {sha: junk})
    p.start()
    p.wait_colour(rgb("#204060"), timeout=5)
    event = p.wait_event("error", where=lambda e: "abimee" in e["reason"], timeout=10)
    assert sha in event["reason"] or "image" in event["reason"]
    hb = json.loads(p.sub.wait_for(f"{p.topic}/heartbeat", timeout=10).payload)
    assert hb["slide"] in ("texte", None)


def test_a_slide_outside_its_schedule_is_skipped_and_none_eligible_shows_the_idle_screen(panel):
    p = panel(start=False)
    playlist = {"id": "horaires", "version": 1, "layout": "fullscreen", "slides": [
        {"id": "passee", "type": "text", "duration": 1, "title": "Hier",
         "style": {"background": "#aa0000"},
         "schedule": {"start": "2020-01-01T00:00:00+01:00", "end": "2020-01-02T00:00:00+01:00"}},
    ]}
    seed(p, playlist)
    p.start()
    # The idle screen (clock on the layout background, black for fullscreen), never the red slide.
    p.wait_colour((0, 0, 0), at=(1, 1), timeout=5)
    picture = p.picture()
    reds = sum(1 for x in range(0, 160, 4) for y in range(0, 90, 4) if picture.getpixel((x, y)) == (0xaa, 0, 0))
    assert reds == 0


def test_text_slides_rotate_by_duration(panel):
    p = panel(start=False)
    playlist = text_playlist("tour", 1, "#111111")
    playlist["slides"] = [
        {"id": "a", "type": "text", "duration": 0.5, "title": "A", "style": {"background": "#c00000"}},
        {"id": "b", "type": "text", "duration": 0.5, "title": "B", "style": {"background": "#00c000"}},
    ]
    seed(p, playlist)
    p.start()
    for _ in range(2):
        p.wait_colour(rgb("#c00000"), timeout=3)
        p.wait_colour(rgb("#00c000"), timeout=3)
