"""systemd's notify protocol from the real player: READY after the first frame, the watchdog pace.

The test plays systemd: it binds the ``NOTIFY_SOCKET`` datagram socket, sets
``WATCHDOG_USEC`` to 1 s (so the player must ping about every 0.5 s), and
records every datagram with the time it arrived.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fixtures_broker import Broker
from fixtures_player import PREFIX, ROOT, PanelProcess

WATCHDOG_USEC = 1_000_000
PERIOD = 0.5  # systemd's advice, and the player's: ping at half the watchdog period


@dataclass(frozen=True)
class Datagram:
    at: float  # monotonic time of arrival
    lines: tuple[str, ...]
    png_existed: bool  # whether the panel's PNG file was there when it arrived


class FakeSystemd:
    """The receiving end of ``NOTIFY_SOCKET``, read by a thread into :attr:`got`."""

    def __init__(self, folder: Path, png: Path | None = None) -> None:
        # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer.
        self.folder = folder if len(str(folder)) < 80 else Path(tempfile.mkdtemp(prefix="ntf"))
        self.path = str(self.folder / "notify.sock")
        self.png = png
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.got: list[Datagram] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            at = time.monotonic()
            existed = self.png is not None and self.png.exists()
            with self._cond:
                self.got.append(Datagram(at, tuple(data.decode().split("\n")), existed))
                self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.got)

    def since(self, after: int = 0) -> list[Datagram]:
        with self._cond:
            return list(self.got[after:])

    def wait_for(self, line: str, after: int = 0, timeout: float = 5.0) -> Datagram:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for d in self.got[after:]:
                    if line in d.lines:
                        return d
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {line} within {timeout} s; got {[d.lines for d in self.got[after:]]}")
                self._cond.wait(left)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()
        os.unlink(self.path)


def pings(datagrams: list[Datagram]) -> list[float]:
    return [d.at for d in datagrams if "WATCHDOG=1" in d.lines]


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[Callable[..., FakeSystemd]]:
    made: list[FakeSystemd] = []

    def make(png: Path | None = None) -> FakeSystemd:
        s = FakeSystemd(tmp_path, png)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def start_under_systemd(p: PanelProcess, notify: FakeSystemd) -> None:
    """Start the player process as a ``Type=notify`` unit with ``WatchdogSec=1`` would."""
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy", GPIOZERO_PIN_FACTORY="mock",
               NOTIFY_SOCKET=notify.path, WATCHDOG_USEC=str(WATCHDOG_USEC))
    env.pop("WATCHDOG_PID", None)
    with open(p.log, "ab") as log:
        p.proc = subprocess.Popen([sys.executable, "-m", "player.cli", "run", "--config", str(p.config)],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def process_state(pid: int) -> str:
    """The kernel's one-letter state of ``pid`` (``T`` once stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


@pytest.fixture
def unit(panel: Callable[..., PanelProcess], systemd: Callable[..., FakeSystemd]) -> tuple[PanelProcess, FakeSystemd]:
    # A full-HD panel: its first PNG takes long enough to encode and write that
    # a READY sent before the file is on disk would be caught.
    p = panel(size=(1920, 1080), start=False)
    notify = systemd(p.png)
    start_under_systemd(p, notify)
    return p, notify


def test_ready_only_once_the_first_frame_exists(unit: tuple[PanelProcess, FakeSystemd]) -> None:
    p, notify = unit
    ready = notify.wait_for("READY=1", timeout=20)
    first = notify.since()[0]
    assert first is ready, f"something came before READY=1: {first.lines}"
    assert ready.png_existed, "READY=1 arrived before the first frame was in the PNG file"


