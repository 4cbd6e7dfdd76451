"""The fleet as the broker holds it: retained ``online`` and ``heartbeat`` of every panel
(found through the ``+`` wildcards and, on brokers that deliver retained messages only
to exact subscriptions, through the fleet index ``P/fleet``: see :func:`read_fleet`).

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
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import paho.mqtt.client as mqtt

from ..content import parse_datetime
from ..net.topics import PANEL_ID_PATTERN, Topics
from .client import CtlClient, CtlError
from .index import chunks, decode_index, encode_index

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


def read_fleet(client: CtlClient, prefix: str, err: IO[str] | None = None,
               listen: float = 0.0) -> dict[str, PanelState]:
    """Every panel with a retained ``online`` or ``heartbeat`` message, by id.

    Reads the ``+`` wildcards and the fleet index ``P/fleet`` at once; the panels the
    index lists that the wildcards did not bring (a broker that delivers retained
    messages only to exact subscriptions) are then read on their exact topics. With
    ``listen`` seconds, live ``online``/``heartbeat`` messages are also taken for that
    long, so that panels the index does not know yet are found on such a broker. Panels
    seen but not in the index are added to it (a failure to write it is said on ``err``).

    A snapshot: the subscriptions are dropped again, so that a push that waits for
    answers afterwards does not also receive every heartbeat that follows an apply.
    """
    topics = Topics(prefix)
    wildcards = [topics.all_panels("online"), topics.all_panels("heartbeat")]
    index_topic = topics.fleet_index()
    found, listed = read_retained_fleet(client, prefix, keep=listen > 0)
    if listen > 0:
        known = set(fleet_from_retained(found, prefix))
        end = time.monotonic() + listen
        while (msg := client.next_message(end)) is not None:
            if not msg.retained and any(mqtt.topic_matches_sub(f, msg.topic) for f in wildcards):
                found[msg.topic] = msg.payload
        client.unsubscribe(wildcards + [index_topic])
        # The panels heard live: their retained online (and heartbeat), read on the exact topics.
        heard = sorted(set(fleet_from_retained(found, prefix)) - known)
        exact = [t for pid in heard for t in (topics.online_of(pid), topics.heartbeat_of(pid)) if t not in found]
        for chunk in chunks(exact):
            found.update(client.retained(chunk, keep=False))
    fleet = fleet_from_retained(found, prefix)
    new = set(fleet) - set(listed)
    if new:
        write_fleet_index(client, prefix, set(listed) | new, err)
    return fleet


def read_retained_fleet(client: CtlClient, prefix: str, keep: bool = False) -> tuple[dict[str, bytes], list[str]]:
    """``({topic: payload} of the retained online/heartbeat messages, the fleet index's ids)``.

    One read of the ``+`` wildcards and ``P/fleet``; then the exact topics of the listed
    panels the wildcards did not bring (none on mosquitto; all of them on RabbitMQ),
    500 filters per SUBSCRIBE. With ``keep`` the wildcard subscriptions stay.
    """
    topics = Topics(prefix)
    index_topic = topics.fleet_index()
    found = client.retained([topics.all_panels("online"), topics.all_panels("heartbeat"), index_topic], keep=keep)
    listed = decode_index(found.pop(index_topic, None), "panels", PANEL_ID_PATTERN) or []
    seen = set(fleet_from_retained(found, prefix))
    exact = [t for pid in listed if pid not in seen for t in (topics.online_of(pid), topics.heartbeat_of(pid))]
    for chunk in chunks(exact):
        found.update(client.retained(chunk, keep=False))
    return found, listed


def write_fleet_index(client: CtlClient, prefix: str, panels: set[str], err: IO[str] | None = None) -> bool:
    """Publish ``P/fleet`` (retained) listing ``panels``; a refusal is said on ``err``, not raised."""
    topic = Topics(prefix).fleet_index()
    try:
        client.publish(topic, encode_index("panels", panels), retain=True)
    except CtlError as exc:
        if err is not None:
            err.write(f"note: the fleet index {topic} was not updated: {exc}\n")
        return False
    return True


def note_panels(client: CtlClient, prefix: str, panels: set[str], err: IO[str] | None = None) -> None:
    """Add ``panels`` (seen live: they answered) to the fleet index unless it lists them already."""
    if not panels:
        return
    topic = Topics(prefix).fleet_index()
    try:
        listed = decode_index(client.retained([topic], keep=False).get(topic), "panels", PANEL_ID_PATTERN) or []
    except CtlError as exc:
        if err is not None:
            err.write(f"note: the fleet index {topic} was not read: {exc}\n")
        return
    valid = {p for p in panels if re.fullmatch(PANEL_ID_PATTERN, p)}
    if not valid <= set(listed):
        write_fleet_index(client, prefix, set(listed) | valid, err)


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
