"""display.output: ledmatrix without the rgbmatrix module: a configuration error, not a restart loop.

`check` (and `check --preflight`) exit 2 naming the module and how to install it; `run`
exits 2 at once outside systemd, and under systemd shows the error on the fallback
output, tells systemd it is ready, and exits 75 once the module is installed or the
config no longer needs it. The real commands run in subprocesses.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fixtures_broker import wait_until
from test_boot_errors import notify_socket  # noqa: F401  (the fixture: systemd's notify socket)
from PIL import Image

from player.boot_errors import BAND, EXIT_RESTART, config_problems
from player.render.outputs.ledmatrix import missing_driver

ROOT = Path(__file__).resolve().parents[1]
FAKES = Path(__file__).resolve().parent / "fakes"
SCRIPT = Path(sys.executable).parent / "panel-player"
if SCRIPT.exists():  # the installed console script, as a crew types it
    COMMAND = [str(SCRIPT)]
    PYTHON = SCRIPT.read_text(encoding="utf-8").splitlines()[0].removeprefix("#!").strip()
else:
    COMMAND = [sys.executable, "-m", "player.cli"]
    PYTHON = sys.executable
MISSING = f"the Python module 'rgbmatrix' of rpi-rgb-led-matrix is not installed for {PYTHON}"
INSTALL = f"{PYTHON} -m pip install git+https://github.com/hzeller/rpi-rgb-led-matrix"

installed = importlib.util.find_spec("rgbmatrix") is not None
needs_missing = pytest.mark.skipif(installed, reason="rgbmatrix is installed on this machine")


def led_config(tmp_path: Path, **extra: object) -> Path:
    data: dict[str, object] = {
        "panel": {"id": "gare-led"},
        "display": {"output": "ledmatrix", "led": {"rows": 32, "cols": 64, "chain_length": 2}},
        "mqtt": {"enabled": False},
        "state_dir": str(tmp_path / "state"),
    }
    data.update(extra)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def player_env(**extra: str) -> dict[str, str]:
    """The environment of a player started by hand: no systemd variables, no fake driver."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("INVOCATION_ID", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "PYTHONPATH")}
    env["SDL_VIDEODRIVER"] = "dummy"
    env.update(extra)
    return env


def panel_player(*args: str, env: dict[str, str] | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], cwd=ROOT, env=env or player_env(), capture_output=True,
                          text=True, timeout=timeout)


# -- the message ------------------------------------------------------------------------


def test_the_message_names_the_module_the_python_and_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rgbmatrix", None)  # "import rgbmatrix" fails
    msg = missing_driver()
    assert msg is not None
    first, *rest = msg.splitlines()
    assert first.startswith("display.output: ledmatrix: ")  # names its key, like every config error
    assert f"the Python module 'rgbmatrix' of rpi-rgb-led-matrix is not installed for {sys.executable}" in first
    assert "not on PyPI" in msg and "Raspberry Pi" in msg
    assert f"  sudo {sys.executable} -m pip install git+https://github.com/hzeller/rpi-rgb-led-matrix" in rest
    assert "fbdev, sdl or png" in msg


def test_no_message_when_the_module_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.delitem(sys.modules, "rgbmatrix", raising=False)
    assert missing_driver() is None


