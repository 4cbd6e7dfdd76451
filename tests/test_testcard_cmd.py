"""`panel-player testcard`: the real png output in a child process, pixels checked; live broker state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pygame
import pytest
import yaml
from fixtures_broker import Broker, free_port, wait_until
from PIL import Image

from player.config import config_from_data
from player.render.identify import PanelInfo
from player.render.testcard import BARS, BOX, RAMP_STEPS, TestCard
from player.testcard_cmd import TestCardRunner, trust_text
from player.trust import b64url, load_public_key, new_key_files

ROOT = Path(__file__).resolve().parents[1]
SIZE = (640, 360)


def write_config(tmp_path: Path, port: int, **display: Any) -> Path:
    (tmp_path / "cpu_temp").write_text("51700\n")
    data = {
        "panel": {"id": "mairie-entree", "name": "Mairie", "timezone": "Europe/Paris"},
        "display": {"output": "png", "size": list(SIZE), "path": str(tmp_path / "card.png"), **display},
        "mqtt": {"host": "127.0.0.1", "port": port},
        "state_dir": str(tmp_path / "state"),
        "sensors": {"cpu_temp": {"file": str(tmp_path / "cpu_temp")}, "light": {"type": "mcp3008"}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def start(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", GPIOZERO_PIN_FACTORY="mock")
    return subprocess.Popen([sys.executable, "-m", "player.testcard_cmd", "--config", str(config), *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def picture(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def expected_layout(size: tuple[int, int] = SIZE) -> Any:
    return TestCard(PanelInfo("x")).layout(size)


def pixels_in(img: Image.Image, rect: pygame.Rect) -> list[tuple[int, int, int]]:
    raw = img.crop((rect.x, rect.y, rect.right, rect.bottom)).tobytes()
    return list(zip(raw[0::3], raw[1::3], raw[2::3]))


def ink(img: Image.Image, rect: pygame.Rect, background: tuple[int, int, int]) -> int:
    return sum(1 for px in pixels_in(img, rect) if px != background)


def check_pattern(img: Image.Image) -> None:
    lay = expected_layout(img.size)
    for (rect, colour), (name, _) in zip(lay.bars, BARS):
        # Below the HAUT box and the top arrow: the lower half of each bar is plain colour.
        for x in (rect.x + 2, rect.centerx + 3, rect.right - 3):
            assert img.getpixel((x, rect.bottom - 3)) == colour, f"{name} bar at x={x}"
    greys = [img.getpixel((r.centerx, r.centery))[0] for r, _ in lay.ramp]
    assert greys == sorted(greys) and greys[0] == 0 and greys[-1] == 255 and len(greys) == RAMP_STEPS


def test_testcard_png_shows_bars_and_information_then_exits_0(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port())
    proc = start(config, "--seconds", "2")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert b"Test card on png" in out
    img = picture(tmp_path / "card.png")
    assert img.size == SIZE
    check_pattern(img)
    box = expected_layout().info.inflate(-8, -8)
    assert img.getpixel((box.x, box.y)) == BOX  # the information block's background
    text = ink(img, box, BOX)
    assert text > 1500, f"only {text} pixels of text in the information block"
    # Labels are drawn in LABEL yellow, values in white: both are there.
    colours = set(pixels_in(img, box))
    assert (255, 255, 255) in colours and (255, 210, 0) in colours


def test_testcard_updates_live_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port(), rotation=180)
    png = tmp_path / "card.png"
    proc = start(config)
    try:
        wait_until(png.exists, 15, "the first picture")
        lay = expected_layout()
        # Rotated 180°: the information block lands on the mirrored rectangle.
        box = lay.info.inflate(-8, -8)
        box = pygame.Rect(SIZE[0] - box.right, SIZE[1] - box.bottom, box.w, box.h)

        def block() -> bytes:
            try:
                return picture(png).crop((box.x, box.y, box.right, box.bottom)).tobytes()
            except OSError:
                return b""

        first = wait_until(block, 5, "a readable picture")
        wait_until(lambda: block() not in (b"", first), 5, "the information block to change (clock, readings)")
        img = picture(png).rotate(180)
        check_pattern(img)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    assert proc.returncode == 0


def test_invalid_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("panel: {id: p1}\ndisplay: {output: png, size: [64, 32], fps: lots}\n")
    proc = start(config, "--seconds", "1")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert b"display.fps" in err


def test_missing_display_exits_1_with_the_reason(tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port(), path=str(tmp_path / "no-such-folder" / "card.png"))
    proc = start(config, "--seconds", "1")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert b"no-such-folder does not exist" in err


def run_in_thread(runner: TestCardRunner) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(runner.run()), daemon=True)
    thread.start()
    return thread, codes


def test_broker_state_and_readings_reach_the_card(tmp_path: Path, broker: Broker) -> None:
    write_config(tmp_path, broker.port)
    cfg = config_from_data(yaml.safe_load((tmp_path / "config.yaml").read_text()))
    runner = TestCardRunner(cfg, sensor_interval=0.2, probe_interval=0.5)
    thread, codes = run_in_thread(runner)
    try:
        wait_until(lambda: runner.card is not None and runner.card.info.connected is True, 10, "broker connected")
        rows = dict(wait_until(lambda: runner.card.readings.get("cpu_temp_c") and runner.card.readings, 10,
                               "a CPU temperature reading"))
        assert rows["cpu_temp_c"] == 51.7
        assert rows["ambient"] is not None and 0.0 < rows["ambient"] < 1.0  # the simulated ADC
        assert "État MQTT" not in rows
        broker.stop()
        wait_until(lambda: runner.card.info.connected is False, 10, "broker seen unreachable")
        state = wait_until(lambda: runner.card.readings.get("État MQTT"), 10, "the broker state row")
        assert state.startswith("injoignable : ")
    finally:
        runner.stop()
        thread.join(15)
    assert codes == [0]


@pytest.mark.parametrize("seconds", [0.5])
def test_runner_stops_on_time_and_writes_the_last_picture(tmp_path: Path, seconds: float) -> None:
    write_config(tmp_path, free_port())
    cfg = config_from_data(yaml.safe_load((tmp_path / "config.yaml").read_text()))
    runner = TestCardRunner(cfg, probe_timeout=0.5)
    started = time.monotonic()
    assert runner.run(seconds) == 0
    took = time.monotonic() - started
    assert seconds <= took < seconds + 3
    assert 1 <= runner.frames <= 5  # a still card plus a new second or two, not a busy loop
    check_pattern(picture(tmp_path / "card.png"))


def test_the_card_shows_the_trusted_key_ids(tmp_path: Path) -> None:
    write_config(tmp_path, free_port())
    data = yaml.safe_load((tmp_path / "config.yaml").read_text())
    _, pub = new_key_files(tmp_path, "central-2026")
    _, other = new_key_files(tmp_path, "central-2027")
    raw, _ = load_public_key(other)
    data["trust"] = {"keys": [str(pub), {"kid": "central-2027", "key": b64url(raw)}]}
    runner = TestCardRunner(config_from_data(data), probe_timeout=0.5)
    assert runner.run(0.3) == 0
    rows = runner.card.rows(SIZE, datetime.now(timezone.utc))
    assert ("Clés", "central-2026, central-2027") in rows
    assert [label for label, _ in rows].count("Clés") == 1

    del data["trust"]
    runner = TestCardRunner(config_from_data(data), probe_timeout=0.5)
    assert runner.run(0.3) == 0
    assert ("Clés", "aucune (messages non signés acceptés)") in runner.card.rows(SIZE, datetime.now(timezone.utc))


def test_trust_text_names_what_is_accepted_unsigned(tmp_path: Path) -> None:
    _, pub = new_key_files(tmp_path, "central-2026")

    def text(require: list[str]) -> str:
        return trust_text(config_from_data({"panel": {"id": "p"}, "display": {"output": "fbdev"},
                                            "trust": {"keys": [str(pub)], "require": require}}).trust)

    assert text(["alerts", "playlists", "commands"]) == "central-2026"
    assert text(["alerts"]) == "central-2026 ; non signés acceptés : playlists, commandes"
    assert text([]) == "central-2026 ; non signés acceptés : alertes, playlists, commandes"
