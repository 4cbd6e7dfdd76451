"""systemd's notify protocol (``sd_notify``) without external libraries.

``Type=notify`` units get ``$NOTIFY_SOCKET``: an AF_UNIX datagram socket, a
path or an abstract name written ``@name``. Outside systemd it is unset and
every call is a no-op. A failing send is logged, never raised: the panel must
keep showing its content even if systemd's socket is gone.

The watchdog ping must come from the main loop itself, only after it made
progress: a helper thread would keep pinging while the loop hangs, and
systemd would never restart it. :class:`WatchdogPacer` tells the loop when
the next ping is due, so the loop puts that time among its wait deadlines.

Example::

    notifier = Notifier()
    pacer = WatchdogPacer(watchdog_interval())
    notifier.ready("showing hiver-2026")           # after the first frame
    while running:
        msg = inbox.get(timeout=max(0, min(next_frame, pacer.next_due(now)) - now))
        ...                                        # handle, draw
        pacer.tick(time.monotonic(), notifier)     # pings only when due
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(path: str) -> str | bytes:
    return "\0" + path[1:] if path.startswith("@") else path


class Notifier:
    """Sends state lines to systemd; ``enabled`` is False outside a notify unit."""

    def __init__(self, socket_path: str | None = None, *, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.socket_path = socket_path if socket_path is not None else env.get("NOTIFY_SOCKET") or None
        self._sock: socket.socket | None = None
        self.sent = 0

    @property
    def enabled(self) -> bool:
        return bool(self.socket_path)

    def send(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; True when it was sent."""
        if not self.socket_path:
            return False
        data = "\n".join(lines).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(data, _address(self.socket_path))
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.socket_path, exc)
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (after the first frame is on the display)."""
        return self.send("READY=1", *(["STATUS=" + _one_line(status)] if status else []))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """A one-line ``STATUS=`` shown by ``systemctl status``."""
        return self.send("STATUS=" + _one_line(text))

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """systemd's watchdog period in seconds (``WATCHDOG_USEC``), ``None`` when disabled.

    ``WATCHDOG_PID``, when set, must be this process.
    """
    env = os.environ if env is None else env
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None


class WatchdogPacer:
    """Schedules ``WATCHDOG=1`` at ``fraction`` of the watchdog period (systemd advises half).

    :meth:`next_due` is a deadline for the loop's wait; :meth:`tick`, called by
    the loop after each pass, pings when the deadline has come. A loop stuck
    in one pass never reaches ``tick``, so the pings stop and systemd restarts it.
    """

    def __init__(self, interval_s: float | None, fraction: float = 0.5) -> None:
        if not 0 < fraction < 1:
            raise ValueError("fraction must be between 0 and 1")
        self.period = interval_s * fraction if interval_s else None
        self._due: float | None = None

    @property
    def enabled(self) -> bool:
        return self.period is not None

    def next_due(self, now: float) -> float:
        """Monotonic time of the next ping (``inf`` without a watchdog)."""
        if self.period is None:
            return math.inf
        if self._due is None:
            self._due = now
        return self._due

    def tick(self, now: float, notifier: Notifier) -> bool:
        """Ping if due; True when a ping was sent."""
        if self.period is None or now < self.next_due(now):
            return False
        notifier.watchdog()
        self._due = now + self.period
        return True