def test_a_module_that_does_not_load_is_named_as_broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The pure-Python part copied without its compiled core: found, but the import fails.
    package = tmp_path / "rgbmatrix"
    package.mkdir()
    (package / "__init__.py").write_text("from .core import RGBMatrix\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "rgbmatrix", raising=False)
    msg = missing_driver()
    assert msg is not None
    assert f"is installed for {sys.executable} but does not load" in msg and "rgbmatrix.core" in msg
    assert "pip install git+https://github.com/hzeller/rpi-rgb-led-matrix" in msg


def test_config_errors_and_the_missing_driver_are_listed_together(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rgbmatrix", None)
    path = led_config(tmp_path, mqtt={"port": "abc"})
    cfg, problems = config_problems(path)
    assert cfg is None and len(problems) == 2
    assert problems[0].startswith("mqtt.port") and "rgbmatrix" in problems[1]
    path = led_config(tmp_path)
    cfg, problems = config_problems(path)
    assert cfg is not None and cfg.display.output == "ledmatrix" and len(problems) == 1


# -- check --------------------------------------------------------------------------------


@needs_missing
def test_check_exits_2_with_the_message(tmp_path: Path) -> None:
    result = panel_player("check", "--config", str(led_config(tmp_path)))
    assert result.returncode == 2, result.stderr
    assert f"{tmp_path / 'config.yaml'}: 1 error" in result.stderr
    assert MISSING in result.stderr and INSTALL in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_check_passes_once_the_module_is_there(tmp_path: Path) -> None:
    """The same config is valid where the driver imports (here the test stand-in)."""
    result = panel_player("check", "--config", str(led_config(tmp_path)), env=player_env(PYTHONPATH=str(FAKES)))
    assert result.returncode == 0, result.stderr
    assert "valid (panel gare-led, output ledmatrix" in result.stdout


@needs_missing
def test_preflight_fails_the_display_line_with_the_install_steps(tmp_path: Path) -> None:
    result = panel_player("check", "--config", str(led_config(tmp_path)), "--preflight", "--timeout", "1")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    display = next(i for i, line in enumerate(lines) if "display" in line.split()[:3])
    assert "ledmatrix (64x32 panels, chain 2, parallel 1: 128x32)" in lines[display]
    assert MISSING in lines[display]
    fix = lines[display + 1:display + 5]
    assert any(INSTALL in line for line in fix), fix
    assert all(line.startswith(" ") for line in fix)  # indented under the display line
    assert "Traceback" not in result.stderr


# -- run ----------------------------------------------------------------------------------


@needs_missing
def test_run_outside_systemd_exits_2_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    result = panel_player("run", "--config", str(led_config(tmp_path)), timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    assert f"{tmp_path / 'config.yaml'}: cannot run on this machine" in result.stderr
    assert MISSING in result.stderr and INSTALL in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 20  # no display opened, no broker, no retry
    assert not (tmp_path / "state").exists()  # stopped before the player started


class Service:
    """`panel-player run` started as systemd would start it (INVOCATION_ID, NOTIFY_SOCKET, watchdog)."""

    def __init__(self, config: Path, tmp_path: Path, sock: socket.socket, notify: str, **env: str) -> None:
        self.sock = sock
        self.png = tmp_path / "errors.png"
        self.seen: list[str] = []
        self.proc = subprocess.Popen(
            [*COMMAND, "run", "--config", str(config)], cwd=ROOT,
            env=player_env(INVOCATION_ID="0123456789abcdef", NOTIFY_SOCKET=notify, WATCHDOG_USEC="300000",
                           PANEL_PLAYER_ERRORS_PNG=str(self.png), PANEL_PLAYER_ERRORS_FB=str(tmp_path / "no-fb0"),
                           **env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def receive(self) -> list[str]:
        try:
            self.seen.extend(self.sock.recv(4096).decode().splitlines())
        except TimeoutError:
            pass
        return self.seen

    def exited(self) -> bool:
        # Read the socket while waiting, as systemd does: a full socket would block the player's sends.
        self.receive()
        return self.proc.poll() is not None

    def wait_ready(self) -> None:
        wait_until(lambda: "READY=1" in self.seen or self.exited(), 30, "READY=1")
        assert self.proc.poll() is None, self.proc.communicate()[1]

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        wait_until(self.exited, 20, "the player to stop")
        _, err = self.proc.communicate(timeout=5)
        return self.proc.returncode, err


@needs_missing
def test_run_under_systemd_shows_the_error_and_stays_up(tmp_path: Path,
                                                        notify_socket: tuple[socket.socket, str]) -> None:
    service = Service(led_config(tmp_path), tmp_path, *notify_socket)
    try:
        service.wait_ready()
        status = [line for line in service.seen if line.startswith("STATUS=")]
        assert status and status[0].startswith("STATUS=Configuration invalide: 1 error(s) on screen: "
                                               "display.output: ledmatrix: the Python module 'rgbmatrix'")
        # The error is on the fallback PNG (no LED driver, no framebuffer), in the error screen's colours.
        wait_until(service.png.exists, 15, "the error screen")
        with Image.open(service.png) as img:
            assert img.convert("RGB").getpixel((5, 5)) == BAND
        # It stays up: the watchdog keeps being fed, no exit for systemd to restart.
        pings = service.seen.count("WATCHDOG=1")
        wait_until(lambda: service.receive().count("WATCHDOG=1") >= pings + 5, 15, "watchdog pings")
        assert service.proc.poll() is None
    finally:
        code, err = service.stop()
    assert code == 0, err
    assert MISSING in err and "Traceback" not in err
    wait_until(lambda: "STOPPING=1" in service.receive(), 5, "STOPPING=1")


@needs_missing
def test_run_under_systemd_exits_75_once_the_module_is_installed(tmp_path: Path,
                                                                 notify_socket: tuple[socket.socket, str]) -> None:
    site = tmp_path / "site-packages"  # on the player's path, empty at start
    site.mkdir()
    service = Service(led_config(tmp_path), tmp_path, *notify_socket, PYTHONPATH=str(site))
    try:
        service.wait_ready()
        assert service.proc.poll() is None
        shutil.copytree(FAKES / "rgbmatrix", site / "rgbmatrix")  # "sudo … pip install …"
        wait_until(service.exited, 20, "the player to notice the driver")
    finally:
        code, err = service.stop()
    assert code == EXIT_RESTART, err
    assert "can be used now: restarting the player" in err and "Traceback" not in err


@needs_missing
def test_run_under_systemd_exits_75_once_the_config_no_longer_needs_it(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    config = led_config(tmp_path)
    service = Service(config, tmp_path, *notify_socket)
    try:
        service.wait_ready()
        led_config(tmp_path, display={"output": "png", "size": [128, 32], "path": str(tmp_path / "frame.png")})
        wait_until(service.exited, 20, "the player to notice the fixed config")
    finally:
        code, err = service.stop()
    assert code == EXIT_RESTART, err
