"""The console's live model of the fleet, and of what the console itself sent.

The bridge feeds it what the broker says (``on_online``, ``on_heartbeat``,
``on_event``, ``on_screenshot``); the web pages, the notices and the metrics read
it (``rows``, ``alert_reports``…) and listen to its changes. Every method may be
called from any thread: one lock guards the state, and listeners are called after
it is released, so a listener may call back into the fleet.

A panel's state follows ``panelctl status`` (:mod:`player.ctl.status`):

- ``offline`` — the broker retains ``online: false`` (clean stop or Last Will);
- ``stale`` — ``online: true`` but the last heartbeat (by its ``ts``) is older than
  ``stale_factor`` × ``interval``: the process or its clock is stuck. This wins over
  ``asleep``: a panel that died in its sleep hours must not look merely asleep;
- ``asleep`` — ``online: true`` and the heartbeat's ``screen`` is ``asleep``;
- ``online`` — ``online: true``;
- ``unknown`` — no ``online`` message (yet), or an unreadable one.

A value the panel did not send, or sent as ``null``, stays ``None`` in the rows.

Example::

    fleet = Fleet(interval=30, stale_factor=3)
    remove = fleet.add_listener(lambda change: print(change["kind"]))
    fleet.on_online("p1", True)
    fleet.on_heartbeat("p1", {"panel": "p1", "ts": "2026-12-03T10:00:00Z", "cpu_temp_c": 48.5})
    fleet.row("p1")["state"]     # 'online' (or 'stale' if that ts is old)
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..content import parse_datetime

log = logging.getLogger(__name__)

STATES = ("online", "stale", "offline", "asleep", "unknown")
MAX_REPORTS = 200  # alert and push reports kept in memory, the oldest dropped first

Change = dict[str, Any]
Listener = Callable[[Change], None]


def parse_ts(value: Any) -> float | None:
    """An ISO 8601 time with an offset as epoch seconds; ``None`` when absent or unreadable."""
    try:
        return parse_datetime(value).timestamp()
    except (ValueError, TypeError):
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


class _Panel:
    __slots__ = ("id", "online", "hb", "hb_ts", "received", "state", "state_since", "screenshot_ts")

    def __init__(self, panel_id: str) -> None:
        self.id = panel_id
        self.online: bool | None = None
        self.hb: dict[str, Any] | None = None
        self.hb_ts: float | None = None  # the heartbeat's ts, parsed once when it arrives
        self.received: float | None = None
        self.state = "unknown"
        self.state_since: float | None = None
        self.screenshot_ts: float | None = None


class Fleet:
    """Thread-safe; see the module documentation."""

    def __init__(self, interval: float = 30.0, stale_factor: float = 3.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.interval = interval
        self.stale_factor = stale_factor
        self.clock = clock
        self._lock = threading.Lock()
        self._panels: dict[str, _Panel] = {}
        self._listeners: list[Listener] = []
        self._alerts: dict[str, dict[str, Any]] = {}  # id -> report, in sending order
        self._pushes: dict[str, dict[str, Any]] = {}  # "id@version" -> report, in sending order

    # -- listeners -------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> Callable[[], None]:
        """Call ``fn(change)`` on every change (from whichever thread made it); returns ``remove()``."""
        with self._lock:
            self._listeners.append(fn)

        def remove() -> None:
            with self._lock:
                if fn in self._listeners:
                    self._listeners.remove(fn)
        return remove

    def emit(self, change: Change) -> None:
        """Hand ``change`` to every listener; a failing listener is logged and the others still run."""
        self._dispatch([change])

    def _dispatch(self, changes: list[Change]) -> None:
        if not changes:
            return
        with self._lock:
            listeners = list(self._listeners)
        for change in changes:
            for fn in listeners:
                try:
                    fn(change)
                except Exception:  # noqa: BLE001 - one broken page must not stop the others
                    log.exception("fleet listener failed")

    # -- what the broker says ----------------------------------------------------------
    def _panel(self, panel_id: str) -> _Panel:
        p = self._panels.get(panel_id)
        if p is None:
            p = self._panels[panel_id] = _Panel(panel_id)
        return p

    def on_online(self, panel: str, value: bool | None) -> None:
        """The retained ``online`` message: ``True``, ``False``, or ``None`` (gone or unreadable)."""
        with self._lock:
            p = self._panel(panel)
            p.online = value
            self._restate(p, self.clock())
            change = self._panel_change(p)
        self._dispatch([change])

    def on_heartbeat(self, panel: str, hb: dict[str, Any]) -> None:
        with self._lock:
            p = self._panel(panel)
            p.hb = hb
            p.hb_ts = parse_ts(hb.get("ts"))
            p.received = self.clock()
            self._restate(p, p.received)
            change = self._panel_change(p)
        self._dispatch([change])

    def on_screenshot(self, panel: str, ts: float) -> None:
        with self._lock:
            p = self._panel(panel)
            p.screenshot_ts = ts
            change = self._panel_change(p)
        self._dispatch([change])

    def on_event(self, panel: str, event: dict[str, Any]) -> None:
        """An event of ``panel``: ``alert.*`` and ``playlist.*`` update what the console tracks."""
        kind = event.get("type")
        changes: list[Change] = []
        with self._lock:
            if kind in ("alert.displayed", "alert.rejected", "alert.ended"):
                report = self._alerts.get(str(event.get("alert")))
                if report is not None and self._alert_event(report, panel, str(kind), event):
                    changes.append({"kind": "alert", "alert": copy.deepcopy(report)})
            elif kind in ("playlist.applied", "playlist.rejected"):
                report = self._push_for(panel, str(kind), event)
                if report is not None:
                    changes.append({"kind": "push", "push": copy.deepcopy(report)})
        self._dispatch(changes)

    def tick(self) -> None:
        """Re-evaluate every state by the heartbeats' age; a panel whose state changed is emitted."""
        changes = []
        with self._lock:
            now = self.clock()
            for p in self._panels.values():
                if self._restate(p, now):
                    changes.append(self._panel_change(p))
        self._dispatch(changes)

    # -- states and rows (under the lock) -----------------------------------------------
    def _age(self, p: _Panel, now: float) -> float | None:
        return None if p.hb is None or p.hb_ts is None else now - p.hb_ts

    def _state(self, p: _Panel, now: float) -> str:
        if p.online is False:
            return "offline"
        if p.online is None:
            return "unknown"
        age = self._age(p, now)
        if age is not None and age > self.stale_factor * self.interval:
            return "stale"
        if p.hb is not None and p.hb.get("screen") == "asleep":
            return "asleep"
        return "online"

    def _restate(self, p: _Panel, now: float) -> bool:
        state = self._state(p, now)
        if state == p.state and p.state_since is not None:
            return False
        p.state, p.state_since = state, now
        return True

    def _panel_change(self, p: _Panel) -> Change:
        return {"kind": "panel", "row": self._row(p, self.clock())}

    def _row(self, p: _Panel, now: float) -> dict[str, Any]:
        hb = p.hb or {}
        age = self._age(p, now)
        alerts = _strings(hb.get("alerts"))
        playlist = hb.get("playlist") if isinstance(hb.get("playlist"), dict) else None
        slide = _str(hb.get("slide"))
        if p.hb is None:
            showing: dict[str, Any] = {"kind": "unknown", "text": None}
        elif alerts:
            showing = {"kind": "alert", "text": ", ".join(alerts)}
        elif slide is not None:
            where = f" ({playlist.get('id')})" if playlist and playlist.get("id") is not None else ""
            showing = {"kind": "slide", "text": slide + where}
        else:
            showing = {"kind": "idle", "text": None}
        errors = hb.get("errors")
        return {
            "panel": p.id,
            "state": p.state,
            "state_since": p.state_since,
            "heartbeat_age_s": None if age is None else round(age, 1),
            "last_heartbeat": _str(hb.get("ts")),
            "received": p.received,
            "showing": showing,
            "playlist": dict(playlist) if playlist else None,
            "slide": slide,
            "alerts": alerts,
            "firmware": _str(hb.get("firmware")),
            "brightness": _int(hb.get("brightness")),
            "ambient": _num(hb.get("ambient")),
            "cpu_temp_c": _num(hb.get("cpu_temp_c")),
            "fps": _num(hb.get("fps")),
            "rss_mb": _num(hb.get("rss_mb")),
            "disk_free_mb": _int(hb.get("disk_free_mb")),
            "uptime_s": _int(hb.get("uptime_s")),
            "mqtt_reconnects": _int(hb.get("mqtt_reconnects")),
            "errors": len(errors) if isinstance(errors, list) else None,
            "error_list": list(errors) if isinstance(errors, list) else [],
            "door_open": _bool(hb.get("door_open")),
            "under_voltage": _bool(hb.get("under_voltage")),
            "throttled": _bool(hb.get("throttled")),
            "screen": _str(hb.get("screen")),
            "groups": _strings(hb.get("groups")),
            "display": dict(hb["display"]) if isinstance(hb.get("display"), dict) else None,
            "update": dict(hb["update"]) if isinstance(hb.get("update"), dict) else None,
            "screenshot_ts": p.screenshot_ts,
            "heartbeat": p.hb,
        }

    # -- reading ------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One row per known panel, sorted by id (states as of the last change or tick)."""
        with self._lock:
            now = self.clock()
            return [self._row(self._panels[k], now) for k in sorted(self._panels)]

    def row(self, panel: str) -> dict[str, Any] | None:
        with self._lock:
            p = self._panels.get(panel)
            return None if p is None else self._row(p, self.clock())

    def panels(self) -> list[str]:
        with self._lock:
            return sorted(self._panels)

    def groups(self) -> list[str]:
        """Every group named in a heartbeat, sorted."""
        with self._lock:
            found: set[str] = set()
            for p in self._panels.values():
                found.update(_strings((p.hb or {}).get("groups")))
            return sorted(found)

    def reach(self, panels: list[str], groups: list[str], everyone: bool) -> list[str]:
        """The known panels a message to ``panels``, ``groups`` (or ``everyone``) reaches, sorted.

        Group membership is the one the panels' last heartbeats announce.
        """
        with self._lock:
            if everyone:
                return sorted(self._panels)
            wanted, named = set(groups), set(panels)
            hit = {pid for pid, p in self._panels.items()
                   if pid in named or wanted.intersection(_strings((p.hb or {}).get("groups")))}
            return sorted(hit)

    # -- alerts the console sent ------------------------------------------------------------
    def track_alert(self, alert_id: str, *, level: str, title: str, body: str | None, targets: list[dict[str, Any]],
                    expected: list[str], sent_by: str, expires_at: float | None) -> dict[str, Any]:
        """Start following an alert just sent (the same id again starts over); returns its report."""
        report: dict[str, Any] = {
            "id": alert_id, "level": level, "title": title, "body": body,
            "targets": [dict(t) for t in targets], "sent_at": self.clock(), "sent_by": sent_by,
            "expires_at": expires_at, "cancelled_at": None, "cancelled_by": None,
            "expected": sorted(set(expected)),
            "panels": {p: {"status": "waiting", "at": None, "detail": None, "displayed_at": None}
                       for p in sorted(set(expected))},
            "reached": 0, "total": 0,
        }
        self._count_alert(report)
        with self._lock:
            self._alerts.pop(alert_id, None)
            self._alerts[alert_id] = report
            _trim(self._alerts)
            snapshot = copy.deepcopy(report)
        self._dispatch([{"kind": "alert", "alert": copy.deepcopy(snapshot)}])
        return snapshot

    def alert_cancelled(self, alert_id: str, by: str) -> dict[str, Any] | None:
        with self._lock:
            report = self._alerts.get(alert_id)
            if report is None:
                return None
            report["cancelled_at"] = self.clock()
            report["cancelled_by"] = by
            snapshot = copy.deepcopy(report)
        self._dispatch([{"kind": "alert", "alert": copy.deepcopy(snapshot)}])
        return snapshot

    def forget_alert(self, alert_id: str) -> None:
        """Stop following an alert (its sending failed after :meth:`track_alert`)."""
        with self._lock:
            self._alerts.pop(alert_id, None)

    def alert_reports(self) -> list[dict[str, Any]]:
        """Every alert followed, newest first."""
        with self._lock:
            return [copy.deepcopy(r) for r in sorted(self._alerts.values(), key=lambda r: -r["sent_at"])]

    def alert_report(self, alert_id: str) -> dict[str, Any] | None:
        with self._lock:
            report = self._alerts.get(alert_id)
            return None if report is None else copy.deepcopy(report)

    def _alert_event(self, report: dict[str, Any], panel: str, kind: str, event: dict[str, Any]) -> bool:
        entry = report["panels"].get(panel)
        if entry is None:  # a panel that joined a targeted group after the sending: it counts too
            entry = report["panels"][panel] = {"status": "waiting", "at": None, "detail": None,
                                               "displayed_at": None}
            report["expected"] = sorted(report["panels"])
        if kind == "alert.displayed":
            at = _str(event.get("displayed_at")) or _str(event.get("ts"))
            entry.update(status="displayed", at=at, displayed_at=at, detail=None)
            if event.get("derated") is True:
                entry["detail"] = "derated"
        elif kind == "alert.rejected":
            entry.update(status="rejected", at=_str(event.get("ts")), detail=_str(event.get("reason")))
        else:
            entry.update(status="ended", at=_str(event.get("ts")), detail=_str(event.get("reason")))
        self._count_alert(report)
        return True

    @staticmethod
    def _count_alert(report: dict[str, Any]) -> None:
        # Reached: shown at least once, even if it has ended since.
        report["reached"] = sum(1 for e in report["panels"].values() if e["displayed_at"] is not None)
        report["total"] = len(report["expected"])

    # -- playlists the console pushed ---------------------------------------------------------
    def track_push(self, playlist_id: str, version: int, expected: list[str], sent_by: str) -> dict[str, Any]:
        key = f"{playlist_id}@{version}"
        report: dict[str, Any] = {
            "key": key, "playlist": playlist_id, "version": version, "sent_at": self.clock(),
            "sent_by": sent_by, "expected": sorted(set(expected)),
            "panels": {p: {"status": "waiting", "at": None, "detail": None} for p in sorted(set(expected))},
            "applied": 0, "total": len(set(expected)),
        }
        with self._lock:
            self._pushes.pop(key, None)
            self._pushes[key] = report
            _trim(self._pushes)
            snapshot = copy.deepcopy(report)
        self._dispatch([{"kind": "push", "push": copy.deepcopy(snapshot)}])
        return snapshot

    def forget_push(self, key: str) -> None:
        """Stop following a push (its publishing failed after :meth:`track_push`)."""
        with self._lock:
            self._pushes.pop(key, None)

    def push_reports(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for r in sorted(self._pushes.values(), key=lambda r: -r["sent_at"])]

    def push_report(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            report = self._pushes.get(key)
            return None if report is None else copy.deepcopy(report)

    def _push_for(self, panel: str, kind: str, event: dict[str, Any]) -> dict[str, Any] | None:
        """Apply a ``playlist.*`` event to the push it answers; the report changed, or ``None``."""
        playlist = event.get("playlist")
        report: dict[str, Any] | None = None
        if kind == "playlist.applied":
            report = self._pushes.get(f"{playlist}@{event.get('version')}")
        else:  # rejected: no version; the newest push of that playlist (any, if unnamed) still waiting here
            for r in reversed(self._pushes.values()):
                entry = r["panels"].get(panel)
                if entry is not None and entry["status"] == "waiting" \
                        and (playlist is None or r["playlist"] == playlist):
                    report = r
                    break
        if report is None:
            return None
        entry = report["panels"].get(panel)
        if entry is None:
            entry = report["panels"][panel] = {"status": "waiting", "at": None, "detail": None}
            report["expected"] = sorted(report["panels"])
        if kind == "playlist.applied":
            entry.update(status="applied", at=_str(event.get("ts")), detail=None)
        else:
            entry.update(status="rejected", at=_str(event.get("ts")), detail=_str(event.get("reason")))
        report["applied"] = sum(1 for e in report["panels"].values() if e["status"] == "applied")
        report["total"] = len(report["expected"])
        return report


def _trim(reports: dict[str, dict[str, Any]]) -> None:
    while len(reports) > MAX_REPORTS:
        del reports[next(iter(reports))]