def test_watchdog_at_pace_with_a_status_line_and_stopping_on_sigterm(unit: tuple[PanelProcess, FakeSystemd]) -> None:
    p, notify = unit
    ready = notify.wait_for("READY=1", timeout=20)
    assert notify.since()[0] is ready  # no ping before READY
    status = [line for d in notify.since() for line in d.lines if line.startswith("STATUS=")]
    assert status and status[0] == "STATUS=showing demo-mairie", status  # what the panel shows

    # The pace: about every 0.5 s, counted over 3 s, never near the 1 s limit.
    notify.wait_for("WATCHDOG=1", timeout=2)
    mark = notify.mark()
    window_start = time.monotonic()
    wait_until(lambda: time.monotonic() - window_start >= 3.0, 5, "3 s")
    times = pings(notify.since(mark))
    assert 5 <= len(times) <= 7, f"{len(times)} pings in 3 s"
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(PERIOD * 0.8 <= g <= WATCHDOG_USEC / 1e6 * 0.8 for g in gaps), gaps
    assert p.proc is not None and p.proc.poll() is None

    mark = notify.mark()
    p.signal(signal.SIGTERM)
    notify.wait_for("STOPPING=1", after=mark, timeout=10)
    assert p.proc.wait(10) == 0


def test_no_watchdog_while_the_process_is_stopped_and_again_after(unit: tuple[PanelProcess, FakeSystemd]) -> None:
    p, notify = unit
    assert p.proc is not None
    notify.wait_for("READY=1", timeout=20)
    notify.wait_for("WATCHDOG=1", timeout=2)

    p.signal(signal.SIGSTOP)
    wait_until(lambda: process_state(p.proc.pid) == "T", 2, "the process to stop")  # type: ignore[union-attr]
    time.sleep(0.05)  # a datagram sent just before the stop is delivered by now
    mark = notify.mark()
    stopped_at = time.monotonic()
    wait_until(lambda: time.monotonic() - stopped_at >= 2.0, 4, "2 s")
    assert notify.since(mark) == [], "a datagram came from a stopped process"

    resumed_at = time.monotonic()
    p.signal(signal.SIGCONT)
    ping = notify.wait_for("WATCHDOG=1", after=mark, timeout=2)
    assert ping.at - resumed_at < PERIOD + 0.3
    wait_until(lambda: len(pings(notify.since(mark))) >= 3, 3, "the pace to resume")
    assert p.stop() == 0


def test_a_stuck_main_loop_stops_the_pings_while_every_other_thread_runs(
        broker: Broker, tmp_path: Path, systemd: Callable[..., FakeSystemd],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop itself is stuck (a handler blocks), the MQTT, sensor and PNG threads are not."""
    from player.app import Call, Player
    from player.config import config_from_data

    png = tmp_path / "frame.png"
    notify = systemd(png)
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    cfg = config_from_data({
        "panel": {"id": "w1", "timezone": "Europe/Paris"},
        "display": {"output": "png", "size": [160, 90], "path": str(png), "layout": "fullscreen"},
        "mqtt": {"host": broker.host, "port": broker.port, "prefix": PREFIX},
        "state_dir": str(tmp_path / "state"),
        "heartbeat": {"interval": 1},
        "sensors": {"interval": 0.1, "cpu_temp": "none"},
    })
    player = Player(cfg)
    release = threading.Event()
    span: list[float] = []

    def hang() -> None:
        span.append(time.monotonic())
        release.wait(10)
        span.append(time.monotonic())

    def turn_until(condition: Callable[[], Any], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            player.step()

    timer = threading.Timer(2.0, release.set)
    try:
        player.start()
        notify.wait_for("READY=1", timeout=5)
        turn_until(lambda: len(pings(notify.since())) >= 3 and player.ops.connected, 5, "pings and MQTT")

        player.inbox.put(Call(hang))
        timer.start()
        turn_until(lambda: len(span) == 2, 5, "the stuck handler to return")
        turn_until(lambda: time.monotonic() - span[1] >= 1.2, 3, "1.2 s more of the loop")
    finally:
        release.set()
        timer.cancel()
        player.stop()
        turn_until(lambda: player.exit_code is not None, 5, "the stop")
        player.close()

    times = pings(notify.since())
    before = [t for t in times if t < span[0]]
    during = [t for t in times if span[0] + 0.05 < t < span[1]]
    after = [t for t in times if t >= span[1]]
    assert before and during == [], f"pings while the loop was stuck: {[round(t - span[0], 2) for t in during]}"
    assert after and after[0] - span[1] < 0.2, "the first pass after the hang pings at once"
    assert len(after) >= 3
    assert "STOPPING=1" in notify.since()[-1].lines
