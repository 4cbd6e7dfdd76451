"""The fleet as the broker holds it: retained ``online`` and ``heartbeat`` of every panel.

A panel is ``online`` (retained ``true`` and a fresh heartbeat), ``stale``
(``true`` but its last heartbeat is older than ``stale_factor`` × the heartbeat
interval: the process or its clock is stuck, or the broker has not noticed it
is gone yet), ``offline`` (retained ``false``: clean stop or Last Will) or
``unknown`` (a heartbeat but no ``online`` message).

Example::

    fleet = read_fleet(client, "signage")
    rows = fleet_rows(fleet, now=datetime.now(timezone.utc), interval=30, stale_factor=3)
    print(format_table(FLEET_COLUMNS, [row_cells(r) for r in rows]))
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..content import parse_datetime
from .client import CtlClient

NONE = "—"
FLEET_COLUMNS = ("PANEL", "STATE", "SCREEN", "HEARTBEAT", "PLAYLIST", "SLIDE", "ALERTS", "BRIGHT", "TEMP",
                 "FPS", "ERRORS", "FIRMWARE")


@dataclass
class PanelState:
    """What the broker retains for one panel; ``heartbeat`` is the decoded JSON, if any."""

    id: str
    online: bool | None = None
    heartbeat: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)


def read_fleet(client: CtlClient, prefix: str) -> dict[str, PanelState]:
    """Every panel with a retained ``online`` or ``heartbeat`` message, by id.

    A snapshot: the subscriptions are dropped again, so that a push that waits for
    answers afterwards does not also receive every heartbeat that follows an apply.
    """
    found = client.retained([f"{prefix}/panels/+/online", f"{prefix}/panels/+/heartbeat"], keep=False)
    return fleet_from_retained(found, prefix)


def fleet_from_retained(found: dict[str, bytes], prefix: str) -> dict[str, PanelState]:
    """Decode ``{topic: payload}`` of online/heartbeat topics; bad payloads are noted, not fatal."""
    fleet: dict[str, PanelState] = {}
    head = f"{prefix}/panels/"
    for topic, payload in sorted(found.items()):
        if not topic.startswith(head):
            continue
        panel_id, _, leaf = topic[len(head):].partition("/")
        state = fleet.setdefault(panel_id, PanelState(panel_id))
        if leaf == "online":
            text = payload.decode("utf-8", "replace").strip()
            if text in ("true", "false"):
                state.online = text == "true"
            else:
                state.problems.append(f"online payload is not true/false: {text[:40]!r}")
        elif leaf == "heartbeat":
            try:
                data = json.loads(payload)
            except (ValueError, UnicodeDecodeError):
                state.problems.append("heartbeat is not valid JSON")
                continue
            if isinstance(data, dict):
                state.heartbeat = data
            else:
                state.problems.append("heartbeat is not a JSON object")
    return fleet


def heartbeat_age(hb: dict[str, Any] | None, now: datetime) -> float | None:
    """Seconds since the heartbeat's ``ts``; ``None`` when there is none or it is unreadable."""
    if not hb:
        return None
    try:
        return (now - parse_datetime(hb.get("ts"))).total_seconds()  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return None


def panel_state(p: PanelState, now: datetime, interval: float, stale_factor: float) -> str:
    if p.online is False:
        return "offline"
    if p.online is None:
        return "unknown"
    age = heartbeat_age(p.heartbeat, now)
    if age is not None and age > stale_factor * interval:
        return "stale"
    return "online"


def fleet_rows(fleet: dict[str, PanelState], *, now: datetime, interval: float,
               stale_factor: float) -> list[dict[str, Any]]:
    """One JSON-ready dict per panel, sorted by id: the fields of the table plus the raw heartbeat."""
    rows = []
    for pid in sorted(fleet):
        p = fleet[pid]
        hb = p.heartbeat or {}
        age = heartbeat_age(p.heartbeat, now)
        errors = hb.get("errors")
        rows.append({
            "panel": pid,
            "state": panel_state(p, now, interval, stale_factor),
            "online": p.online,
            "screen": hb.get("screen"),
            "heartbeat_age_s": None if age is None else round(age, 1),
            "playlist": hb.get("playlist"),
            "slide": hb.get("slide"),
            "alerts": hb.get("alerts"),
            "alerts_unconfirmed": hb.get("alerts_unconfirmed") or [],
            "brightness": hb.get("brightness"),
            "cpu_temp_c": hb.get("cpu_temp_c"),
            "fps": hb.get("fps"),
            "errors": len(errors) if isinstance(errors, list) else None,
            "firmware": hb.get("firmware"),
            "problems": p.problems,
            "heartbeat": p.heartbeat,
        })
    return rows


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    if seconds < 0:
        return "in the future"  # the panel's clock is ahead of ours
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def show(value: Any, unit: str = "") -> str:
    """A cell: ``None`` as an em dash, floats without noise."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}{unit}"
    return f"{value}{unit}"


def row_cells(row: dict[str, Any]) -> list[str]:
    pl = row["playlist"]
    playlist = f"{pl.get('id')}@{pl.get('version')}" if isinstance(pl, dict) else NONE
    alerts = row["alerts"]
    unconfirmed = set(map(str, row.get("alerts_unconfirmed") or []))
    # "crue-1?": shown, though the broker no longer holds it (it lost its retained messages).
    alerts_text = ",".join(str(a) + ("?" if str(a) in unconfirmed else "") for a in alerts) \
        if isinstance(alerts, list) and alerts else (NONE if alerts is None else "")
    return [row["panel"], row["state"], show(row["screen"]), format_age(row["heartbeat_age_s"]), playlist, show(row["slide"]),
            alerts_text or NONE, show(row["brightness"], "%"), show(row["cpu_temp_c"], " °C"), show(row["fps"]),
            show(row["errors"]), show(row["firmware"])]


def format_table(headers: tuple[str, ...] | list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)
