"""sd_notify over a real AF_UNIX datagram socket, and the watchdog pace of a main loop."""

from __future__ import annotations

import os
import queue
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from player.hw.notify import Notifier, WatchdogPacer, watchdog_interval

WATCHDOG_USEC = 400_000  # a 0.4 s watchdog: pings every 0.2 s
PERIOD = 0.2


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    # AF_UNIX paths are limited to ~108 bytes; pytest's tmp_path can be longer.
    folder = tmp_path if len(str(tmp_path)) < 80 else Path(tempfile.mkdtemp(prefix="ntf"))
    path = str(folder / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    yield sock, path
    sock.close()
    os.unlink(path)


def receive(sock: socket.socket, timeout: float) -> tuple[str, float] | None:
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except (socket.timeout, BlockingIOError):
        return None
    return data.decode(), time.monotonic()


def test_messages_reach_the_socket(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    with Notifier(env={"NOTIFY_SOCKET": path}) as notifier:
        assert notifier.enabled
        assert notifier.ready("showing hiver-2026\nslide 3")
        assert notifier.status("alert crue-1 displayed")
        assert notifier.watchdog() and notifier.stopping()
    got = [receive(sock, 2) for _ in range(4)]
    assert [g[0] for g in got if g] == ["READY=1\nSTATUS=showing hiver-2026 slide 3",
                                        "STATUS=alert crue-1 displayed", "WATCHDOG=1", "STOPPING=1"]


def test_abstract_socket_names() -> None:
    name = f"panel-player-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        assert Notifier("@" + name).ready()
        got = receive(sock, 2)
        assert got is not None and got[0] == "READY=1"
    finally:
        sock.close()


def test_outside_systemd_and_with_a_vanished_socket(tmp_path: Path) -> None:
    assert not Notifier(env={}).enabled and Notifier(env={}).ready() is False
    gone = Notifier(str(tmp_path / "no-such.sock"))
    assert gone.watchdog() is False  # logged, never raised


def test_watchdog_interval_from_the_environment() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "15000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "15000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "15000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None and watchdog_interval({}) is None
    pacer = WatchdogPacer(None)
    assert not pacer.enabled and pacer.next_due(5.0) == float("inf")


class TinyLoop:
    """A main loop in miniature: waits on its inbox until the next deadline, handles, pings."""

    def __init__(self, socket_path: str) -> None:
        self.inbox: queue.Queue[str] = queue.Queue()
        self.notifier = Notifier(env={"NOTIFY_SOCKET": socket_path})
        self.pacer = WatchdogPacer(watchdog_interval({"WATCHDOG_USEC": str(WATCHDOG_USEC)}))
        self.hung = threading.Event()
        self.unhang = threading.Event()
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        self.notifier.ready("first frame")
        next_frame = time.monotonic() + 3600  # a still picture: no frame deadline soon
        while not self.stop:
            now = time.monotonic()
            try:
                msg = self.inbox.get(timeout=max(0.0, min(next_frame, self.pacer.next_due(now)) - now))
            except queue.Empty:
                msg = None
            if msg == "hang":  # a handler that blocks the loop
                self.hung.set()
                self.unhang.wait()
            self.pacer.tick(time.monotonic(), self.notifier)
        self.notifier.close()


def test_watchdog_pings_at_pace_and_stop_while_the_loop_is_stuck(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    loop = TinyLoop(path)
    loop.thread.start()
    try:
        first = receive(sock, 2)
        assert first is not None and first[0] == "READY=1\nSTATUS=first frame"
        pings = [receive(sock, 2) for _ in range(6)]
        assert all(p is not None and p[0] == "WATCHDOG=1" for p in pings)
        times = [p[1] for p in pings if p]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert all(gap > PERIOD * 0.8 for gap in gaps), gaps  # never faster than the pace
        assert sum(gaps) / len(gaps) < PERIOD * 1.6, gaps  # and not slower either
        assert max(gaps) < WATCHDOG_USEC / 1e6, gaps  # always inside the watchdog period

        loop.inbox.put("hang")
        assert loop.hung.wait(2)
        while receive(sock, 0) is not None:  # a ping sent just before the hang
            pass
        assert receive(sock, 5 * PERIOD) is None  # stuck: no ping at all, systemd would restart it

        loop.unhang.set()
        resumed = receive(sock, 2)
        assert resumed is not None and resumed[0] == "WATCHDOG=1"
    finally:
        loop.stop = True
        loop.unhang.set()
        loop.inbox.put("wake")
        loop.thread.join(2)
