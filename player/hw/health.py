"""Health figures for the heartbeat; each is ``None`` when this machine cannot tell.

Example::

    health = Health(state_dir="/var/lib/panel-player")
    health.rss_mb(), health.disk_free_mb(), health.uptime_s(), clock_synced()
"""

from __future__ import annotations

from typing import Any

import ctypes
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from player.hw.config import FIRMWARE_THROTTLE, THERMAL_ZONE0
from player.hw.sensors import FileThrottle

STA_UNSYNC = 0x0040
TIME_ERROR = 5
# systemd's timedatectl also calls a clock unsynchronised when the kernel's
# maximum error estimate reaches 16 s.
MAX_ERROR_US = 16_000_000


def rss_mb() -> float | None:
    """Resident memory of this process in MiB (``/proc/self/statm``), ``None`` elsewhere."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def disk_free_mb(path: str | os.PathLike[str]) -> int | None:
    """Space available to this user on ``path``'s file system, in MiB."""
    try:
        return int(shutil.disk_usage(path).free // 2**20)
    except OSError:
        return None


def cpu_temp(path: str = THERMAL_ZONE0) -> float | None:
    """Degrees Celsius from a millidegree sensor file."""
    try:
        value = int(Path(path).read_text().strip()) / 1000
    except (OSError, ValueError):
        return None
    return round(value, 1) if -60 <= value <= 200 else None


def throttled(path: str = FIRMWARE_THROTTLE) -> dict[str, bool] | None:
    """The Pi firmware's under-voltage / throttling flags, ``None`` off a Pi."""
    return FileThrottle(path).read() if os.path.exists(path) else None


class _Timex(ctypes.Structure):
    # Only the leading fields are read; their layout is the same on 32- and
    # 64-bit Linux. The tail is generous room for the rest of struct timex.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 512),
    ]


def clock_synced_adjtimex() -> bool | None:
    """The kernel's NTP state through ``adjtimex(2)`` (read-only), ``None`` if unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The C library already loaded in this process: find_library() would start
        # "ldconfig -p" each time, on the main loop, at every heartbeat.
        libc = ctypes.CDLL(None, use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR and not tx.status & STA_UNSYNC and tx.maxerror < MAX_ERROR_US


def clock_synced_timedatectl(timeout: float = 2.0) -> bool | None:
    """``timedatectl show -p NTPSynchronized``, ``None`` when it cannot answer."""
    exe = shutil.which("timedatectl")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                             text=True, timeout=timeout, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"yes": True, "no": False}.get(out)


_timedatectl_cache: tuple[float, bool | None] | None = None
TIMEDATECTL_TTL_S = 300.0


def clock_synced() -> bool | None:
    """Whether the system clock is synchronised (NTP), ``None`` when unknown.

    ``adjtimex`` answers at once. Where it cannot (some containers), ``timedatectl`` is
    asked, at most every :data:`TIMEDATECTL_TTL_S` seconds: it is a process to start,
    and the heartbeat that wants the answer runs on the main loop.
    """
    global _timedatectl_cache
    result = clock_synced_adjtimex()
    if result is not None:
        return result
    now = time.monotonic()
    if _timedatectl_cache is None or now - _timedatectl_cache[0] > TIMEDATECTL_TTL_S:
        _timedatectl_cache = (now, clock_synced_timedatectl())
    return _timedatectl_cache[1]


class Health:
    """The process-level figures, with uptime counted from construction."""

    def __init__(self, state_dir: str | os.PathLike[str], *, cpu_temp_file: str | None = THERMAL_ZONE0,
                 throttle_file: str | None = FIRMWARE_THROTTLE) -> None:
        self.state_dir = state_dir
        self.cpu_temp_file = cpu_temp_file
        self.throttle_file = throttle_file
        self.started = time.monotonic()

    def uptime_s(self) -> int:
        return int(time.monotonic() - self.started)

    def figures(self) -> dict[str, Any]:
        """``uptime_s``, ``rss_mb``, ``disk_free_mb``, ``cpu_temp_c``, ``clock_synced``,
        ``under_voltage``, ``throttled`` (the last two from the firmware, else ``None``)."""
        flags = throttled(self.throttle_file) if self.throttle_file else None
        return {
            "uptime_s": self.uptime_s(),
            "rss_mb": rss_mb(),
            "disk_free_mb": disk_free_mb(self.state_dir),
            "cpu_temp_c": cpu_temp(self.cpu_temp_file) if self.cpu_temp_file else None,
            "clock_synced": clock_synced(),
            "under_voltage": None if flags is None else flags["under_voltage"],
            "throttled": None if flags is None else flags["throttled"],
        }
