"""The heartbeat message (CONTRACT §8), its bounded error list, and when to send it early.

Example::

    errors = ErrorLog()
    errors.add("mqtt: connection refused", now)
    hb = build_heartbeat(panel="mairie-entree", ts=now, firmware="0.1.0", uptime_s=12,
                         playlist={"id": "hiver-2026", "version": 3}, slide="marche",
                         alerts=["crue-1"], brightness=62, ambient=0.41, cpu_temp_c=48.3,
                         fps=29.8, rss_mb=41.2, disk_free_mb=1234, mqtt_reconnects=0,
                         door_open=False, clock_synced=True, errors=errors.items(now))
    reason = notable_change(previous, hb)     # "door opened", … or None
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


# CONTRACT §8: field -> accepted types (None means the value may be null).
HEARTBEAT_FIELDS: dict[str, tuple[type | None, ...]] = {
    "panel": (str,),
    "ts": (str,),
    "firmware": (str,),
    "uptime_s": (int,),
    "playlist": (dict, None),
    "slide": (str, None),
    "alerts": (list,),
    "brightness": (int, None),
    "ambient": (float, int, None),
    "cpu_temp_c": (float, int, None),
    "fps": (float, int, None),
    "rss_mb": (float, int, None),
    "disk_free_mb": (int, None),
    "mqtt_reconnects": (int,),
    "door_open": (bool, None),
    "clock_synced": (bool, None),
    "errors": (list,),
}

HOT_C = 75.0


def iso_utc(ts: datetime) -> str:
    """``2026-11-25T18:00:00Z`` for an aware datetime."""
    if ts.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Entry:
    reason: str
    count: int
    first: datetime
    last: datetime


class ErrorLog:
    """Recent errors, deduplicated by reason (count and last time) and bounded.

    When full, the entry seen least recently goes; entries older than
    ``max_age_s`` drop out so a week-old glitch does not send a crew out.
    """

    def __init__(self, max_items: int = 20, max_age_s: float | None = 86400.0) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        self.max_age_s = max_age_s
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def add(self, reason: str, now: datetime) -> bool:
        """Record ``reason``; True when it is new (not already listed)."""
        reason = reason[:300]
        entry = self._entries.pop(reason, None)
        if entry is None:
            entry = _Entry(reason, 0, now, now)
        entry.count += 1
        entry.last = now
        self._entries[reason] = entry  # most recent at the end
        while len(self._entries) > self.max_items:
            self._entries.popitem(last=False)
        return entry.count == 1

    def discard(self, reason: str) -> None:
        self._entries.pop(reason, None)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """``[{"reason", "count", "first", "last"}]``, oldest first (times in ISO UTC)."""
        if now is not None and self.max_age_s is not None:
            for reason in [r for r, e in self._entries.items() if (now - e.last).total_seconds() > self.max_age_s]:
                del self._entries[reason]
        return [{"reason": e.reason, "count": e.count, "first": iso_utc(e.first), "last": iso_utc(e.last)}
                for e in self._entries.values()]


def _round(value: float | None, digits: int) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value):
        return None
    return round(float(value), digits)


def build_heartbeat(*, panel: str, ts: datetime, firmware: str, uptime_s: float,
                    playlist: dict[str, Any] | None, slide: str | None, alerts: list[str],
                    brightness: int | None, ambient: float | None, cpu_temp_c: float | None,
                    fps: float | None, rss_mb: float | None, disk_free_mb: int | None,
                    mqtt_reconnects: int, door_open: bool | None, clock_synced: bool | None,
                    errors: list[Any], **extra: Any) -> dict[str, Any]:
    """The heartbeat dict with exactly the CONTRACT §8 fields and types, plus ``extra``.

    Unknown values are ``None`` (published as ``null``), never made up. Extra
    fields (``under_voltage``, ``brightness_source``, ``sensor_faults``,
    ``display``, …) are added as given.
    """
    if playlist is not None:
        playlist = {"id": str(playlist["id"]), "version": playlist["version"]}
    hb: dict[str, Any] = {
        "panel": panel,
        "ts": iso_utc(ts),
        "firmware": firmware,
        "uptime_s": int(uptime_s),
        "playlist": playlist,
        "slide": slide,
        "alerts": list(alerts) if isinstance(alerts, (list, tuple)) else alerts,
        "brightness": None if brightness is None else int(round(brightness)),
        "ambient": _round(ambient, 3),
        "cpu_temp_c": _round(cpu_temp_c, 1),
        "fps": _round(fps, 1),
        "rss_mb": _round(rss_mb, 1),
        "disk_free_mb": None if disk_free_mb is None else int(disk_free_mb),
        "mqtt_reconnects": int(mqtt_reconnects),
        "door_open": door_open,
        "clock_synced": clock_synced,
        "errors": list(errors) if isinstance(errors, (list, tuple)) else errors,
    }
    problems = check_heartbeat(hb)
    if problems:
        raise TypeError("; ".join(problems))
    hb.update(extra)
    return hb


def check_heartbeat(hb: dict[str, Any]) -> list[str]:
    """Every way ``hb`` departs from CONTRACT §8 (empty when it conforms)."""
    problems = []
    for name, types in HEARTBEAT_FIELDS.items():
        if name not in hb:
            problems.append(f"{name}: missing")
            continue
        value = hb[name]
        if value is None:
            if None not in types:
                problems.append(f"{name}: must not be null")
            continue
        concrete = tuple(t for t in types if t is not None)
        if isinstance(value, bool) and bool not in concrete:
            problems.append(f"{name}: expected {'/'.join(t.__name__ for t in concrete)}, got bool")
        elif not isinstance(value, concrete):
            problems.append(f"{name}: expected {'/'.join(t.__name__ for t in concrete)}, got {type(value).__name__}")
    playlist = hb.get("playlist")
    if isinstance(playlist, dict) and (not isinstance(playlist.get("id"), str)
                                       or isinstance(playlist.get("version"), bool)
                                       or not isinstance(playlist.get("version"), (int, str))):
        problems.append("playlist: expected {id: string, version}")
    if isinstance(hb.get("alerts"), list) and not all(isinstance(a, str) for a in hb["alerts"]):
        problems.append("alerts: expected a list of strings")
    return problems


def notable_change(prev: dict[str, Any] | None, cur: dict[str, Any], *, hot_c: float = HOT_C) -> str | None:
    """Why ``cur`` should be published at once rather than at the next interval, or ``None``.

    ``"started"`` for the first one; then door opened/closed, a new sensor
    fault, over-temperature (crossing ``hot_c``), under-voltage, display lost or
    back, and a change of the set of alerts shown.
    """
    if prev is None:
        return "started"
    if cur.get("door_open") is True and prev.get("door_open") is not True:
        return "door opened"
    if cur.get("door_open") is False and prev.get("door_open") is True:
        return "door closed"
    new_faults = set(cur.get("sensor_faults") or ()) - set(prev.get("sensor_faults") or ())
    if new_faults:
        return "sensor fault: " + ", ".join(sorted(new_faults))
    temp, before = cur.get("cpu_temp_c"), prev.get("cpu_temp_c")
    if temp is not None and temp >= hot_c and (before is None or before < hot_c):
        return "over-temperature"
    if cur.get("under_voltage") is True and prev.get("under_voltage") is not True:
        return "under-voltage"
    healthy, was = _display_healthy(cur), _display_healthy(prev)
    if healthy is not None and was is not None and healthy != was:
        return "display back" if healthy else "display lost"
    if set(cur.get("alerts") or ()) != set(prev.get("alerts") or ()):
        return "alerts changed"
    return None


def _display_healthy(hb: dict[str, Any]) -> bool | None:
    """The display's health in a heartbeat: ``display.healthy``, or a bare ``"ok"`` status."""
    display = hb.get("display")
    if isinstance(display, dict):
        healthy = display.get("healthy")
        return healthy if isinstance(healthy, bool) else None
    if display is None:
        return None
    return display == "ok"
