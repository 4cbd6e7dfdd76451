"""The retained indexes panelctl and the console keep, for brokers that deliver retained
messages only to exact-topic subscriptions (RabbitMQ's MQTT plugin).

- ``P/fleet``: ``{"panels": ["id", ...], "ts": "<ISO UTC>"}``, every panel panelctl or
  the console has seen, so that ``panelctl status`` can subscribe exactly to each one's
  ``online`` and ``heartbeat`` (:func:`player.ctl.status.read_fleet`).
- ``P/all/alert-index``, ``P/groups/G/alert-index``, ``P/panels/ID/alert-index``:
  ``{"alerts": ["crue-1", ...], "ts": …}``, the active alert ids of one scope, so that a
  panel can subscribe exactly to each alert topic (:func:`player.ctl.alerts.update_alert_indexes`).

Both are hints with no authority (never signed, never a cancel): sorted, unique, and
only ids that match their pattern are kept when read. Two writers at once may lose
one's addition (read, merge, publish): the next command that sees the panel or
changes the scope's alerts puts it back.

Example::

    encode_index("alerts", {"crue-1", "canicule"})   # b'{"alerts":["canicule","crue-1"],"ts":"…"}'
    decode_index(b'{"alerts":["x","a.b"]}', "alerts", ALERT_ID_PATTERN)   # ['x']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime, timezone

MAX_ALERTS = 256  # ids in one alert index (decision of docs/protocol.md)
CHUNK = 500       # exact filters per SUBSCRIBE when reading many topics


def encode_index(key: str, ids: Iterable[str], now: datetime | None = None) -> bytes:
    now = now or datetime.now(timezone.utc)
    data = {key: sorted(set(ids)), "ts": now.astimezone(timezone.utc).isoformat(timespec="seconds")}
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


def decode_index(payload: bytes | None, key: str, pattern: str) -> list[str] | None:
    """The ids of an index payload (sorted, unique, valid ones only); ``None`` when there is none
    or it is unreadable."""
    if not payload:
        return None
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    ids = data.get(key) if isinstance(data, dict) else None
    if not isinstance(ids, list):
        return None
    return sorted({i for i in ids if isinstance(i, str) and re.fullmatch(pattern, i)})


def chunks(items: list[str], size: int = CHUNK) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
