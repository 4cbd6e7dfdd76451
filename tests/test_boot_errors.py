"""Configuration errors on the panel's own screen: png and fbdev outputs, paging, systemd notify, config watch."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pygame
import pytest
import yaml
from fake_framebuffer import make_fb
from fixtures_broker import wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from player.boot_errors import (BAND, BULLET, EXIT_RESTART, PAGE_SECONDS, PNG_SIZE, ErrorsView, OutputHint,
                                output_hint_from_file, show_config_errors, show_rejected_boot_file)
from player.render.outputs import init_display

ROOT = Path(__file__).resolve().parents[1]
ERRORS = ['mqtt.port: expected an integer, got "abc"', 'panel.id: "Mairie" does not match [a-z0-9][a-z0-9-]{0,62}']
WALL = datetime(2026, 11, 25, 17, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def display() -> None:
    init_display("png", (64, 64))


def picture(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def white_pixels(img: Image.Image, box: tuple[int, int, int, int]) -> int:
    raw = img.crop(box).tobytes()
    return sum(1 for i in range(0, len(raw), 3) if raw[i] > 200 and raw[i + 1] > 200 and raw[i + 2] > 200)


def bad_config(tmp_path: Path, size: tuple[int, int] = (480, 270)) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "panel": {"id": "Mairie"},
        "display": {"output": "png", "size": list(size), "path": str(tmp_path / "screen.png")},
        "mqtt": {"port": "abc"},
        "state_dir": str(tmp_path / "state"),
    }), encoding="utf-8")
    return path


def good_config(path: Path, tmp_path: Path) -> None:
    path.write_text(yaml.safe_dump({
        "panel": {"id": "mairie"},
        "display": {"output": "png", "size": [480, 270], "path": str(tmp_path / "screen.png")},
        "mqtt": {"enabled": False}, "state_dir": str(tmp_path / "state"),
    }), encoding="utf-8")


def test_errors_shown_on_the_configs_png_until_sigterm(tmp_path: Path) -> None:
    config = bad_config(tmp_path)
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    proc = subprocess.Popen([sys.executable, "-m", "player.boot_errors", "--config", str(config),
                             "--fb-device", str(tmp_path / "no-fb0"), "--png", str(tmp_path / "fallback.png")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        png = tmp_path / "screen.png"  # the config's own output, though the config is invalid
        wait_until(png.exists, 15, "the error screen")
        img = picture(png)
        assert img.size == (480, 270)
        view = ErrorsView(ERRORS)
        band, body, foot = view.areas(img.size)
        assert img.getpixel((3, 3)) == BAND and img.getpixel((band.right - 3, band.bottom - 3)) == BAND
        assert white_pixels(img, (band.x, band.y, band.right, band.bottom)) > 300  # "Configuration invalide"
        assert white_pixels(img, (body.x, body.y, body.right, body.bottom)) > 500  # the errors
        assert not (tmp_path / "fallback.png").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()
    assert b"showing 2 error(s) on png" in err


def test_no_usable_hint_falls_back_to_a_png(tmp_path: Path) -> None:
    png = tmp_path / "errors.png"
    code = show_config_errors(ERRORS, hint=None, fb_device=str(tmp_path / "fb0"), png_path=png, seconds=0.3)
    assert code == 0
    img = picture(png)
    assert img.size == PNG_SIZE
    assert img.getpixel((5, 5)) == BAND


def test_fbdev_is_used_when_present(tmp_path: Path) -> None:
    device, sysfs = make_fb(tmp_path, 160, 96, 16)
    code = show_config_errors(ERRORS, fb_device=str(device), sysfs_root=sysfs, png_path=tmp_path / "x.png",
                              seconds=0.3)
    assert code == 0
    data = Path(device).read_bytes()
    r, g, b = BAND
    red565 = ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)
    assert data[(2 * 160 + 2) * 2:(2 * 160 + 2) * 2 + 2] == red565.to_bytes(2, "little")
    assert not (tmp_path / "x.png").exists()


def test_rotation_from_the_hint(tmp_path: Path) -> None:
    hint = OutputHint("png", size=(200, 120), path=tmp_path / "r.png", rotation=180)
    show_config_errors(ERRORS, hint=hint, fb_device=str(tmp_path / "fb0"), seconds=0.3)
    img = picture(tmp_path / "r.png")
    assert img.getpixel((5, 3)) != BAND and img.getpixel((5, 116)) == BAND  # upside down: the band at the bottom


def test_few_errors_are_large_many_are_paged() -> None:
    size = (480, 270)
    few = ErrorsView(ERRORS[:1])
    many = ErrorsView([f"layouts.zone{i}.rect: expected 4 numbers between 0 and 1, got {i}" for i in range(60)])
    px_few, pages_few = few.plan(size)
    px_many, pages_many = many.plan(size)
    assert len(pages_few) == 1 and px_few > px_many >= 9
    assert len(pages_many) > 2
    assert sum(first for page in pages_many for first, _ in page) == 60  # every error, once
    screen = pygame.Surface(size)
    many.draw(screen, 100.0, WALL)
    first = pygame.image.tobytes(screen, "RGB")
    assert many.next_frame(100.0) == pytest.approx(100.0 + PAGE_SECONDS, abs=1e-3)
    many.draw(screen, 100.0 + PAGE_SECONDS, WALL)
    assert pygame.image.tobytes(screen, "RGB") != first
    many.draw(screen, 100.0 + PAGE_SECONDS * len(pages_many), WALL)  # back to the first page
    assert pygame.image.tobytes(screen, "RGB") == first
    few.draw(screen, 0.0, WALL)
    assert few.next_frame(1.0) is None  # one page: a still picture


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(errors=st.lists(st.text(min_size=0, max_size=300), min_size=0, max_size=30),
       size=st.sampled_from([(64, 32), (128, 64), (480, 270), (270, 480)]))
def test_any_errors_fit_inside_the_screen(errors: list[str], size: tuple[int, int]) -> None:
    view = ErrorsView(errors, led=size[1] < 100)
    band, body, foot = view.areas(size)
    px, pages = view.plan(size)
    indent = view.painter.face.width(BULLET, px)
    per_page = max(len(p) for p in pages)
    assert per_page * view.painter.advance(px) - (view.painter.advance(px)
                                                  - view.painter.face.line_height(px)) <= max(body.h, view.painter.face.line_height(px))
    for page in pages:
        for _, line in page:
            assert view.painter.face.width(line, px) <= max(body.w - indent, view.painter.face.width(line[:1], px))
    screen = pygame.Surface(size)
    view.draw(screen, 0.0, WALL)


def test_a_fixed_config_ends_the_screen_with_75(tmp_path: Path) -> None:
    config = bad_config(tmp_path)
    png = tmp_path / "screen.png"
    steps: list[str] = []

    def crew() -> None:
        wait_until(png.exists, 10, "the error screen")
        before = picture(png).tobytes()
        config.write_text(config.read_text().replace("port: abc", "port: 99999"))  # still wrong, differently
        wait_until(lambda: picture(png).tobytes() != before, 10, "the new errors on screen")
        steps.append("updated")
        good_config(config, tmp_path)

    helper = threading.Thread(target=crew, daemon=True)
    helper.start()
    started = time.monotonic()
    code = show_config_errors(["x"], hint=output_hint_from_file(config), watch=config, watch_every=0.05,
                              fb_device=str(tmp_path / "fb0"), seconds=20)
    helper.join(5)
    assert steps == ["updated"]
    assert code == EXIT_RESTART
    assert time.monotonic() - started < 15


def test_rejected_boot_file_shows_then_lets_the_player_go_on(tmp_path: Path) -> None:
    hint = OutputHint("png", size=(320, 180), path=tmp_path / "p.png")
    assert show_rejected_boot_file(ERRORS, hint=hint, seconds=0.3, fb_device=str(tmp_path / "fb0")) is True
    assert picture(tmp_path / "p.png").getpixel((3, 3)) == BAND


def test_output_hint_from_a_valid_config(tmp_path: Path) -> None:
    from player.boot_errors import output_hint_from_config
    from player.config import config_from_data

    cfg = config_from_data({"panel": {"id": "p"}, "display": {"output": "ledmatrix", "rotation": 90,
                                                              "led": {"rows": 16, "chain_length": 2}}})
    hint = output_hint_from_config(cfg)
    assert (hint.output, hint.rotation, hint.led["rows"], hint.led["chain_length"]) == ("ledmatrix", 90, 16, 2)
    from player.boot_errors import _led_options

    assert _led_options(hint.led).size == (128, 16)


def test_output_hint_from_an_invalid_config(tmp_path: Path) -> None:
    config = bad_config(tmp_path, (640, 360))
    hint = output_hint_from_file(config)
    assert hint == OutputHint("png", size=(640, 360), path=tmp_path / "screen.png")
    (tmp_path / "c2.yaml").write_text("display: {output: fbdev, device: /dev/fb1, rotation: 90, size: [1, 2]}\n")
    assert output_hint_from_file(tmp_path / "c2.yaml") == OutputHint("fbdev", "/dev/fb1", None, None, 90)
    (tmp_path / "c3.yaml").write_text("display: {output: hologram}\n")
    assert output_hint_from_file(tmp_path / "c3.yaml") is None
    (tmp_path / "c4.yaml").write_text("display: [unclosed\n")
    assert output_hint_from_file(tmp_path / "c4.yaml") is None
    assert output_hint_from_file(tmp_path / "missing.yaml") is None


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    folder = tempfile.mkdtemp(prefix="pp-", dir="/tmp")  # AF_UNIX paths are short
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    try:
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(folder)


def test_tells_systemd_it_is_ready_and_feeds_the_watchdog(tmp_path: Path,
                                                          notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    config = bad_config(tmp_path)
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", NOTIFY_SOCKET=path, WATCHDOG_USEC="300000",
               INVOCATION_ID="0123456789abcdef")
    proc = subprocess.Popen([sys.executable, "-m", "player.boot_errors", "--config", str(config),
                             "--fb-device", str(tmp_path / "no-fb0")],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: list[str] = []

    def receive() -> bool:
        try:
            seen.extend(sock.recv(4096).decode().splitlines())
        except TimeoutError:
            pass
        return seen.count("WATCHDOG=1") >= 3

    try:
        wait_until(receive, 15, "READY=1 and three watchdog pings")
        assert "READY=1" in seen and seen.index("READY=1") < seen.index("WATCHDOG=1")
        assert any(line.startswith("STATUS=Configuration invalide: 2 error(s)") for line in seen)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    assert proc.returncode == 0
    wait_until(lambda: receive() or "STOPPING=1" in seen, 5, "STOPPING=1")
